"""An evaluation run's settings beyond the model: which queries, how to generate, and the judge.

Stored as JSON on the run (``EvaluationRun.options``), checked when the run is saved, and turned into the
backend's ``RunnerSettings`` on the worker. The defaults are the reference evaluation's: greedy decoding and up
to 1,024 new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evaluation.prompts import QUESTION_TYPES
from evaluation.runners.base import RunnerSettings
from training.backends.json_fields import json_fields, json_object_checked

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True)
class EvaluationOptions:
    """Fields:
    question_types: which of the benchmarks' queries to ask: "pair", "multi", and "open" (open-ended
        recognition, scored by the judge model; needs judge_api_base).
    query_limit: at most this many queries of each type per benchmark, the first ones in the benchmark's
        seeded order (a random sample of it); 0 asks them all.
    max_new_tokens, temperature, seed: generation (temperature 0 is greedy, as the reference evaluation).
    batch_size: prompts per generate call (transformers, vLLM) or concurrent requests (OpenAI-compatible).
    device, dtype: the transformers backend's.
    tensor_parallel_size, gpu_memory_utilization, max_model_len: the vLLM backend's.
    min_pixels, max_pixels: bounds on each image's resized area in pixels (Qwen2.5-VL's processor); 0 keeps
        the processor's own.
    api_base, api_key_env: the OpenAI-compatible endpoint (e.g. http://gpu-node:8000/v1) and the name of the
        environment variable that holds its key on the worker (the key itself is never stored).
    timeout_seconds, max_retries: for HTTP requests.
    judge_api_base, judge_model, judge_api_key_env: the judge of open-ended answers (FROW), an
        OpenAI-compatible endpoint and model.
    """

    question_types: list[str] = field(default_factory=lambda: ["pair", "multi"])
    query_limit: int = 0
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 0
    min_pixels: int = 0
    max_pixels: int = 0
    api_base: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = 300.0
    max_retries: int = 3
    judge_api_base: str = ""
    judge_model: str = "gpt-4o-mini"
    judge_api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        if not isinstance(self.question_types, list) or not self.question_types:
            raise ValueError(f"question_types must be a non-empty list of {', '.join(QUESTION_TYPES)}")
        unknown = [kind for kind in self.question_types if kind not in QUESTION_TYPES]
        if unknown:
            raise ValueError(f"unknown question types {unknown}: use {', '.join(QUESTION_TYPES)}")
        for name in ("query_limit", "seed", "max_model_len", "min_pixels", "max_pixels", "max_retries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more, got {value!r}")
        for name in ("max_new_tokens", "batch_size", "tensor_parallel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number, 1 or more, got {value!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or more, got {self.temperature!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be more than 0 and at most 1")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("api_base", "judge_api_base"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// address, got {value!r}")
        if "open" in self.question_types and not self.judge_api_base:
            raise ValueError(
                "open-ended queries are scored by a judge model: set judge_api_base (and judge_model)"
            )

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EvaluationOptions:
        return cls(**json_object_checked(data or {}, cls, what="option"))

    def runner_settings(self, *, backend: str, model: str) -> RunnerSettings:
        """What the backend needs to answer the queries."""
        return RunnerSettings(
            backend=backend,
            model=model,
            max_new_tokens=self.max_new_tokens,
            temperature=float(self.temperature),
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            dtype=self.dtype,
            tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len or None,
            min_pixels=self.min_pixels or None,
            max_pixels=self.max_pixels or None,
            api_base=self.api_base,
            api_key_env=self.api_key_env,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
        )

    def judge_settings(self) -> RunnerSettings:
        """The judge of open-ended answers: short, greedy replies from an OpenAI-compatible model."""
        return RunnerSettings(
            backend="openai",
            model=self.judge_model,
            max_new_tokens=256,
            temperature=0.0,
            batch_size=self.batch_size,
            api_base=self.judge_api_base,
            api_key_env=self.judge_api_key_env,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
        )
