"""Data layer: record schemas, loading and validation, the on-disk dataset, splits, synthesis."""

from gsid.data.dataset import Dataset
from gsid.data.splits import BucketRule

__all__ = ["BucketRule", "Dataset"]
