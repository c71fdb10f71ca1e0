"""Retrievers: one `search(queries, k)` contract, one result type, save/load for each."""

from gsid.retrieval.base import Retriever, SearchResults, load_retriever
from gsid.retrieval.bm25 import BM25Retriever
from gsid.retrieval.dense import DenseRetriever, FineTunedDenseRetriever

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "FineTunedDenseRetriever",
    "Retriever",
    "SearchResults",
    "load_retriever",
]
