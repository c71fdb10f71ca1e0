"""gsid: generative semantic indexing and generative retrieval for e-commerce search."""

from gsid.errors import ArtifactError, DataValidationError, GsidError

__version__ = "0.1.0"

__all__ = ["ArtifactError", "DataValidationError", "GsidError", "__version__", "load"]


def load(path):
    """Load an index (any saved retriever: `gsid index build` or `Retriever.save`); its
    `.search(queries, k)`, `.titles(ids)`, `.add(items)` and `.save(path)` are ready to use."""
    from gsid.retrieval.base import load_retriever

    return load_retriever(path)
