"""The annotation app's tables: the catalog, the review queues built on it, and the frozen dataset snapshots."""

from annotation.models.catalog import Category, Image, Instance, InstanceMerge, Product, ReviewStatus
from annotation.models.dataset import DatasetSnapshot, SnapshotPair
from annotation.models.review import (
    HardNegativePair,
    ProductDistinction,
    ReviewDecision,
    ReviewerPreferences,
    ReviewQueue,
    ReviewSkip,
    ReviewTask,
    TaskKind,
)

__all__ = [
    "Category",
    "DatasetSnapshot",
    "HardNegativePair",
    "Image",
    "Instance",
    "InstanceMerge",
    "Product",
    "ProductDistinction",
    "ReviewDecision",
    "ReviewQueue",
    "ReviewSkip",
    "ReviewStatus",
    "ReviewTask",
    "ReviewerPreferences",
    "SnapshotPair",
    "TaskKind",
]
