"""Method names for `gsid bench` / `gsid demo` -> retriever classes (imported lazily, so a
method's heavy dependencies load only when it runs)."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

from gsid._options import check_types, type_hints
from gsid.errors import GsidError
from gsid.retrieval.base import Retriever

METHODS: dict[str, str] = {
    "bm25": "gsid.retrieval.bm25:BM25Retriever",
    "dense": "gsid.retrieval.dense:DenseRetriever",
    "dense-ft": "gsid.retrieval.dense:FineTunedDenseRetriever",
    "gr": "gsid.retrieval.generative.gr:GenerativeRetriever",
    "gsid": "gsid.retrieval.gsid:GSIDRetriever",
    "gsid-gr": "gsid.retrieval.generative.gsid_gr:GSIDGenerativeRetriever",
    "lexical": "gsid.retrieval.lexical:LexicalRetriever",  # query -> title spans, SFT + DPO
    "seal": "gsid.retrieval.lexical:SEALRetriever",  # query -> one title n-gram (SEAL)
    "hybrid": "gsid.retrieval.fusion:HybridRetriever",  # RRF of other methods (gsid-gr + BM25)
}
# Options that the harness passes to every method whose constructor accepts them.
SHARED_OPTIONS = ("cache_dir", "seed", "device")


def method_class(name: str) -> type[Retriever]:
    if name not in METHODS:
        raise GsidError(f"unknown method {name!r}; available methods: {', '.join(METHODS)}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_retriever(name: str, options: dict[str, Any] | None = None, **shared: Any) -> Retriever:
    """Build an unfitted retriever; `options` must all be constructor arguments (else an error
    lists the valid ones); `shared` ones are passed only where accepted."""
    cls = method_class(name)
    params = inspect.signature(cls.__init__).parameters
    options = dict(options or {})
    unknown = sorted(set(options) - set(params) - {"self"})
    if unknown:
        valid = sorted(p for p in params if p not in ("self", "args", "kwargs"))
        raise GsidError(f"method {name!r} has no option(s) {unknown}; its options are {valid}")
    check_types(options, type_hints(cls), f"method {name!r}")
    for key, value in shared.items():
        if key in params and key not in options and value is not None:
            options[key] = value
    return cls(**options)


def parse_method_options(specs: list[str] | None) -> dict[str, dict[str, Any]]:
    """['dense-ft.epochs=2', 'bm25.k1=1.2'] -> {'dense-ft': {'epochs': 2}, 'bm25': {'k1': 1.2}}.
    Values are read as JSON when they parse (numbers, true/false, lists), else as strings."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs or []:
        key, sep, raw = spec.partition("=")
        method, dot, option = key.partition(".")
        if not sep or not dot or not option:
            raise GsidError(f"--set {spec!r} must look like METHOD.OPTION=VALUE, e.g. bm25.k1=1.2")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(method, {})[option] = value
    return out
