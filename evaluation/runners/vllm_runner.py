"""The vLLM backend: offline batched generation with ``vllm.LLM`` on the GPU node (requirements-gpu.txt, vLLM 0.31).

Prompts go through ``LLM.chat``, so vLLM renders them with the model's own chat template, exactly as the
transformers backend and the served (OpenAI-compatible) model do: one user turn whose content is the request's
images as ``{"type": "image_pil", "image_pil": <PIL image>}`` parts (vLLM's own part type for in-memory images,
``vllm/entrypoints/chat_utils.py``: ``CustomChatCompletionContentPILImageParam``), then the text. Going through
``LLM.generate`` instead would mean writing Qwen's vision placeholders into the prompt by hand.

Everything that decides what vLLM is asked is built by pure functions that need no vLLM (and are tested where
vLLM cannot be installed): :func:`vllm_conversations`, :func:`vllm_sampling_kwargs`, :func:`vllm_engine_kwargs`.

``limit_mm_per_prompt`` is how many images vLLM reserves memory for per prompt; it is fixed when the engine starts,
before the run's prompts are seen, so it is ``{"image": 4}`` (FGVQA's multi queries: a reference and three
candidates) unless ``settings.extra`` says otherwise. ``settings.extra`` is passed to ``vllm.LLM`` as engine
arguments (e.g. ``{"enforce_eager": True, "max_num_seqs": 64}``) and overrides the values built here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evaluation.runners.base import GenerationRequest, GenerationResult, RunnerError, RunnerSettings
from evaluation.runners.transformers_runner import image_load

if TYPE_CHECKING:
    from vllm import SamplingParams

IMAGES_PER_PROMPT = 4  # FGVQA's largest prompt: a multi query's reference and its three candidates


def vllm_conversations(requests: Sequence[GenerationRequest]) -> list[list[dict[str, Any]]]:
    """One conversation per request for ``LLM.chat``: a user turn with the images (RGB PIL) first, then the text."""
    conversations = []
    for request in requests:
        content: list[dict[str, Any]] = [
            {"type": "image_pil", "image_pil": image_load(path)} for path in request.image_paths
        ]
        content.append({"type": "text", "text": request.prompt})
        conversations.append([{"role": "user", "content": content}])
    return conversations


def vllm_sampling_kwargs(settings: RunnerSettings) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams``: greedy at temperature 0, seeded otherwise."""
    # vLLM decodes greedily at temperature 0 (the seed then changes nothing); a sampled run is made repeatable
    # by the per-request seed.
    return {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature, "seed": settings.seed}


def vllm_sampling_params(settings: RunnerSettings) -> SamplingParams:
    """``vllm.SamplingParams`` for the settings (needs vLLM)."""
    from vllm import SamplingParams

    return SamplingParams(**vllm_sampling_kwargs(settings))


def vllm_engine_kwargs(settings: RunnerSettings) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM``: the model, its parallelism and memory, the images per prompt."""
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "seed": settings.seed,
        "limit_mm_per_prompt": {"image": IMAGES_PER_PROMPT},
    }
    if settings.dtype != "auto":
        kwargs["dtype"] = settings.dtype
    if settings.max_model_len is not None:
        kwargs["max_model_len"] = settings.max_model_len
    # Qwen2.5-VL's resize bounds reach its HF image processor through mm_processor_kwargs; an unset bound is
    # left out, so the model's own preprocessor_config.json decides it.
    pixel_bounds = {
        name: value
        for name, value in (("min_pixels", settings.min_pixels), ("max_pixels", settings.max_pixels))
        if value is not None
    }
    if pixel_bounds:
        kwargs["mm_processor_kwargs"] = pixel_bounds
    kwargs.update(settings.extra)
    return kwargs


def images_per_prompt_limit(engine_kwargs: dict[str, Any]) -> int:
    """The image count vLLM was started to accept per prompt (``limit_mm_per_prompt["image"]``)."""
    limit = engine_kwargs.get("limit_mm_per_prompt", {}).get("image", IMAGES_PER_PROMPT)
    # vLLM also accepts {"image": {"count": n, ...}} (a count plus the largest expected size).
    return int(limit["count"]) if isinstance(limit, dict) else int(limit)


class VllmRunner:
    """A ``vllm.LLM`` engine on this machine's GPUs, answering ``batch_size`` prompts per ``LLM.chat`` call."""

    def __init__(self, settings: RunnerSettings) -> None:
        try:
            from vllm import LLM
        except ImportError as error:
            raise RunnerError(
                "vLLM is not installed here: it runs on the GPU nodes (pip install -r requirements-gpu.txt)"
            ) from error
        self.settings = settings
        self.engine_kwargs = vllm_engine_kwargs(settings)
        self.image_limit = images_per_prompt_limit(self.engine_kwargs)
        self.sampling_params = vllm_sampling_params(settings)
        self.llm = LLM(**self.engine_kwargs)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order. vLLM schedules the prompts of a call itself (continuous batching);
        calls of ``batch_size`` prompts bound how many images are decoded and held in memory at once."""
        for request in requests:
            if len(request.image_paths) > self.image_limit:
                raise RunnerError(
                    f"request {request.key} has {len(request.image_paths)} images, more than the "
                    f"{self.image_limit} per prompt vLLM was started with: set "
                    f'extra={{"limit_mm_per_prompt": {{"image": {len(request.image_paths)}}}}}'
                )
        batch_size = max(1, self.settings.batch_size)
        results: list[GenerationResult] = []
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            started = time.perf_counter()
            outputs = self.llm.chat(vllm_conversations(batch), self.sampling_params, use_tqdm=False)
            seconds = (time.perf_counter() - started) / len(batch)
            for request, output in zip(batch, outputs, strict=True):
                completion = output.outputs[0]
                results.append(
                    GenerationResult(
                        key=request.key,
                        text=completion.text,
                        seconds=seconds,
                        prompt_tokens=len(output.prompt_token_ids) if output.prompt_token_ids else None,
                        completion_tokens=len(completion.token_ids),
                    )
                )
        return results

    def close(self) -> None:
        """Shuts the engine down and frees its GPU memory."""
        import gc

        llm, self.llm = self.llm, None
        engine = getattr(llm, "llm_engine", None)
        # vLLM's V1 engine runs in a separate process; shutting it down explicitly frees the GPU at once
        # instead of whenever the garbage collector gets to it.
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm, engine
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
