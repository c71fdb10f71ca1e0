"""Micro-batching: concurrent search requests that arrive within a few milliseconds become one
model call, run off the event loop.

    batcher = MicroBatcher(search_fn, executor, window_ms=2.0, max_batch=256)
    ids, scores = await batcher.search(["cordless drill"], k=10)

A request waits at most `window_ms` for company, and requests that arrive while the model is
busy are taken together as soon as it is free, so 32 clients share calls of up to `max_batch`
queries. Requests asking for different k are grouped by k (a method's top 10
need not be the first 10 of its top 100). Hand-written: no maintained library batches asyncio
requests for a thread-bound model (the serving frameworks that do bring their own server).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np


class MicroBatcher:
    def __init__(
        self,
        search_fn: Callable[[list[str], int], tuple[np.ndarray, np.ndarray]],
        executor: Executor,
        window_ms: float = 2.0,
        max_batch: int = 256,
    ) -> None:
        self.search_fn = search_fn
        self.executor = executor
        self.window = window_ms / 1000.0
        self.max_batch = int(max_batch)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.calls = 0  # model calls made (for /info and the load benchmark)
        self.queries = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((queries, k, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            pending, n = [first], len(first[0])
            deadline = time.perf_counter() + self.window
            while n < self.max_batch:
                timeout = deadline - time.perf_counter()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                pending.append(item)
                n += len(item[0])
            by_k: dict[int, list] = {}
            for item in pending:
                by_k.setdefault(item[1], []).append(item)
            for k, group in by_k.items():
                await self._call(loop, k, group)

    async def _call(self, loop, k: int, group: list) -> None:
        queries = [q for item in group for q in item[0]]
        try:
            ids, scores = await loop.run_in_executor(self.executor, self.search_fn, queries, k)
        except Exception as e:  # every waiting request gets the error, the loop goes on
            for _, _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        self.calls += 1
        self.queries += len(queries)
        start = 0
        for item_queries, _, future in group:
            end = start + len(item_queries)
            if not future.done():  # a client that went away
                future.set_result((ids[start:end], scores[start:end]))
            start = end
