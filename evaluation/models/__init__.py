"""The evaluation app's tables: FGVQA benchmarks with their queries, and evaluation runs with their responses."""

from evaluation.models.benchmarks import Benchmark, BenchmarkImage, BenchmarkQuery
from evaluation.models.runs import EvaluationResponse, EvaluationRun

__all__ = ["Benchmark", "BenchmarkImage", "BenchmarkQuery", "EvaluationResponse", "EvaluationRun"]
