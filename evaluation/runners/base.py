"""The one interface every evaluation backend offers: a batch of prompts with images in, texts out.

A runner is opened once per evaluation run (loading a model can take minutes) and then asked for batches of
generations; the caller stores each response as it comes back, so a run that stops can resume with the
queries it has not answered. Images come before the text in every prompt, in the order given, as the FGVQA
reference task and our training prompt put them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

BACKENDS = ("transformers", "vllm", "openai")


class RunnerError(Exception):
    """The backend could not be opened or could not answer; the message says why."""


@dataclass(frozen=True)
class GenerationRequest:
    key: str  # the caller's id for the request (a query's id); results carry it back
    prompt: str  # the user's text, without image markers
    image_paths: tuple[str, ...] = ()  # local image files, shown before the text in this order


@dataclass(frozen=True)
class GenerationResult:
    key: str
    text: str
    seconds: float = 0.0  # this request's share of the batch's wall time
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class RunnerSettings:
    backend: str  # one of BACKENDS
    model: str  # a hub id or a local folder (transformers, vllm); the served model's name (openai)
    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0 is greedy decoding, as the reference evaluation runs
    batch_size: int = 8  # prompts per generate call (transformers, vllm); concurrent requests (openai)
    seed: int = 0
    # transformers
    device: str = "auto"  # auto, cpu, cuda, cuda:1...
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32
    # vllm
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    # transformers and vllm: Qwen2.5-VL's image resizing bounds, in pixels (None: the processor's own)
    min_pixels: int | None = None
    max_pixels: int | None = None
    # openai
    api_base: str = ""  # e.g. http://gpu-node:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (never the key itself)
    timeout_seconds: float = 300.0
    max_retries: int = 3
    extra: dict = field(default_factory=dict)  # backend-specific keyword arguments, passed through


class Runner(Protocol):
    settings: RunnerSettings

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in the requests' order."""
        ...

    def close(self) -> None:
        """Frees the model or the HTTP session."""
        ...


def runner_open(settings: RunnerSettings) -> Runner:
    """The runner for ``settings.backend``, with its model loaded. Heavy libraries are imported here, lazily."""
    if settings.backend == "transformers":
        from evaluation.runners.transformers_runner import TransformersRunner

        return TransformersRunner(settings)
    if settings.backend == "vllm":
        from evaluation.runners.vllm_runner import VllmRunner

        return VllmRunner(settings)
    if settings.backend == "openai":
        from evaluation.runners.openai_runner import OpenAiRunner

        return OpenAiRunner(settings)
    raise RunnerError(f"unknown backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
