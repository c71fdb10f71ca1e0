"""Lexical generative retrieval: a seq2seq model writes title spans under a suffix-array
constraint; the spans are matched back to products with SEAL's scoring.

    lx = LexicalRetriever(n_spans=3, max_span_tokens=4, dpo=True).index(dataset)
    ids, scores = lx.search(["cordless drill"], k=10)
    lx.save("runs/lexical"); LexicalRetriever.load("runs/lexical")
    SEALRetriever().index(dataset)        # the SEAL-style baseline: one n-gram per generation

`index` reads the catalogue and the train split only:
  1. a catalogue tokenizer and a T5 from scratch (SpanModel; or a local T5 checkpoint with
     model={"model_path": ...}); the span index (SpanIndex) over the items' token ids
     (`fields`: titles by default; other text columns become further segments of an item);
  2. SFT on (query -> spans of a relevant item's title, chosen by `span_rule`) plus indexing
     examples (title -> its own spans) for items no training query touches;
  3. with `dpo`, preference optimisation: per training query, chosen = the best beam the SFT
     model itself writes under the constraint whose spans retrieve a relevant item (`dpo_chosen`);
     rejected = beams whose spans retrieve no relevant item (a judged non-relevant one first).
Search: constrained beam search (span_beam.py) -> distinct spans with their best log-prob ->
SEAL scoring (scoring.py). A query whose tokens are all unknown returns no items and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gsid._device import torch_threads
from gsid._progress import progress
from gsid.errors import ArtifactError, DataValidationError, GsidError
from gsid.models.lexical.span_model import SpanModel, SpanModelConfig
from gsid.models.lexical.targets import RULES, TitleSpans
from gsid.retrieval.base import Retriever, SearchResults
from gsid.retrieval.lexical.scoring import seal_rank
from gsid.retrieval.lexical.span_beam import distinct_spans, generate_spans, start_tokens
from gsid.text.span_index import BACKENDS, SpanIndex

logger = logging.getLogger(__name__)


class LexicalRetriever(Retriever):
    """Query -> multi-span generative retriever (SFT, then DPO), SEAL-scored.

    n_spans, max_span_tokens: S spans of 1..L tokens per generation (both >= 1).
    span_rule: "multi_span" (intent first, then the rarest; targets.py), "seal", or a callable
        (spans, item_row, query_tokens, n_spans=, max_len=, rng=) -> list of token lists.
    beam_width: beams per query; alpha, coverage, depth, max_locate: SEAL scoring (scoring.py).
    index_examples: title -> spans examples for items no training query touches.
    dpo: preference optimisation after SFT; dpo_beam: beams per training query when mining
        rejected span sets; dpo_rejected: rejected sequences per query (each a pair; 4 and
        dpo_beta 0.3 were the best on half of Home Depot dev, see docs/lexical.md);
        dpo_chosen: "policy-only" (the best mined beam that retrieves a relevant item; no pair
        for a query where none does), "policy" (there, the span rule's target of the query's
        most relevant item instead) or "target" (always that target); dpo_rounds: rounds of
        mining with the current model and DPO against it (iterative DPO; 1: against SFT
        only; 3, the default, was the best on half of Home Depot dev: of 1-5 rounds with
        the all-spans rule, by R@10, and of 3-5 with the top-10 rule, by R@100);
        dpo_retrieve_k: what a mined beam "retrieves": the top dpo_retrieve_k items of its own
        SEAL ranking (10), or with 0 the items whose title holds all its spans. The latter
        rewards vague beams (one common span is held by thousands of items, a relevant one
        among them): DPO then learnt to write one short span and stop, and R@100 fell.
    model: SpanModelConfig options (epochs, d_model, dpo_beta, ...).
    fields: item columns indexed as spans (each a segment of the item).
    index_backend: the suffix-array builder, "divsufsort" or "tokengrams" (SpanIndex.build).
    """

    name = "lexical"
    _decode_spans: int | None = None  # spans written per generation (None: n_spans)

    def __init__(
        self,
        n_spans: int = 3,
        max_span_tokens: int = 4,
        span_rule: str | Callable = "multi_span",
        beam_width: int = 10,
        alpha: float = 2.0,
        coverage: float = 0.8,
        depth: int = 200,
        max_locate: int = 10000,
        index_examples: bool = True,
        dpo: bool = True,
        dpo_beam: int = 8,
        dpo_rejected: int = 4,
        dpo_chosen: str = "policy-only",
        dpo_rounds: int = 3,
        dpo_retrieve_k: int = 10,
        model: dict[str, Any] | None = None,
        fields: list[str] | None = None,
        index_backend: str = "divsufsort",
        batch_size: int = 64,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("n_spans", n_spans), ("max_span_tokens", max_span_tokens),
                        ("beam_width", beam_width), ("batch_size", batch_size),
                        ("dpo_rounds", dpo_rounds)):  # fmt: skip
            if not isinstance(v, int | np.integer) or v < 1:
                raise GsidError(f"{name} must be an integer >= 1, got {v!r}")
        if not isinstance(dpo_retrieve_k, int | np.integer) or dpo_retrieve_k < 0:
            raise GsidError(f"dpo_retrieve_k must be an integer >= 0, got {dpo_retrieve_k!r}")
        if isinstance(span_rule, str) and span_rule not in RULES:
            raise GsidError(f"span_rule {span_rule!r} is unknown; choose one of {list(RULES)}")
        model = dict(model or {})
        if "seed" in model:
            raise GsidError("model option 'seed' is set by the retriever: pass seed= instead")
        SpanModelConfig.from_dict({**model, "seed": seed})  # validate early
        self.n_spans, self.max_span_tokens = int(n_spans), int(max_span_tokens)
        self.span_rule = span_rule
        self.beam_width = int(beam_width)
        self.alpha, self.coverage, self.depth = float(alpha), float(coverage), int(depth)
        self.max_locate = int(max_locate)
        self.index_examples, self.dpo, self.dpo_beam = (
            bool(index_examples),
            bool(dpo),
            int(dpo_beam),
        )
        self.dpo_rejected = int(dpo_rejected)
        if dpo_chosen not in ("target", "policy", "policy-only"):
            raise GsidError(
                f"dpo_chosen must be 'target', 'policy' or 'policy-only', got {dpo_chosen!r}"
            )
        self.dpo_chosen = dpo_chosen
        self.dpo_rounds = int(dpo_rounds)
        self.dpo_retrieve_k = int(dpo_retrieve_k)
        self.model = model
        self.fields = list(fields or ["title"])
        if index_backend not in BACKENDS:
            raise GsidError(
                f"index_backend {index_backend!r} is unknown; choose one of {list(BACKENDS)}"
            )
        self.index_backend = index_backend
        self.batch_size, self.seed, self.device = int(batch_size), int(seed), device
        self.model_: SpanModel | None = None
        self.index_: SpanIndex | None = None
        self.row_item_: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        rule = self.span_rule if isinstance(self.span_rule, str) else "multi_span"
        return {
            "n_spans": self.n_spans, "max_span_tokens": self.max_span_tokens, "span_rule": rule,
            "beam_width": self.beam_width, "alpha": self.alpha, "coverage": self.coverage,
            "depth": self.depth, "max_locate": self.max_locate,
            "index_examples": self.index_examples, "dpo": self.dpo, "dpo_beam": self.dpo_beam,
            "dpo_rejected": self.dpo_rejected, "dpo_chosen": self.dpo_chosen,
            "dpo_rounds": self.dpo_rounds, "dpo_retrieve_k": self.dpo_retrieve_k,
            "model": self.model, "fields": self.fields, "index_backend": self.index_backend,
            "batch_size": self.batch_size, "seed": self.seed, "device": self.device,
        }  # fmt: skip

    # ------------------------------------------------------------------ indexing
    def _rule(self) -> Callable:
        return RULES[self.span_rule] if isinstance(self.span_rule, str) else self.span_rule

    def _segments(self, dataset) -> list[str]:
        items = dataset.items
        missing = [f for f in self.fields if f not in items.columns]
        if missing:
            raise DataValidationError(
                f"fields {missing} are not item columns; the catalogue has {list(items.columns)}"
            )
        return [str(t) if t is not None else "" for f in self.fields for t in items[f].tolist()]

    def _build_index(self, segments: list[str], n_items: int) -> None:
        toks = self.model_.tokenize(segments)
        unk = self.model_.tokenizer_.unk_token_id
        toks = [[t for t in row if t != unk] for row in toks]  # [UNK] is no span
        self.index_ = SpanIndex.build(toks, self.model_.vocab_size, self.index_backend)
        self.row_item_ = np.tile(np.arange(n_items, dtype=np.int32), len(self.fields))

    def index(self, dataset, show_progress: bool | None = None) -> LexicalRetriever:
        try:
            return super().index(dataset, show_progress)
        except BaseException:
            self.item_ids_ = None  # a failed index leaves nothing that looks fitted
            raise

    def _index(self, dataset, show_progress: bool | None) -> None:
        n = len(dataset.items)
        if n == 0:
            raise DataValidationError("the catalogue is empty: nothing to index")
        pairs = dataset.training_pairs("train")
        cfg = SpanModelConfig.from_dict({**self.model, "seed": self.seed})
        segments = self._segments(dataset)
        self.model_ = SpanModel(cfg, device=self.device).prepare(
            segments + pairs["query"].drop_duplicates().tolist()  # every field's words
        )
        if cfg.pretrain_batches:
            self.model_.pretrain(dataset, show_progress)
        self._build_index(segments, n)
        spans = self._title_spans()
        sources, targets = self._examples(dataset, pairs, spans)
        if not sources:
            raise DataValidationError(
                f"{dataset.name}: no training examples (no train pairs and index_examples off)"
            )
        with torch_threads(cfg.num_threads):
            self.model_.fit(sources, targets, show_progress=show_progress)
        if self.dpo and len(pairs):
            self.optimise_preferences(dataset, spans, show_progress)

    def _title_spans(self) -> TitleSpans:
        m = self.model_
        return TitleSpans(self.index_, m.continuation_mask(), self.max_span_tokens,
                          m.punctuation_mask())  # fmt: skip

    def _examples(self, dataset, pairs, spans: TitleSpans) -> tuple[list[str], list[list[int]]]:
        rule, rng = self._rule(), np.random.default_rng(self.seed)
        pos = {s: i for i, s in enumerate(dataset.item_ids)}
        rows = pairs["item_id"].map(pos).to_numpy(np.int64)
        qtok = self.model_.tokenize(pairs["query"].tolist())
        sources, targets = [], []
        for q, item, qt in zip(pairs["query"].tolist(), rows, qtok, strict=True):
            self._add(sources, targets, q, rule(spans, int(item), qt, n_spans=self.n_spans,
                      max_len=self.max_span_tokens, rng=rng))  # fmt: skip
        if self.index_examples:
            cold = np.setdiff1d(np.arange(len(dataset.items)), rows)
            titles = dataset.items["title"].tolist()
            for item in cold:
                self._add(sources, targets, titles[item], rule(spans, int(item), None,
                          n_spans=self.n_spans, max_len=self.max_span_tokens, rng=rng))  # fmt: skip
        return sources, targets

    def _add(self, sources, targets, source: str, chosen: list[list[int]]) -> None:
        if chosen:
            sources.append(source)
            targets.append(self.model_.join(chosen))

    # ------------------------------------------------------------------ preferences
    def preference_pairs(
        self, dataset, spans: TitleSpans | None = None, show_progress: bool | None = None
    ) -> tuple[list[str], list[list[int]], list[list[int]]]:
        """(queries, chosen, rejected) token sequences mined with the current model."""
        spans = spans or self._title_spans()
        pairs = dataset.training_pairs("train").sort_values("weight", ascending=False)
        pos = {s: i for i, s in enumerate(dataset.item_ids)}
        rel = pairs.groupby("query_id")["item_id"].agg(lambda s: {pos[i] for i in s}).to_dict()
        best = pairs.drop_duplicates("query_id")  # the most relevant item of each query
        j = dataset.judgments
        bad = j[j["grade"] < dataset.relevance_threshold]
        nonrel = bad.groupby("query_id")["item_id"].agg(lambda s: {pos[i] for i in s}).to_dict()
        rule, rng = self._rule(), np.random.default_rng(self.seed + 7)
        queries = best["query"].tolist()
        qtok = self.model_.tokenize(queries)
        beams = self._generate(queries, self.dpo_beam, show_progress, "mining DPO pairs")
        src, chosen, rejected = [], [], []
        for qid, q, item, qt, bs in zip(best["query_id"], queries, best["item_id"], qtok, beams,
                                        strict=True):  # fmt: skip
            good = rule(spans, pos[item], qt, n_spans=self.n_spans,
                        max_len=self.max_span_tokens, rng=rng)  # fmt: skip
            if not good:
                continue
            relevant = rel.get(qid, set())
            found = [self._retrieved(b) for b in bs]
            target = self.model_.join(good)
            if self.dpo_chosen != "target":  # the best beam that retrieves a relevant item
                hit = next((b for b, f in zip(bs, found, strict=True) if f & relevant), None)
                if hit is not None:
                    target = self.model_.join(hit.spans)
                elif self.dpo_chosen == "policy-only":
                    continue
            for pick in self._rejected(bs, found, relevant, nonrel.get(qid, set()), target):
                src.append(q)
                chosen.append(target)
                rejected.append(pick)
        return src, chosen, rejected

    def _retrieved(self, beam) -> set[int]:
        """The items a mined beam retrieves: the top `dpo_retrieve_k` of its own SEAL ranking,
        or (0) those whose title holds every span of the beam (longest span located first)."""
        if self.dpo_retrieve_k:
            return set(self._rank_beams([beam], self.dpo_retrieve_k)[0].tolist())
        items: set[int] | None = None
        for s in sorted(beam.spans, key=len, reverse=True):
            rows, _ = self.index_.locate(list(s))
            found = set(self.row_item_[rows].tolist())
            items = found if items is None else items & found
            if not items:
                break
        return items or set()

    def _rejected(self, beams, found, relevant: set[int], judged_bad: set[int], target) -> list:
        """Up to `dpo_rejected` span sequences of the beams (best first) that retrieve some
        items but no relevant one: those retrieving a judged non-relevant item first."""
        first, later = [], []
        for b, items in zip(beams, found, strict=True):
            seq = self.model_.join(b.spans)
            if seq == target or not items or items & relevant:
                continue
            (first if items & judged_bad else later).append(seq)
        return (first + later)[: self.dpo_rejected]

    def optimise_preferences(
        self, dataset, spans: TitleSpans | None = None, show_progress: bool | None = None
    ) -> LexicalRetriever:
        """`dpo_rounds` rounds of DPO on pairs mined with the current model (the SFT model in
        the first round), the reference being the model the round starts from."""
        self.n_preference_pairs_ = 0
        spans = spans or self._title_spans()  # the catalogue's candidate spans, once
        for r in range(self.dpo_rounds):
            src, chosen, rejected = self.preference_pairs(dataset, spans, show_progress)
            logger.info("DPO round %d: %d preference pairs", r + 1, len(src))
            self.n_preference_pairs_ += len(src)
            if not src:
                break
            with torch_threads(self.model_.config.num_threads):
                self.model_.fit_preferences(src, chosen, rejected, show_progress)
        return self

    # ------------------------------------------------------------------ search
    def _generate(self, queries, width: int, show_progress=None, desc="span beams"):
        out = []
        m = self.model_
        punct = m.punctuation_mask()
        start = start_tokens(self.index_, m.continuation_mask(), punct)
        with torch_threads(self.model_.config.num_threads):
            for s in progress(range(0, len(queries), self.batch_size), show_progress, desc=desc):
                out += generate_spans(
                    self.model_, self.index_, queries[s : s + self.batch_size], width,
                    self._decode_spans or self.n_spans, self.max_span_tokens, start, punct,
                )  # fmt: skip
        return out

    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        out = SearchResults.empty(len(queries), k)
        unk = self.model_.tokenizer_.unk_token_id
        known = [any(t != unk for t in row) for row in self.model_.tokenize(queries)]
        if not all(known):
            logger.warning(
                "%d of %d queries have no known token (e.g. %r): no items for them",
                known.count(False), len(queries), queries[known.index(False)],
            )  # fmt: skip
        live = [q for q, ok in zip(queries, known, strict=True) if ok]
        where = [i for i, ok in enumerate(known) if ok]
        beams = self._generate(live, self.beam_width, show_progress) if live else []
        for i, bs in zip(where, beams, strict=True):
            items, scores = self._rank_beams(bs, k)
            out.ids[i, : len(items)] = self.item_ids_[items]
            out.scores[i, : len(items)] = scores
        return out

    def _rank_beams(self, beams: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        """One query's beams -> its top-k item rows and scores: every distinct span with its
        best log-probability and its interval, SEAL-scored (so scoring settings can be tried
        on beams generated once)."""
        spans, logp, intervals = distinct_spans(beams)
        return seal_rank(
            self.index_, spans, logp, k, self.row_item_,
            self.alpha, self.coverage, self.depth, self.max_locate, intervals,
        )  # fmt: skip

    def generated_spans(self, queries: list[str]) -> list[list[tuple[int, ...]]]:
        """The distinct spans the beams write for each query (for diagnostics and tests)."""
        return [
            sorted({s for b in bs for s in b.spans})
            for bs in self._generate(queries, self.beam_width)
        ]

    # ------------------------------------------------------------------ size and persistence
    def index_bytes(self) -> int:
        if self.index_ is None:
            return 0
        return int(self.index_.nbytes())  # row_item_ is recomputed on load: not stored

    def _save_state(self, directory: Path) -> None:
        self.model_.save(directory / "model")
        self.index_.save(directory / "spans")

    def _load_state(self, directory: Path) -> None:
        try:
            self.model_ = SpanModel.load(directory / "model", device=self.device)
            self.index_ = SpanIndex.load(directory / "spans")
        except FileNotFoundError as e:
            raise ArtifactError(f"{directory}: {Path(e.filename).name} is missing; re-index") from e
        n = len(self.item_ids_)
        if self.index_.n_items != n * len(self.fields):
            raise ArtifactError(
                f"{directory}: the span index holds {self.index_.n_items} segments for {n} items "
                f"x {len(self.fields)} fields; the files are mixed: re-index"
            )
        self.row_item_ = np.tile(np.arange(n, dtype=np.int32), len(self.fields))


class SEALRetriever(LexicalRetriever):
    """SEAL-style baseline: the same model, index and scoring, trained query -> one title
    n-gram per example (SEAL's targets; `seal_samples` n-grams per training pair), decoding
    one span per beam with a wider beam."""

    name = "seal"
    _decode_spans = 1

    def __init__(
        self,
        seal_samples: int = 3,
        max_span_tokens: int = 4,
        beam_width: int = 30,
        alpha: float = 2.0,
        coverage: float = 0.8,
        depth: int = 200,
        max_locate: int = 10000,
        index_examples: bool = True,
        model: dict[str, Any] | None = None,
        fields: list[str] | None = None,
        index_backend: str = "divsufsort",
        batch_size: int = 64,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__(
            n_spans=seal_samples, max_span_tokens=max_span_tokens, span_rule="seal",
            beam_width=beam_width, alpha=alpha, coverage=coverage, depth=depth,
            max_locate=max_locate, index_examples=index_examples, dpo=False, model=model,
            fields=fields, index_backend=index_backend, batch_size=batch_size, seed=seed,
            device=device,
        )  # fmt: skip
        self.seal_samples = int(seal_samples)

    def config(self) -> dict[str, Any]:
        c = super().config()
        for key in ("n_spans", "span_rule", "dpo", "dpo_beam", "dpo_rejected", "dpo_chosen",
                    "dpo_rounds", "dpo_retrieve_k"):  # fmt: skip
            c.pop(key)
        return {**c, "seal_samples": self.seal_samples}

    def _add(self, sources, targets, source: str, chosen: list[list[int]]) -> None:
        for span in chosen:  # one n-gram per example
            sources.append(source)
            targets.append(self.model_.join([span]))
