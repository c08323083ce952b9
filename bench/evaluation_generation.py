"""Benchmark: generation throughput of the transformers evaluation runner on FGVQA-shaped prompts.

    python bench/evaluation_generation.py [--size tiny|3b] [--device cpu|cuda] [--queries 16] [--new-tokens 16]
        [--batch-size 8] [--repeats 3] [--image-side 336]

Two prompt kinds, as FGVQA asks them: *pair* (two images and the yes/no question) and *multi* (a reference and
three candidates, "how many match?"). Each configuration answers --queries prompts of each kind through
``evaluation.runners.transformers_runner.TransformersRunner`` --repeats times after a warm-up batch; the printed
figures are medians over the repeats:

- queries/s: prompts answered per second (image decoding, preprocessing and generation included);
- tokens/s: generated tokens per second.

The baseline is measured in the same run: batch size 1, the dtype of the device (fp32 on a CPU, bf16 on a GPU).
It is compared with --batch-size prompts per batch, and on a GPU also with fp32 at --batch-size. Ratios are
against the baseline of the same prompt kind.

The models have random weights (nothing is downloaded): speed does not depend on their values, but a random model
ends its answers at random places, so every answer is forced to exactly --new-tokens tokens (``min_new_tokens``
equal to ``max_new_tokens``); the token counts, and so the figures, are comparable between configurations.

- ``--size tiny``: the test suite's toy Qwen2.5-VL (two layers of width 64), on the CPU by default;
- ``--size 3b``: a Qwen2.5-VL-3B-Instruct-shaped model (the published config.json: 36 text layers of width 2048,
  11008 MLP, 16 heads with 2 KV heads, a 151936 vocabulary, tied embeddings; a 32-block vision tower of width
  1280 with full attention in blocks 7, 15, 23 and 31, projected to 2048), on the GPU when there is one. Its
  prompts are tokenized by the tiny tokenizer (Qwen's own cannot be downloaded here), so a prompt's text is a few
  tokens shorter than with Qwen's; the image tokens, which are most of a prompt, are the same.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.runners.base import GenerationRequest, RunnerSettings  # noqa: E402
from evaluation.runners.transformers_runner import TransformersRunner  # noqa: E402
from training.backends.tiny_vlm import (  # noqa: E402
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    tiny_qwen_vl_model_save,
    tiny_qwen_vl_processor_save,
)

PAIR_PROMPT = "Do these two images show the same object instance? Answer yes or no in <answer></answer>."
MULTI_PROMPT = (
    "The first image is the reference. How many of the other three images show the same object instance as "
    "the reference? Answer 0, 1, 2 or 3 in <answer></answer>."
)


def images_make(folder: Path, count: int, side: int, seed: int = 0) -> list[str]:
    """Photos of "objects": a few coloured shapes on a blurred, noisy background, each picture different."""
    rng = np.random.default_rng(seed)
    paths = []
    for number in range(count):
        coarse = rng.integers(0, 256, size=(side // 16, side // 16, 3), dtype=np.uint8)
        picture = Image.fromarray(coarse).resize((side, side), Image.Resampling.BILINEAR)
        picture = picture.filter(ImageFilter.GaussianBlur(2))
        draw = ImageDraw.Draw(picture)
        for _ in range(4):
            x, y = (int(value) for value in rng.integers(0, side * 3 // 4, size=2))
            width, height = (int(value) for value in rng.integers(side // 8, side // 3, size=2))
            colour = tuple(int(value) for value in rng.integers(0, 256, size=3))
            draw.rounded_rectangle((x, y, x + width, y + height), radius=width // 4, fill=colour)
        path = folder / f"{number:04d}.jpg"
        picture.save(path, quality=90)
        paths.append(str(path))
    return paths


def requests_make(images: list[str], queries: int) -> dict[str, list[GenerationRequest]]:
    """--queries pair prompts (2 images) and as many multi prompts (4 images), cycling through the pictures."""

    def pick(start: int, count: int) -> tuple[str, ...]:
        return tuple(images[(start + offset) % len(images)] for offset in range(count))

    return {
        "pair": [GenerationRequest(f"pair-{n}", PAIR_PROMPT, pick(2 * n, 2)) for n in range(queries)],
        "multi": [GenerationRequest(f"multi-{n}", MULTI_PROMPT, pick(4 * n + 1, 4)) for n in range(queries)],
    }


def qwen_3b_model_save(folder: Path, device: str) -> Path:
    """A Qwen2.5-VL-3B-Instruct-shaped model with random weights, saved with the tiny processor in folder (bf16)."""
    import torch
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
    )

    folder = tiny_qwen_vl_processor_save(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [16, 24, 24],
            },
            # The special tokens are the tiny tokenizer's (ids below its 547 entries), inside the 3B vocabulary.
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        },
        tie_word_embeddings=True,
        image_token_id=token_id(IMAGE_PAD),
        video_token_id=token_id(VIDEO_PAD),
        vision_start_token_id=token_id(VISION_START),
        vision_end_token_id=token_id(VISION_END),
    )
    # Built directly on the device in bf16: 3.8B parameters initialised on a CPU in fp32 take minutes.
    with torch.device(device):
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=token_id("<|endoftext|>"),
        eos_token_id=token_id("<|im_end|>"),
        pad_token_id=token_id("<|endoftext|>"),
    )
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"3B-shaped model: {parameters / 1e9:.2f}B parameters (random, bf16)", flush=True)
    model.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return folder


def measure(
    runner: TransformersRunner,
    requests: list[GenerationRequest],
    repeats: int,
    warmup: list[GenerationRequest],
) -> dict[str, float]:
    runner.generate(warmup)
    rates, token_rates, prompt_tokens = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        results = runner.generate(requests)
        elapsed = time.perf_counter() - started
        rates.append(len(results) / elapsed)
        token_rates.append(sum(result.completion_tokens for result in results) / elapsed)
        prompt_tokens = [result.prompt_tokens for result in results]
    return {
        "queries_per_second": statistics.median(rates),
        "tokens_per_second": statistics.median(token_rates),
        "prompt_tokens": statistics.mean(prompt_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("tiny", "3b"), default="tiny")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda... (default: cpu for tiny, cuda if any for 3b)"
    )
    parser.add_argument(
        "--queries", type=int, default=None, help="prompts of each kind (default 16 tiny, 64 3b)"
    )
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per answer, forced")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-side", type=int, default=336, help="square JPEGs; 336 px = 144 image tokens")
    args = parser.parse_args()

    import torch

    device = args.device or ("cuda" if args.size == "3b" and torch.cuda.is_available() else "cpu")
    queries = args.queries or (16 if args.size == "tiny" else 64)
    base_dtype = "bfloat16" if device.startswith("cuda") else "float32"
    configurations = [("batch 1", 1, base_dtype), (f"batch {args.batch_size}", args.batch_size, base_dtype)]
    if device.startswith("cuda"):
        configurations.append((f"batch {args.batch_size} fp32", args.batch_size, "float32"))

    print(
        f"model {args.size} (random weights), device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(
        f"{queries} pair prompts (2 images) and {queries} multi prompts (4 images) of {args.image_side}px JPEGs; "
        f"every answer forced to exactly {args.new_tokens} new tokens (min_new_tokens = max_new_tokens); "
        f"median of {args.repeats} repeats after a warm-up batch"
    )
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        if args.size == "tiny":
            model_dir = tiny_qwen_vl_model_save(scratch / "model")
        else:
            model_dir = qwen_3b_model_save(scratch / "model", device)
        print(f"model built in {time.perf_counter() - started:.1f} s", flush=True)
        (scratch / "images").mkdir()
        images = images_make(scratch / "images", count=max(8, queries), side=args.image_side)
        kinds = requests_make(images, queries)

        figures = {}
        for label, batch_size, dtype in configurations:
            runner = TransformersRunner(
                RunnerSettings(
                    backend="transformers",
                    model=str(model_dir),
                    device=device,
                    dtype=dtype,
                    batch_size=batch_size,
                    max_new_tokens=args.new_tokens,
                    extra={"min_new_tokens": args.new_tokens},
                )
            )
            for kind, requests in kinds.items():
                figures[label, kind] = measure(runner, requests, args.repeats, warmup=requests[:batch_size])
                row = figures[label, kind]
                print(
                    f"  measured {label:>14} {kind:>5}: {row['queries_per_second']:8.2f} queries/s",
                    flush=True,
                )
            runner.close()

    baseline = configurations[0][0]
    print()
    print(
        f"{'configuration':>16} {'kind':>5} {'prompt tok':>10} {'queries/s':>10} {'tokens/s':>10} {'ratio':>7}"
    )
    for label, _, _ in configurations:
        for kind in kinds:
            row = figures[label, kind]
            ratio = row["queries_per_second"] / figures[baseline, kind]["queries_per_second"]
            print(
                f"{label:>16} {kind:>5} {row['prompt_tokens']:10.0f} {row['queries_per_second']:10.2f} "
                f"{row['tokens_per_second']:10.1f} {ratio:6.2f}x"
            )
    print(
        f"(ratio: queries/s against {baseline} on the same prompt kind; tokens/s = queries/s x {args.new_tokens})"
    )


if __name__ == "__main__":
    main()
