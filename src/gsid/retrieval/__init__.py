"""Retrievers: one `search(queries, k)` contract, one result type, save/load for each."""

from gsid.retrieval.base import Retriever, SearchResults, load_retriever

__all__ = ["Retriever", "SearchResults", "load_retriever"]
