"""The HTTP service of one index (FastAPI; `gsid serve DIR` runs it under uvicorn).

    GET  /search?q=cordless+drill&k=10     one query
    POST /search  {"queries": [...], "k": 10}   a batch (at most 256)
    GET  /items/{item_id}                  title, code, neighbours under the same code prefix
    POST /items   {"items": [{"item_id": ..., "title": ...}]}   add products (no retraining)
    POST /codes   {"texts": [...]}         codes of texts (queries or new titles; GSID methods)
    GET  /livez, /readyz, /info            liveness, readiness, what is served; /docs: OpenAPI

A client's mistake is a 4xx whose JSON says what was wrong and the limit or fix ({"error": ...});
a 5xx means the server failed. Search requests are micro-batched (batcher.py), and all model
work runs on one worker thread (service.py), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gsid.errors import DataValidationError, GsidError, NotFittedError
from gsid.retrieval.base import MAX_QUERY_CHARS, check_queries, ranked_hits
from gsid.serve.batcher import MicroBatcher
from gsid.serve.service import IndexService


@dataclass(frozen=True)
class Limits:
    max_k: int = 1000
    max_query_chars: int = MAX_QUERY_CHARS
    max_batch: int = 256  # queries in one POST /search, texts in one POST /codes
    max_body: int = 1 << 20  # bytes of a request body
    max_items: int = 10_000  # items in one POST /items
    window_ms: float = 2.0  # micro-batching window


class ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- request bodies
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchBody(_Strict):
    queries: list[str] = Field(description="the queries, at most 256")
    k: int = Field(10, description="results per query, 1..max_k")


class NewItem(_Strict):
    item_id: str
    title: str
    description: str = ""
    category: str = ""
    attributes: str = "{}"


class ItemsBody(_Strict):
    items: list[NewItem] = Field(description="new products")


class CodesBody(_Strict):
    texts: list[str] = Field(description="queries or titles, at most 256")


# ---------------------------------------------------------------- the body-size limit
class BodyLimit:
    """ASGI middleware: a body over `max_body` bytes is answered 413 before it is parsed
    (by Content-Length, or by counting a streamed body)."""

    def __init__(self, app, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await self._too_large(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send) -> None:
        body = json.dumps({"error": f"request body over the limit of {self.max_body} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


class _TooLarge(Exception):
    pass


# ---------------------------------------------------------------- the app
def create_app(service: IndexService, limits: Limits | None = None):
    """The ASGI app of `service` (FastAPI inside the body-size limit)."""
    limits = limits or Limits()
    batcher = MicroBatcher(service.search, service.executor, limits.window_ms, limits.max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()
        service.executor.shutdown(wait=True)
        service.writer.shutdown(wait=True)  # an add in progress finishes its save

    app = FastAPI(
        title="gsid",
        summary=f"{service.retriever.name} index of {service.n_items} items",
        lifespan=lifespan,
    )
    checks = _Checks(limits)
    _errors(app)
    _search_routes(app, service, batcher, checks)
    _item_routes(app, service, checks)
    _status_routes(app, service, batcher, limits)
    return BodyLimit(app, limits.max_body)


class _Checks:
    """The limits of a request, each a 422 that names the limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def k(self, k: int) -> int:
        if not 1 <= k <= self.limits.max_k:
            raise ClientError(422, f"k must be between 1 and {self.limits.max_k}, got {k}")
        return k

    def texts(self, texts: list[str], what: str = "query") -> list[str]:
        limit, chars = self.limits.max_batch, self.limits.max_query_chars
        if not texts:
            raise ClientError(422, f"no {what} given: send at least one")
        if len(texts) > limit:
            many = "queries" if what == "query" else f"{what}s"
            raise ClientError(422, f"{len(texts)} {many} in one request, over the limit of {limit}")
        for i, t in enumerate(texts):
            if len(t) > chars:
                raise ClientError(
                    422, f"{what} {i} has {len(t)} characters, over the limit of {chars}"
                )
        try:
            return check_queries(texts, 1, what)
        except GsidError as e:
            raise ClientError(422, str(e)) from None


