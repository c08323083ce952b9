"""A stand-in for ``python -m verl.trainer.main_ppo``, whose real trainer needs GPUs and vLLM.

It is what the worker runs when a test points ``TRAINING_PYTHON`` at it. It checks the command as launched the
way verl would start reading it (the overrides compose against verl 0.9.1's own Hydra config; the parquet files
they name exist and load), then behaves like verl's trainer on the outside: "Total training steps", one
console-logger line per step written by verl's own ``concat_dict_to_str`` (validation merged into the steps that
validate), the checkpoint tracker file, exit code 0. ``STAND_IN_MODE`` makes it fail or hang instead.
"""

import os
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import verl
from hydra import compose, initialize_config_dir
from verl.utils.logger.aggregate_logger import concat_dict_to_str


def main(argv: list[str]) -> int:
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"], argv
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=argv[2:])
    train_rows = sum(pq.read_metadata(path).num_rows for path in config.data.train_files)
    val_rows = sum(pq.read_metadata(path).num_rows for path in config.data.val_files)
    print(f"dataset len: {train_rows}, validation: {val_rows}, cwd: {os.getcwd()}", flush=True)
    mode = os.environ.get("STAND_IN_MODE", "train")
    if mode == "fail":
        print("Traceback (most recent call last):", flush=True)
        print(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            file=sys.stderr,
            flush=True,
        )
        return 1
    steps = int(config.trainer.total_training_steps or 2)
    print(f"Total training steps: {steps}", flush=True)
    source = "val-core/twin/reward/mean@1"
    if config.trainer.val_before_train:
        print(concat_dict_to_str({source: 0.5}, step=0), flush=True)
    for step in range(1, steps + 1):
        metrics = {
            "critic/score/mean": 0.25 * step,
            "actor/kl_loss": 0.001 * step,
            "response_length/mean": 100.0 + step,
            "actor/pg_loss": -0.1,
        }
        if step == steps:
            metrics[source] = 0.75
        print(f"(TaskRunner pid={os.getpid()}) " + concat_dict_to_str(metrics, step=step), flush=True)
        if mode == "hang":
            time.sleep(600)
    checkpoints = Path(config.trainer.default_local_dir)
    (checkpoints / f"global_step_{steps}" / "actor").mkdir(parents=True, exist_ok=True)
    (checkpoints / "latest_checkpointed_iteration.txt").write_text(str(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
