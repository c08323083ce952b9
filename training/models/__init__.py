"""The training app's tables: dataset exports, and training runs with their metrics."""

from training.models.exports import DatasetExport
from training.models.runs import TrainingMetric, TrainingRun

__all__ = ["DatasetExport", "TrainingMetric", "TrainingRun"]
