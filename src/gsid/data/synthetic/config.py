"""Configuration of the synthetic marketplace: SyntheticConfig (every knob of the generator),
the catalogue-size limits, the size-dependent defaults and the validation of make_marketplace's
arguments."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from gsid.data.splits import BucketRule, check_fractions
from gsid.errors import check_options

GENERATOR_VERSION = 1
MIN_ITEMS = 100
MAX_ITEMS = 5_000_000


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the generator (all documented in docs/synthetic.md). Pass any of them
    to make_marketplace as keyword options."""

    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    relevance_threshold: float = 2.5
    bucket_rule: BucketRule = field(default_factory=BucketRule)
    with_descriptions: bool = True
    # catalogue
    type_sigma: float = 0.6  # lognormal spread of product-type sizes
    brand_zipf: float = 1.1  # Zipf exponent of brand shares within a category
    value_zipf: float = 0.8  # Zipf exponent of attribute-value shares
    popularity_sigma: float = 1.0  # lognormal sigma of the latent item popularity
    title_noun_canonical: float = 0.55  # share of titles using the type's canonical noun
    title_attr_omit: float = 0.3  # chance that an attribute is missing from the title
    json_attr_omit: float = 0.1  # chance that an attribute is missing from `attributes`
    brand_omit: float = 0.04  # chance that the brand is missing from the title
    title_typo_rate: float = 0.05  # share of titles with one typo
    caps_rate: float = 0.04  # share of ALL-CAPS titles
    marketing_rate: float = 0.2  # share of titles with marketing words
    stuffing_rate: float = 0.06  # share of titles with keyword stuffing
    model_code_rate: float = 0.35  # share of titles with a model code (e.g. "VO-2041")
    # queries
    query_zipf: float = 0.8  # Zipf exponent of searches over intents ranked by appeal
    searches_per_query: float = 20.0  # mean searches per intent before thinning
    query_noun_canonical: float = 0.6  # share of queries using the canonical noun
    query_typo_rate: float = 0.03  # typo chance of an intent's main spelling
    variant_typo_rate: float = 0.5  # typo chance of each extra spelling
    # judgments
    # judged grade-3 items per query (all when fewer exist); None: auto_judged_relevant(n_items)
    judged_relevant: int | None = None
    judged_near: int = 8  # same type, a constraint differs (grade 2)
    judged_category: int = 4  # same category, other type (grade 1)
    judged_lexical: int = 4  # items of look-alike types ("tv" -> "tv mount")
    judged_random: int = 3  # random items
    # clicks
    list_length: int = 10  # results shown per search
    position_bias: float = 1.0  # P(examine rank k) = 1 / k**position_bias
    click_prob: tuple[float, float, float, float] = (0.01, 0.03, 0.1, 0.3)  # by grade 0..3

    def __post_init__(self) -> None:
        check_fractions(self.split_fractions)
        if not isinstance(self.bucket_rule, BucketRule):
            raise ValueError(
                f"bucket_rule must be a BucketRule, got {type(self.bucket_rule).__name__}"
            )
        for name in ("title_noun_canonical", "title_attr_omit", "json_attr_omit", "brand_omit",
                     "title_typo_rate", "caps_rate", "marketing_rate", "stuffing_rate",
                     "model_code_rate", "query_noun_canonical", "query_typo_rate",
                     "variant_typo_rate"):  # fmt: skip
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {v!r}")
        for name in ("type_sigma", "brand_zipf", "value_zipf", "popularity_sigma", "query_zipf",
                     "position_bias"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.searches_per_query <= 0:
            raise ValueError(f"searches_per_query must be > 0, got {self.searches_per_query!r}")
        for name in ("judged_relevant", "list_length"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("judged_near", "judged_category", "judged_lexical", "judged_random"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if len(self.click_prob) != 4 or not all(0 <= p <= 1 for p in self.click_prob):
            raise ValueError(
                f"click_prob must be 4 probabilities (grades 0..3), got {self.click_prob!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bucket_rule"] = self.bucket_rule.to_dict()
        d["split_fractions"] = list(self.split_fractions)
        d["click_prob"] = list(self.click_prob)
        return d


OPTIONS = tuple(f.name for f in fields(SyntheticConfig))


def auto_judged_relevant(n_items: int) -> int:
    """Relevant items judged per query by default: 100 up to 20k items (judgments complete for
    nearly every query), falling to 30 at 67k items and above (pooled: see docs/synthetic.md)."""
    return int(np.clip(2_000_000 // max(n_items, 1), 30, 100))


def default_n_queries(n_items: int) -> int:
    """Distinct query strings generated when n_queries is None: n_items / 2, within 500..100k."""
    return int(min(max(500, n_items // 2), 100_000))


def resolve(
    n_items: int, n_queries: int | None, seed: int, options: dict
) -> tuple[int, int, SyntheticConfig]:
    """Validate make_marketplace's arguments and fill the size-dependent defaults:
    (n_items, n_queries, config)."""
    check_options(options, OPTIONS, "make_marketplace")
    if (
        isinstance(n_items, bool)
        or not isinstance(n_items, int | np.integer)
        or not MIN_ITEMS <= n_items <= MAX_ITEMS
    ):
        raise ValueError(
            f"n_items must be an integer in [{MIN_ITEMS}, {MAX_ITEMS}], got {n_items!r}"
        )
    if n_queries is None:
        n_queries = default_n_queries(int(n_items))
    if isinstance(n_queries, bool) or not isinstance(n_queries, int | np.integer) or n_queries < 10:
        raise ValueError(
            f"n_queries must be an integer >= 10 or None (default n_items/2), got {n_queries!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    opts = dict(options)
    for name in ("split_fractions", "click_prob"):
        if name in opts:
            opts[name] = tuple(opts[name])
    if opts.get("judged_relevant") is None:
        opts["judged_relevant"] = auto_judged_relevant(int(n_items))
    if isinstance(opts.get("bucket_rule"), str):
        opts["bucket_rule"] = BucketRule.parse(opts["bucket_rule"])
    elif isinstance(opts.get("bucket_rule"), dict):
        opts["bucket_rule"] = BucketRule.from_dict(opts["bucket_rule"])
    return int(n_items), int(n_queries), SyntheticConfig(**opts)
