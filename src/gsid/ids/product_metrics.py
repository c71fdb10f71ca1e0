"""Product-understanding metrics: how well code prefixes agree with a human category tree.

    groups = prefix_groups(ids.codes, 2)                  # (N,) dense id of each item's 2-code prefix
    ami(categories[0], groups)                            # sklearn adjusted mutual information
    purity(groups, categories[1])                         # weighted majority share per code group
    coverage(groups, categories[1], min_size=5, min_purity=0.8)
    product_understanding(ids, categories)                # all prefixes x all category levels

Definitions (shared by every ID builder, GSID included):
- **code group at prefix length p**: the items whose IDs agree on their first p codes. An ID
  shorter than p forms its group with the IDs equal to it (its whole code is its prefix).
- **AMI** (adjusted mutual information, sklearn `adjusted_mutual_info_score`, arithmetic
  normalisation): 0 = no more agreement than chance, 1 = the groups are the categories.
- **purity**: sum over groups of (items of the group's majority category) / N. It rises to 1 as
  groups shrink (singletons are pure), so read it with the number of groups or with coverage.
- **coverage**: share of items that sit in a code group with >= `min_size` items (default 5: a
  group must be big enough to be a "class" a merchandiser would name) and purity >= `min_purity`
  (default 0.8: four out of five of its items share one category). It rewards groups that are both
  large and clean, which singletons (pure but tiny) and coarse groups (large but mixed) are not.

Items whose category label is missing (None / NaN) are left out of every metric of that level,
as are items outside `mask` (e.g. a "missing" department that should not count as a class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

from gsid.errors import GsidError

DEFAULT_MIN_SIZE = 5
DEFAULT_MIN_PURITY = 0.8


def _codes_of(ids: Any) -> np.ndarray:
    """Accept a SemanticIDs (or anything with `.codes`) or a plain (N, L) code matrix."""
    codes = np.asarray(ids.codes if hasattr(ids, "codes") else ids)
    if codes.ndim != 2:
        raise GsidError(
            f"codes must be a 2-d (N, L) matrix with -1 past each ID's length, got shape "
            f"{codes.shape}; pass SemanticIDs or ids.codes"
        )
    return codes


def prefix_groups(codes: Any, prefix_len: int) -> np.ndarray:
    """(N,) int64 dense group index of each item's first `prefix_len` codes (-1 padding kept,
    so a short ID is its own group, never merged with its extensions)."""
    codes = _codes_of(codes)
    n, L = codes.shape
    if not 1 <= prefix_len <= L:
        raise GsidError(f"prefix_len must be in 1..{L} (the number of levels), got {prefix_len}")
    # Re-densify after each level so the mixed-radix key never overflows, whatever L and K are.
    key = np.zeros(n, np.int64)
    for j in range(prefix_len):
        col = codes[:, j].astype(np.int64) + 1  # padding -1 -> 0
        key = key * (int(col.max(initial=0)) + 1) + col
        _, key = np.unique(key, return_inverse=True)
        key = key.ravel().astype(np.int64)
    return key


def _labels(categories: Any, n: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Factorised labels (N,) and the boolean selection of items that count."""
    cat = np.asarray(categories, dtype=object).ravel()
    if cat.shape[0] != n:
        raise GsidError(
            f"category labels have {cat.shape[0]} entries for {n} items; give one label per item "
            f"in the same order as the IDs"
        )
    codes, _ = pd.factorize(pd.Series(cat), use_na_sentinel=True)
    keep = codes >= 0
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).ravel()
        if mask.shape[0] != n:
            raise GsidError(f"mask has {mask.shape[0]} entries for {n} items")
        keep &= mask
    return codes.astype(np.int64), keep


def ami(categories: Any, groups: Any) -> float:
    """Adjusted mutual information between labels and code groups (sklearn, arithmetic mean)."""
    return float(adjusted_mutual_info_score(np.asarray(categories), np.asarray(groups)))


def group_table(groups: Any, categories: Any) -> pd.DataFrame:
    """One row per code group: size, majority category count, purity."""
    g = np.asarray(groups).ravel()
    c = pd.factorize(pd.Series(np.asarray(categories, dtype=object).ravel()))[0]
    if g.shape != c.shape:
        raise GsidError(f"groups ({g.shape[0]}) and categories ({c.shape[0]}) must align")
    df = pd.DataFrame({"g": g, "c": c})
    pair = df.groupby(["g", "c"], sort=False).size()
    major = pair.groupby(level=0).max()
    size = df.groupby("g", sort=False).size()
    out = pd.DataFrame({"size": size, "majority": major.reindex(size.index)})
    out["purity"] = out["majority"] / out["size"]
    return out


def purity(groups: Any, categories: Any) -> float:
    """Weighted share of each group's majority category: sum_g max_c n_gc / N."""
    t = group_table(groups, categories)
    n = int(t["size"].sum())
    return float(t["majority"].sum() / n) if n else 0.0


def coverage(
    groups: Any,
    categories: Any,
    min_size: int = DEFAULT_MIN_SIZE,
    min_purity: float = DEFAULT_MIN_PURITY,
) -> float:
    """Share of items in groups with >= `min_size` items and purity >= `min_purity`."""
    if min_size < 1 or not 0.0 <= min_purity <= 1.0:
        raise GsidError(
            f"need min_size >= 1 and 0 <= min_purity <= 1, got min_size={min_size}, "
            f"min_purity={min_purity}"
        )
    t = group_table(groups, categories)
    n = int(t["size"].sum())
    if n == 0:
        return 0.0
    good = (t["size"] >= min_size) & (t["purity"] >= min_purity - 1e-12)
    return float(t.loc[good, "size"].sum() / n)


def product_understanding(
    ids: Any,
    categories: Sequence[Any],
    category_names: Sequence[str] | None = None,
    prefix_lengths: Sequence[int] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    min_purity: float = DEFAULT_MIN_PURITY,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """AMI, purity, coverage and group count of every prefix length against every category level.

    Returns a JSON-able dict: {"settings": {...}, "levels": [{"category": name, "n_items": n,
    "n_classes": c, "by_prefix": [{"prefix_len", "n_groups", "ami", "purity", "coverage"}, ...]}]}
    """
    codes = _codes_of(ids)
    n, L = codes.shape
    if isinstance(categories, np.ndarray) and categories.ndim == 1:
        categories = [categories]
    names = (
        list(category_names)
        if category_names is not None
        else [f"level{i + 1}" for i in range(len(categories))]
    )
    if len(names) != len(categories):
        raise GsidError(f"{len(names)} category names for {len(categories)} category levels")
    plens = list(prefix_lengths) if prefix_lengths is not None else list(range(1, L + 1))
    groups = {p: prefix_groups(codes, p) for p in plens}
    levels = []
    for name, cat in zip(names, categories, strict=True):
        labels, keep = _labels(cat, n, mask)
        rows = []
        for p in plens:
            g = groups[p][keep]
            y = labels[keep]
            rows.append(
                {
                    "prefix_len": int(p),
                    "n_groups": len(np.unique(g)),
                    "ami": ami(y, g) if len(y) else 0.0,
                    "purity": purity(g, y) if len(y) else 0.0,
                    "coverage": coverage(g, y, min_size, min_purity) if len(y) else 0.0,
                }
            )
        levels.append(
            {
                "category": name,
                "n_items": int(keep.sum()),
                "n_classes": len(np.unique(labels[keep])),
                "by_prefix": rows,
            }
        )
    return {
        "settings": {"min_size": int(min_size), "min_purity": float(min_purity)},
        "levels": levels,
    }
