"""The index behind the HTTP service: one loaded retriever, its display tables, and every piece
of model work (search, codes, adding items) on one worker thread, so a search never sees an
index half-grown and the event loop never runs a model; the save after an add runs on a writer
thread, so searches go on while the grown index is written.

    service = IndexService.open("runs/index")        # a clear ArtifactError when it cannot
    service.search(["cordless drill"], 10)           # (ids, scores), as Retriever.search
    service.add([{"item_id": "new-1", "title": "..."}])   # searchable at once, saved atomically
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gsid.errors import GsidError
from gsid.retrieval.base import item_titles, items_code_strings

logger = logging.getLogger(__name__)

#: how many items under the same code prefix /items/{id} lists
NEIGHBOURS = 10


class IndexService:
    def __init__(self, retriever, path: Path) -> None:
        self.retriever = retriever
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsid-model")
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsid-save")
        self._write_lock = asyncio.Lock()
        self.loaded = time.time()
        self._tables()

    @classmethod
    def open(cls, path: str | os.PathLike) -> IndexService:
        """Load the index at `path`, first cleaning up after a writer that was killed."""
        import gsid
        from gsid._io import recover

        recover(path)
        return cls(gsid.load(path), Path(path))

    # ---- display tables (rebuilt after every growth)
    def _tables(self) -> None:
        r = self.retriever
        if r.catalogue_ is None:
            raise GsidError(
                f"{self.path} has no catalogue (items.parquet): it was saved by an older gsid "
                f"or as a hybrid's part; rebuild it with `gsid index build`"
            )
        self.titles = item_titles(r)  # item id -> title
        self.ids = r.semantic_ids()
        self.item_codes = items_code_strings(r)  # item id -> "12-3-7", None without IDs

    @property
    def n_items(self) -> int:
        return len(self.retriever.item_ids_)

    def code_model(self):
        """The retriever that turns texts into codes (a GSID model: gsid, gsid-gr, or such a
        part of a hybrid), or None."""
        r = self.retriever
        for part in [r, *getattr(r, "retrievers", [])]:
            if hasattr(part, "query_codes"):
                return part
        return None

    def title(self, item_id: str) -> str | None:
        return self.titles.get(item_id)

    def code(self, item_id: str) -> str | None:
        return None if self.item_codes is None else self.item_codes.get(item_id)

    # ---- model work (on the worker thread)
    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.retriever.search(queries, k, show_progress=False)

    def codes(self, texts: list[str]) -> list[str]:
        model = self.code_model()
        codes = model.query_codes(texts)
        return ["-".join(str(int(c)) for c in row if c >= 0) for row in codes]

    def add(self, items: list[dict[str, Any]]) -> int:
        """Add items, save the grown index atomically (the old one stays until the new one is
        complete), and return the new item count. On a failure nothing changes, in memory or
        on disk: the index is reloaded from its directory."""
        self._grow(items)
        self._persist_or_reload()
        return self.n_items

    async def add_async(self, items: list[dict[str, Any]]) -> int:
        """`add` for the service: the items are added on the worker thread (searches wait), and
        the grown index is saved on the writer thread while searches go on (a save only reads
        the index); one add and its save at a time."""
        loop = asyncio.get_running_loop()
        async with self._write_lock:
            await loop.run_in_executor(self.executor, self._grow, items)
            await loop.run_in_executor(self.writer, self._persist_or_reload)
        return self.n_items

    def _grow(self, items: list[dict[str, Any]]) -> None:
        try:
            self.retriever.add(items, show_progress=False)
        except BaseException:
            self._reload()
            raise
        self._tables()
        logger.info("added %d items to %s (now %d)", len(items), self.path, self.n_items)

    def _persist_or_reload(self) -> None:
        try:
            self.retriever.save(self.path)
        except BaseException:
            self._reload()
            raise

    def _reload(self) -> None:
        import gsid

        self.retriever = gsid.load(self.path)
        self._tables()

    def item(self, item_id: str) -> dict[str, Any] | None:
        """Title, code and the items under the longest shared code prefix (its neighbours)."""
        title = self.title(item_id)
        if title is None:
            return None
        out: dict[str, Any] = {"item_id": item_id, "title": title, "code": self.code(item_id)}
        if self.ids is not None:
            out["neighbours"] = self._neighbours(item_id)
        return out

    def _neighbours(self, item_id: str) -> list[dict[str, Any]]:
        code = list(self.ids.code_of(item_id))
        for depth in range(len(code), 0, -1):
            lo, hi = self.ids.prefix_range(code[:depth])
            rows = self.ids.order_[lo : min(hi, lo + NEIGHBOURS + 1)]
            others = [i for i in self.ids.item_ids[rows] if i != item_id]
            if others:
                return [
                    {"item_id": i, "title": self.title(i), "code": self.code(i), "prefix": depth}
                    for i in others[:NEIGHBOURS]
                ]
        return []

    def info(self) -> dict[str, Any]:
        r = self.retriever
        return {
            "method": r.name,
            "index": str(self.path),
            "n_items": self.n_items,
            "config": r.config(),
            "provenance": r.provenance_,
            "can_add": bool(r.can_add),
            "has_codes": self.code_model() is not None,
        }
