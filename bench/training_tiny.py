"""Benchmark: training steps per second of the one-machine backend (TRL) with a tiny random-weight Qwen2.5-VL.

    python bench/training_tiny.py [--steps 8] [--repeats 3] [--image-side 384] [--device cpu|cuda]
        [--batch 4] [--group 2] [--response-tokens 24]

Each configuration runs ``python -m training.backends.trl_runner`` as a training run does (a subprocess reading a
verl-format export), --repeats times; a run's figure is the median of its step times (TRL's own steps, the
rollouts included, the held-out scoring excluded), and the printed figure is the median over the runs:

- GRPO fp32, the baseline: --batch prompts x --group responses of at most --response-tokens per step;
- GRPO bf16 (autocast; the CPUs here have AMX bf16 units);
- GRPO fp32 without gradient checkpointing;
- SFT fp32 on the labels, --batch pairs per step.

The export is written here like ``training/exports/verl.py`` writes it: pairs of --image-side JPEGs (an export
bounds the longest side at 512), half of them "yes". The model has random weights: speed doesn't depend on
their values, but a random model rarely closes its answer, so GRPO responses run to --response-tokens.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.backends import run_output  # noqa: E402
from training.backends.tiny_vlm import tiny_qwen_vl_model_save  # noqa: E402
from training.exports.verl import PROMPT_TEXT, SCHEMA  # noqa: E402


def export_make(folder: Path, *, pairs: int, image_side: int, seed: int = 0) -> Path:
    """A verl export of ``pairs`` training pairs and a quarter as many held-out ones."""
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", pairs), ("test", max(2, pairs // 4))):
        records = []
        for index in range(count):
            paths = []
            for side in ("a", "b"):
                name = f"images/{split}-{index}{side}.jpg"
                coarse = rng.integers(0, 256, size=(image_side // 16, image_side // 16, 3), dtype=np.uint8)
                picture = Image.fromarray(coarse).resize((image_side, image_side), Image.Resampling.BILINEAR)
                picture.save(folder / name, quality=90)
                paths.append(name)
            records.append(
                {
                    "data_source": "twin-bench",
                    "prompt": [{"role": "user", "content": PROMPT_TEXT}],
                    "images": paths,
                    "ability": "vision",
                    "reward_model": {"style": "rule", "ground_truth": "yes" if index % 2 else "no"},
                    "extra_info": {
                        "pair_id": index,
                        "image_a_id": 2 * index,
                        "image_b_id": 2 * index + 1,
                        "source": "real",
                        "split": split,
                        "category": "mug",
                        "index": index,
                    },
                }
            )
        pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), folder / f"{split}.parquet")
    return folder


def run_once(config: dict, folder: Path) -> dict:
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "training.backends.trl_runner", "--config", str(config_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"the runner failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    summaries = [run_output.parse_summary_line(line) for line in result.stdout.splitlines()]
    summary = [s for s in summaries if s is not None][-1]
    steps = [run_output.parse_metrics_line(line) for line in result.stdout.splitlines()]
    step_seconds = [
        s.values[run_output.STEP_SECONDS] for s in steps if s and run_output.STEP_SECONDS in s.values
    ]
    return {"median_step_seconds": statistics.median(step_seconds), "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-side", type=int, default=384)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--response-tokens", type=int, default=24)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="twin-bench-training-") as temporary:
        work = Path(temporary)
        export = export_make(work / "export", pairs=max(16, args.batch * 4), image_side=args.image_side)
        model = tiny_qwen_vl_model_save(work / "model")
        common = {
            "model": str(model),
            "train_file": str(export / "train.parquet"),
            "val_file": str(export / "test.parquet"),
            "device": args.device,
            "max_steps": args.steps,
            "eval_every": 0,
            "eval_limit": 2,
            "save_steps": 0,
        }
        grpo = {
            "train_batch_size": args.batch,
            "group_size": args.group,
            "max_response_length": args.response_tokens,
        }
        configurations = {
            "GRPO fp32 (baseline)": {"method": "grpo", "hyperparameters": grpo, "dtype": "fp32"},
            "GRPO bf16": {"method": "grpo", "hyperparameters": grpo, "dtype": "bf16"},
            "GRPO fp32, no gradient checkpointing": {
                "method": "grpo",
                "hyperparameters": grpo,
                "dtype": "fp32",
                "gradient_checkpointing": False,
            },
            "SFT fp32 (labels)": {
                "method": "sft",
                "hyperparameters": {
                    "batch_size": args.batch,
                    "per_device_batch_size": min(args.batch, 4),
                    "max_response_length": args.response_tokens,
                    "target": "label",
                },
                "dtype": "fp32",
            },
        }
        print(
            f"tiny random-weight Qwen2.5-VL on {args.device}; {args.steps} steps per run, {args.repeats} runs; "
            f"{args.image_side}px image pairs; GRPO {args.batch} prompts x {args.group} responses of <= "
            f"{args.response_tokens} tokens; SFT {args.batch} pairs per step"
        )
        baseline = None
        for number, (name, settings) in enumerate(configurations.items()):
            medians = []
            for repeat in range(args.repeats):
                folder = work / f"run-{number}-{repeat}"
                folder.mkdir()
                medians.append(
                    run_once({**common, **settings, "output_dir": str(folder / "out")}, folder)[
                        "median_step_seconds"
                    ]
                )
            median = statistics.median(medians)
            baseline = baseline or median
            print(
                f"{name:40s} median step {median:7.3f} s  = {1 / median:6.2f} steps/s  "
                f"(runs: {', '.join(f'{value:.3f}' for value in medians)})  x{baseline / median:.2f} vs baseline"
            )


if __name__ == "__main__":
    main()
