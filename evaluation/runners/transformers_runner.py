"""The transformers backend: a Hugging Face vision-language model in this process, batched ``generate``.

The slowest of the three backends, and the one that runs anywhere: on a CPU with a tiny model in the tests, on
one GPU for a checkpoint that vLLM cannot load. Each prompt is the model's own chat template applied to one user
turn (the request's images, then its text) with the assistant's generation prompt; a batch is padded on the left
so that every row's new tokens start at the same column, which is what makes batched greedy decoding give the
same answers as one prompt at a time.

``settings.extra`` is passed to ``model.generate`` (e.g. ``{"min_new_tokens": 32}`` or a repetition penalty).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evaluation.runners.base import GenerationRequest, GenerationResult, RunnerError, RunnerSettings

if TYPE_CHECKING:
    import torch
    from PIL import Image

DTYPES = ("bfloat16", "float16", "float32")


def runner_device(setting: str) -> str:
    """The torch device for a ``RunnerSettings.device`` value: "auto" is the first GPU when there is one."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RunnerError(f"device {setting!r} asked for, but torch sees no CUDA device here")
    return setting


def runner_dtype(setting: str, device: str) -> torch.dtype:
    """The torch dtype for a ``RunnerSettings.dtype`` value: "auto" is bf16 on a GPU and fp32 on a CPU."""
    import torch

    if setting == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if setting not in DTYPES:
        raise RunnerError(f"unknown dtype {setting!r}: use auto or one of {', '.join(DTYPES)}")
    return getattr(torch, setting)


def chat_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """One user turn: an image part per image, in order, then the text (the processor fills in the pixels)."""
    parts: list[dict[str, Any]] = [{"type": "image"} for _ in request.image_paths]
    parts.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": parts}]


def image_load(path: str) -> Image.Image:
    """An image file as RGB pixels (the processors expect three channels; grey, palette and alpha are converted)."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, ValueError) as error:
        raise RunnerError(f"cannot read image {path}: {error}") from error


class TransformersRunner:
    """A model and its processor loaded with transformers, answering batches of ``settings.batch_size`` prompts."""

    def __init__(self, settings: RunnerSettings) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.settings = settings
        self.device = runner_device(settings.device)
        self.dtype = runner_dtype(settings.dtype, self.device)
        try:
            self.processor = AutoProcessor.from_pretrained(settings.model)
            try:
                model = AutoModelForImageTextToText.from_pretrained(settings.model, dtype=self.dtype)
            except ValueError:
                # A configuration that the auto class does not map (older Qwen2.5-VL checkpoints saved with
                # other transformers versions): the architecture this project trains and evaluates.
                from transformers import Qwen2_5_VLForConditionalGeneration

                model = Qwen2_5_VLForConditionalGeneration.from_pretrained(settings.model, dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise RunnerError(f"cannot load model {settings.model!r}: {error}") from error
        self.model = model.to(self.device).eval()

        tokenizer = self.processor.tokenizer
        # Left padding: generate appends after the last column, so a right-padded short prompt would continue
        # from its padding instead of from its own last token.
        tokenizer.padding_side = "left"
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._pixel_bounds_apply()

    def _pixel_bounds_apply(self) -> None:
        """Qwen's resize bounds from the settings, each one that is unset kept at the processor's own value."""
        if self.settings.min_pixels is None and self.settings.max_pixels is None:
            return
        from transformers.image_utils import SizeDict

        image_processor = self.processor.image_processor
        current = image_processor.size
        shortest = self.settings.min_pixels or current.shortest_edge
        longest = self.settings.max_pixels or current.longest_edge
        if shortest > longest:
            raise RunnerError(f"min_pixels {shortest} is larger than max_pixels {longest}")
        image_processor.size = SizeDict(shortest_edge=shortest, longest_edge=longest)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order; batches of ``batch_size`` prompts, halved on a CUDA out-of-memory."""
        batch_size = max(1, self.settings.batch_size)
        results: list[GenerationResult] = []
        for start in range(0, len(requests), batch_size):
            results.extend(self._batch_generate(list(requests[start : start + batch_size])))
        return results

    def _batch_generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        try:
            return self._batch_generate_once(batch)
        except torch.cuda.OutOfMemoryError as error:
            if len(batch) == 1:
                raise RunnerError(
                    f"CUDA out of memory on a single prompt ({batch[0].key}, {len(batch[0].image_paths)} images):"
                    " lower max_pixels or max_new_tokens"
                ) from error
        # Outside the except block, where the failed attempt's traceback (and the tensors its frames hold) is gone:
        # its memory goes back to the allocator and the cache before the halves run.
        torch.cuda.empty_cache()
        half = len(batch) // 2
        return self._batch_generate(batch[:half]) + self._batch_generate(batch[half:])

    def _batch_generate_once(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        started = time.perf_counter()
        texts = [
            self.processor.apply_chat_template(
                chat_messages(request), add_generation_prompt=True, tokenize=False
            )
            for request in batch
        ]
        # Qwen's processor takes the batch's images as one flat list and hands them out, in order, to the image
        # placeholders of the texts; a batch without images passes None.
        images = [image_load(path) for request in batch for path in request.image_paths]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(
            self.device
        )

        options: dict[str, Any] = {
            "max_new_tokens": self.settings.max_new_tokens,
            "pad_token_id": self.pad_token_id,
        }
        if self.settings.temperature > 0:
            options.update(do_sample=True, temperature=self.settings.temperature)
            # Seeded per batch, so a batch's samples don't depend on what the runner answered before it.
            torch.manual_seed(self.settings.seed)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        options.update(self.settings.extra)

        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        prompt_width = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_width:].tolist()
        texts_out = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        seconds = (time.perf_counter() - started) / len(batch)
        return [
            GenerationResult(
                key=request.key,
                text=text,
                seconds=seconds,
                prompt_tokens=int(prompt_count),
                completion_tokens=self._completion_length(tokens),
            )
            for request, text, prompt_count, tokens in zip(
                batch, texts_out, prompt_tokens, new_tokens, strict=True
            )
        ]

    def _completion_length(self, tokens: list[int]) -> int:
        """Generated tokens up to and including the end-of-turn token; what follows it is batch padding."""
        for index, token in enumerate(tokens):
            if token in self.eos_token_ids:
                return index + 1
        return len(tokens)

    def close(self) -> None:
        """Drops the model so its memory can be freed (and hands cached CUDA blocks back to the driver)."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
