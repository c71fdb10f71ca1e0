"""gsid's HTTP service (the `serve` extra: FastAPI + uvicorn).

from gsid.serve import IndexService, create_app
app = create_app(IndexService.open("runs/index"))      # an ASGI app; or `gsid serve DIR`
"""

from gsid.serve.app import Limits, create_app
from gsid.serve.service import IndexService

__all__ = ["IndexService", "Limits", "create_app", "run"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def run(
    path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    log_level: str = "info",
) -> None:
    """Load the index (a clear error when it cannot), then serve it until SIGTERM / Ctrl-C
    (uvicorn's graceful shutdown: requests in flight are answered)."""
    import logging

    import uvicorn

    service = IndexService.open(path)
    if host not in LOOPBACK:
        logging.getLogger("gsid.serve").warning(
            "serving on %s: reachable from other machines; gsid has no authentication, so put "
            "it behind your own gateway",
            host,
        )
    app = create_app(service, limits)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    uvicorn.Server(config).run()
