"""Shared fixtures. `small_market` is the seeded synthetic marketplace most tests can use."""

from __future__ import annotations

import os

import pytest

from gsid.data import Dataset

# quiet tests: progress lines are written when stderr is not a terminal (tests opt in)
os.environ.setdefault("GSID_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def small_market() -> Dataset:
    """1,000 items, ~500 queries, seed 0 (generated once per test session, well under a second).

    Session-scoped and shared: tests must not modify it (copy the frames first if needed)."""
    from gsid.data.synthetic import make_marketplace

    return make_marketplace(n_items=1000, seed=0)
