"""`gsid serve DIR`: the index over HTTP (see gsid.serve; needs the `serve` extra)."""

from __future__ import annotations

import argparse

from gsid.errors import GsidError


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise GsidError("gsid serve needs FastAPI and uvicorn: pip install 'gsid[serve]'") from None
    from gsid.serve import Limits, run

    limits = Limits(
        max_k=args.max_k,
        max_batch=args.max_batch,
        max_body=args.max_body,
        window_ms=args.batch_window_ms,
    )
    for name, value in limits.__dict__.items():
        if (value <= 0 and name != "window_ms") or value < 0:
            raise GsidError(f"--{name.replace('_', '-')} must be positive, got {value}")
    run(args.index, args.host, args.port, limits, "info" if args.verbose else "warning")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("serve", help="serve an index over HTTP (FastAPI + uvicorn)")
    p.add_argument("index", help="an index directory (gsid index build)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-k", type=int, default=1000, help="largest k a request may ask")
    p.add_argument("--max-batch", type=int, default=256, help="queries per POST /search")
    p.add_argument("--max-body", type=int, default=1 << 20, help="request body bytes")
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=2.0,
        help="how long a search waits to share a model call (default 2 ms; 0: no wait)",
    )
    p.set_defaults(func=cmd_serve)
