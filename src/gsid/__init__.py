"""gsid: generative semantic indexing and generative retrieval for e-commerce search."""

from gsid.errors import ArtifactError, DataValidationError, GsidError

__version__ = "0.1.0"

__all__ = ["ArtifactError", "DataValidationError", "GsidError", "__version__"]
