"""The click log: each query's judged pool ranked by a simple lexical ranker, shown, examined
with a position bias and clicked with a probability set by grade and popularity."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from gsid.data.synthetic.arrays import member, ranges, rank_in_group, sorted_unique
from gsid.data.synthetic.config import SyntheticConfig
from gsid.data.synthetic.items import Items
from gsid.data.synthetic.judgments import Pool
from gsid.data.synthetic.queries import Queries

_TOKEN = re.compile(r"[a-z0-9]+|\n")


def _token_ids(texts: Any, vocab: dict[str, int] | None = None):
    """Simple lexical analysis of the simulated search engine: lower-case alphanumeric runs, a
    trailing plural "s" stripped. Returns (owner, token id, vocabulary)."""
    # one regex pass over all texts joined by newlines (texts have none): no per-text overhead
    toks = _TOKEN.findall("\n".join(t.replace("\n", " ") for t in texts).lower() + "\n")
    codes, uniques = pd.factorize(np.asarray(toks, dtype=object))
    newline = codes == uniques.tolist().index("\n")
    owner = np.cumsum(newline) - newline  # the text each token belongs to
    stems = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in uniques
    ]
    if vocab is None:
        vocab = {}
    stem_ids = np.asarray([vocab.setdefault(s, len(vocab)) for s in stems], dtype=np.int64)
    keep = ~newline
    return owner[keep], stem_ids[codes[keep]], vocab


def simulate_log(
    items: Items, queries: Queries, pool: Pool, cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per query string: rank its judged pool with a lexical ranker, show the top list_length,
    and draw clicks from a position-bias examination model. Returns (row, item, grade, clicks)
    for every judged (query row, item) pair."""
    N = len(items.type)
    g = queries.intent
    row, pidx = ranges(pool.ptr[g], pool.ptr[g + 1] - pool.ptr[g])
    item, grade = pool.item[pidx], pool.grade[pidx]
    # BM25-like lexical evidence: IDF-weighted share of the query's terms found in the title
    t_owner, t_tok, vocab = _token_ids(items.titles)
    V = len(vocab) + 1
    ikeys = sorted_unique(t_owner * V + t_tok)
    df = np.bincount(ikeys % V, minlength=V)
    idf = np.log(1 + (N - df + 0.5) / (df + 0.5))
    q_owner, q_tok, _ = _token_ids(queries.text, dict(vocab))
    known = q_tok < V - 1  # words no title uses match nothing
    qk = sorted_unique(q_owner[known] * V + q_tok[known])
    q_owner, q_tok = qk // V, qk % V
    q_ptr = np.searchsorted(q_owner, np.arange(len(queries.text) + 1))
    q_total = np.bincount(q_owner, weights=idf[q_tok], minlength=len(queries.text))
    p_of, tpos = ranges(q_ptr[row], q_ptr[row + 1] - q_ptr[row])
    want = item[p_of] * V + q_tok[tpos]
    hit = member(want, ikeys)
    lex = np.bincount(p_of, weights=idf[q_tok[tpos]] * hit, minlength=len(row))
    coverage = lex / np.maximum(q_total[row], 1e-9)
    zpop = (items.log_pop - items.log_pop.mean()) / max(items.log_pop.std(), 1e-9)
    score = coverage + 0.2 * zpop[item] + 0.2 * rng.standard_normal(len(row))
    order = np.lexsort((-score, row))
    rank = np.empty(len(row), dtype=np.int64)
    rank[order] = rank_in_group(row[order])
    examine = (1.0 + rank) ** -cfg.position_bias
    attract = np.asarray(cfg.click_prob)[grade] * np.exp(0.25 * zpop[item])
    p = np.where(rank < cfg.list_length, np.clip(examine * attract, 0.0, 1.0), 0.0)
    clicks = rng.binomial(queries.searches[row].astype(np.int64), p)
    return row, item, grade, clicks
