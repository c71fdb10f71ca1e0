"""Home Depot dev split in two random halves, for settings chosen on half A and checked on
half B (the lexical tuning scripts and the DPO sweep share these halves)."""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("R@1", "R@10", "R@100", "MRR@100")


class DevHalves:
    """The dev queries with expected items in split order, and a seeded half (0 = A, 1 = B)
    for each."""

    def __init__(self, ds, seed: int = 0) -> None:
        self.expected = ds.expected("dev")
        dev = ds.split_queries("dev")
        dev = dev[dev["query_id"].isin(list(self.expected))]
        self.qids, self.queries = dev["query_id"].tolist(), dev["query"].tolist()
        self.half = np.random.default_rng(seed).permutation(len(self.qids)) % 2
        self.buckets = ds.buckets()

    def of(self, query_ids: list[str]) -> np.ndarray:
        """The half of each of these query ids (another ordering of the same queries)."""
        where = dict(zip(self.qids, self.half, strict=True))
        return np.array([where[q] for q in query_ids])

    def scores(self, res, tail: tuple[str, ...] = ("R@100",)) -> dict[str, dict[str, Any]]:
        """Percent metrics of rankings (row i = query i) on A, B and all dev, each with the
        tail bucket's `tail` metrics as 'tail R@k'."""
        from gsid.eval.metrics import evaluate

        out = {}
        for name, mask in (("A", self.half == 0), ("B", self.half == 1), ("all", self.half >= 0)):
            rows = np.flatnonzero(mask)
            sub = type(res)(res.ids[rows], res.scores[rows])
            rep = evaluate(sub, [self.qids[i] for i in rows], self.expected, self.buckets)
            out[name] = {m: 100 * rep["overall"][m] for m in METRICS}
            out[name].update({f"tail {m}": 100 * rep["tail"][m] for m in tail})
        return out