def _search_routes(app: FastAPI, service: IndexService, batcher: MicroBatcher, checks) -> None:
    async def answer(queries: list[str], k: int) -> list[dict[str, Any]]:
        ids, scores = await batcher.search(queries, k)
        return [
            {"query": q, "results": ranked_hits(row, srow, service.titles, service.item_codes)}
            for q, row, srow in zip(queries, ids, scores, strict=True)
        ]

    @app.get("/search", summary="search one query")
    async def search_get(request: Request, q: str, k: int = 10) -> Response:
        unknown = sorted(set(request.query_params) - {"q", "k"})
        if unknown:
            raise ClientError(422, f"unknown query parameter(s) {unknown}; use q and k")
        queries = checks.texts([q])
        return _json((await answer(queries, checks.k(k)))[0])

    @app.post("/search", summary="search a batch of queries")
    async def search_post(body: SearchBody) -> Response:
        queries = checks.texts(body.queries)
        return _json({"results": await answer(queries, checks.k(body.k))})


def _item_routes(app: FastAPI, service: IndexService, checks) -> None:
    @app.get("/items/{item_id}", summary="an item: title, code, neighbours")
    async def get_item(item_id: str) -> dict:
        item = service.item(item_id)
        if item is None:
            raise ClientError(404, f"no item {item_id!r} in this index")
        return item

    @app.post("/items", summary="add products (codes from the saved model, no retraining)")
    async def post_items(body: ItemsBody) -> dict:
        if not service.retriever.can_add:
            raise ClientError(
                400, f"method {service.retriever.name!r} cannot add items; rebuild the index"
            )
        limit = checks.limits.max_items
        if not body.items or len(body.items) > limit:
            raise ClientError(422, f"send between 1 and {limit} items, got {len(body.items)}")
        items = [i.model_dump() for i in body.items]
        return {"added": len(items), "n_items": await service.add_async(items)}

    @app.post("/codes", summary="semantic IDs of texts (methods with a GSID model)")
    async def post_codes(body: CodesBody) -> dict:
        if service.code_model() is None:
            raise ClientError(
                400, f"method {service.retriever.name!r} has no GSID model to assign codes"
            )
        texts = checks.texts(body.texts, "text")
        loop = asyncio.get_running_loop()
        codes = await loop.run_in_executor(service.executor, service.codes, texts)
        return {"codes": [{"text": t, "code": c} for t, c in zip(texts, codes, strict=True)]}


def _status_routes(app: FastAPI, service: IndexService, batcher: MicroBatcher, limits) -> None:
    @app.get("/livez", summary="the process is up")
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="the index is loaded and answers")
    async def readyz() -> dict:
        return {"status": "ready", "n_items": service.n_items}

    @app.get("/info", summary="what is served")
    async def info() -> dict:
        return {
            **service.info(),
            "limits": limits.__dict__,
            "batching": {"model_calls": batcher.calls, "queries": batcher.queries},
        }


def _json(payload: Any) -> Response:
    """Search answers are plain JSON already: written directly, without FastAPI's response
    validation and encoder (a third of a search request's server time on BM25)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


def _errors(app: FastAPI) -> None:
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, e: ClientError):
        return error(e.status, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        message = str(e.detail)
        if message == "There was an error parsing the body":  # not UTF-8, or not JSON at all
            message = "the body is not valid UTF-8 JSON"
        elif e.status_code == 404:
            message = f"no such endpoint {request.url.path}; see /docs"
        return error(e.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        problems = []
        for p in e.errors():
            loc = [str(x) for x in p.get("loc", ()) if x != "body"]
            if p.get("type") == "json_invalid":
                at = f" (at character {loc[0]})" if loc else ""
                problems.append(f"the body is not valid UTF-8 JSON{at}")
                continue
            problems.append(f"{'.'.join(loc) or 'body'}: {p.get('msg')}")
        return error(422, "invalid request: " + "; ".join(problems[:5]))

    @app.exception_handler(DataValidationError)
    async def bad_data(request: Request, e: DataValidationError):
        return error(422, str(e))

    @app.exception_handler(GsidError)
    async def gsid_error(request: Request, e: GsidError):
        status = 500 if isinstance(e, NotFittedError) else 400
        return error(status, str(e))
