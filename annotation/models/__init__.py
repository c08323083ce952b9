"""The annotation app's tables: the catalog, and the review queues built on it."""

from annotation.models.catalog import Category, Image, Instance, InstanceMerge, Product, ReviewStatus
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
    "TaskKind",
]
