"""Semantic IDs: one artifact type (SemanticIDs) for every builder.

Torch is imported only when the RQ-VAE is used (`from gsid.ids.rqvae import RQVAE`).
"""

from gsid.ids.build import METHODS, build_ids, method_options
from gsid.ids.collisions import collision_stats, resolve_collisions
from gsid.ids.hkmeans import HierarchicalKMeans
from gsid.ids.residual_kmeans import ResidualKMeans
from gsid.ids.semantic_ids import SemanticIDs

__all__ = [
    "METHODS",
    "HierarchicalKMeans",
    "ResidualKMeans",
    "SemanticIDs",
    "build_ids",
    "collision_stats",
    "method_options",
    "resolve_collisions",
]
