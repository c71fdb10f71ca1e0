"""Lexical generative retrieval: constrained span beam search, SEAL scoring, retrievers."""

from gsid.retrieval.lexical.retriever import LexicalRetriever, SEALRetriever
from gsid.retrieval.lexical.scoring import seal_rank, span_weights
from gsid.retrieval.lexical.span_beam import Beam, generate_spans, start_tokens

__all__ = [
    "Beam",
    "LexicalRetriever",
    "SEALRetriever",
    "generate_spans",
    "seal_rank",
    "span_weights",
    "start_tokens",
]
