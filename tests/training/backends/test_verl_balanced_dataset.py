"""The balanced dataset, built the way verl 0.9.1's trainer builds its datasets and read through its dataloader.

The config is verl's own Hydra config with the overrides of ``verl_overrides``; the dataset class comes from
verl's ``create_rl_dataset`` (which loads it by file path from ``data.custom_cls``), the tokenizer and
processor from verl's model config, as ``PPOTrainer._init_tokenizer`` gets them; the dataloaders are built as
``PPOTrainer._init_dataloader`` builds them (``verl/trainer/ppo/v1/trainer_base.py``), with verl's sampler and
collate function. That method itself can't be called here: its module imports ``transfer_queue``, which is
only installed on the GPU nodes.
"""

import copy
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torchdata.stateful_dataloader import StatefulDataLoader
from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

from training.backends.tiny_vlm import tiny_qwen_vl_processor_save
from training.backends.verl_balanced_dataset import BalancedRLHFDataset, balanced_order
from training.backends.verl_command import GrpoHyperparameters, VerlRunSpec, verl_overrides
from training.exports.verl import PROMPT_TEXT, SCHEMA

VERL_CONFIG_DIR = Path(importlib.util.find_spec("verl").submodule_search_locations[0]) / "trainer" / "config"
BATCH = 8
# 8 yes and 28 no among the training rows (22% yes, as in the real data): 28 "no" fill 7 half-batches
# exactly, so oversampling uses each once; 8 "yes" fill 2, so undersampling uses each once.
TRAIN_ANSWERS = ["no", "no", "yes", "no", "no", "no", "no", "yes", "no"] * 4
TRAIN_YES, TRAIN_NO = 8, 28
# A pair id of the training file whose prompt is over max_prompt_length: verl drops it before balancing.
OVERLONG_PAIR = 1000
VAL_ANSWERS = ["yes", "no", "no", "no", "yes", "no", "no", "no", "no", "no"]

# Warnings of the libraries, not of our code: transformers' processor turns its inputs into a numpy array the
# way numpy 2 warns about; torchdata's dataloader calls a deprecated torch function.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning"),
]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """RLHFDataset reads the parquet through ``datasets``, whose cache would otherwise land in the home folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """train.parquet (with one overlong prompt), test.parquet and a single-answer file, in verl's format."""
    folder = tmp_path_factory.mktemp("verl-data")
    images = []
    for number, colour in enumerate(["red", "blue"]):
        path = folder / "images" / f"{number}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (28, 28), colour).save(path)
        images.append(str(path))
    train = [pair_row(pair_id, answer, images) for pair_id, answer in enumerate(TRAIN_ANSWERS)]
    train.insert(5, pair_row(OVERLONG_PAIR, "yes", images, prompt=PROMPT_TEXT + " word" * 1500))
    parquet_write(folder / "train.parquet", train)
    parquet_write(
        folder / "test.parquet",
        [pair_row(500 + pair_id, answer, images) for pair_id, answer in enumerate(VAL_ANSWERS)],
    )
    parquet_write(folder / "only-no.parquet", [pair_row(pair_id, "no", images) for pair_id in range(12)])
    return folder


def pair_row(pair_id: int, answer: str, images: list[str], prompt: str = PROMPT_TEXT) -> dict:
    """A row as ``training/exports/verl.py`` writes it."""
    return {
        "data_source": "twin",
        "prompt": [{"role": "user", "content": prompt}],
        "images": images,
        "ability": "vision",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {
            "pair_id": pair_id,
            "image_a_id": 1,
            "image_b_id": 2,
            "source": "test",
            "split": "train",
            "category": "mug",
            "index": pair_id,
        },
    }


def parquet_write(path: Path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny Qwen2.5-VL folder, with the ``architectures`` that verl's model config needs."""
    folder = tiny_qwen_vl_processor_save(tmp_path_factory.mktemp("tiny-qwen-vl-model"))
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["Qwen2_5_VLForConditionalGeneration"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def verl_config(
    model_dir: Path, train: Path, val: Path, *, balance: str = "oversample", seed: int = 1, extra=()
) -> DictConfig:
    """verl's trainer config composed with the run's overrides, resolved as ``TaskRunnerV1.run`` resolves it."""
    spec = VerlRunSpec(
        model=str(model_dir),
        train_files=[str(train)],
        val_files=[str(val)],
        output_dir="/checkpoints/test",
        experiment_name="balanced",
        gpus_per_node=1,
        hyperparameters=GrpoHyperparameters(train_batch_size=BATCH, max_prompt_length=512),
        balance=balance,
        seed=seed,
        extra_overrides=(
            # In this process: a forked worker of a process that already ran torch's OpenMP threads can hang.
            "data.filter_overlong_prompts_workers=null",
            "data.dataloader_num_workers=0",
            *extra,
        ),
    )
    with initialize_config_dir(config_dir=str(VERL_CONFIG_DIR), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=verl_overrides(spec))
    OmegaConf.resolve(config)
    return config


@pytest.fixture(scope="module")
def tokenizer_and_processor(model_dir):
    """As ``PPOTrainer._init_tokenizer``: from verl's model config of the model folder."""
    model = omega_conf_to_dataclass(
        verl_config(model_dir, Path("t.parquet"), Path("v.parquet")).actor_rollout_ref.model
    )
    return model.tokenizer, model.processor


def datasets_build(config: DictConfig, tokenizer_and_processor) -> tuple[RLHFDataset, RLHFDataset]:
    """The training and validation datasets, as ``PPOTrainer._init_dataloader`` creates them."""
    tokenizer, processor = tokenizer_and_processor
    train = create_rl_dataset(
        config.data.train_files,
        config.data,
        tokenizer,
        processor,
        is_train=True,
        max_samples=config.data.get("train_max_samples", -1),
    )
    val = create_rl_dataset(
        config.data.val_files,
        config.data,
        tokenizer,
        processor,
        is_train=False,
        max_samples=config.data.get("val_max_samples", -1),
    )
    return train, val


def dataloaders_build(config: DictConfig, train: RLHFDataset, val: RLHFDataset):
    """verl 0.9.1's dataloaders, with ``PPOTrainer._init_dataloader``'s arguments (sync mode, no DAPO)."""
    gen_batch_size = config.data.get("gen_batch_size", None) or config.data.train_batch_size
    train_dataloader = StatefulDataLoader(
        dataset=train,
        batch_size=gen_batch_size,
        num_workers=config.data["dataloader_num_workers"],
        drop_last=True,
        collate_fn=collate_fn,
        sampler=create_rl_sampler(config.data, train),
    )
    val_dataloader = StatefulDataLoader(
        dataset=val,
        batch_size=config.data.val_batch_size or len(val),
        num_workers=config.data["dataloader_num_workers"],
        shuffle=config.data.get("validation_shuffle", True),
        drop_last=False,
        collate_fn=collate_fn,
    )
    return train_dataloader, val_dataloader


def batches_read(dataloader) -> list[list[tuple[int, str]]]:
    """Each batch as (pair id, answer) pairs, from the fields verl's collate_fn hands the trainer."""
    return [
        [
            (extra["pair_id"], reward["ground_truth"])
            for extra, reward in zip(batch["extra_info"], batch["reward_model"], strict=True)
        ]
        for batch in dataloader
    ]


def train_batches(config: DictConfig, tokenizer_and_processor) -> list[list[tuple[int, str]]]:
    train, val = datasets_build(config, tokenizer_and_processor)
    return batches_read(dataloaders_build(config, train, val)[0])


@pytest.mark.parametrize(
    ("balance", "batches", "every_once"),
    [("oversample", TRAIN_NO // (BATCH // 2), "no"), ("undersample", TRAIN_YES // (BATCH // 2), "yes")],
)
def test_an_epoch_of_verls_dataloader_is_balanced_batch_by_batch(
    data_dir, model_dir, tokenizer_and_processor, capsys, balance, batches, every_once
):
    config = verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet", balance=balance)
    train, val = datasets_build(config, tokenizer_and_processor)
    train_dataloader, _ = dataloaders_build(config, train, val)

    assert type(train) is not BalancedRLHFDataset  # loaded by verl from the file, not this test's import
    assert type(train).__name__ == "BalancedRLHFDataset"
    assert len(train) == batches * BATCH
    assert len(train) // config.data.train_batch_size == len(train_dataloader) == batches  # steps_per_epoch
    epoch = batches_read(train_dataloader)
    assert len(epoch) == batches
    for batch in epoch:
        assert Counter(answer for _, answer in batch) == {"yes": BATCH // 2, "no": BATCH // 2}

    rows = [row for batch in epoch for row in batch]
    assert OVERLONG_PAIR not in {pair_id for pair_id, _ in rows}  # dropped by verl's filter, before balancing
    expected = [pair_id for pair_id, answer in enumerate(TRAIN_ANSWERS) if answer == every_once]
    assert (
        sorted(pair_id for pair_id, answer in rows if answer == every_once) == expected
    )  # each exactly once
    other = Counter(pair_id for pair_id, answer in rows if answer != every_once)
    if balance == "oversample":  # 8 yes over 28 slots: every one 3 or 4 times
        assert set(other) == {pair_id for pair_id, answer in enumerate(TRAIN_ANSWERS) if answer == "yes"}
        assert set(other.values()) == {3, 4}
    else:  # 8 of the 28 no, each once
        assert len(other) == 8 and set(other.values()) == {1}

    logged = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("BalancedRLHFDataset:")
    ]
    assert logged == [
        f"BalancedRLHFDataset: {balance}, seed 1, batch 8: 36 rows (8 yes, 28 no) -> {batches * BATCH} rows "
        f"in {batches} batches ({batches * 4} yes, {batches * 4} no)",
        "BalancedRLHFDataset: not the training files (data.train_files), 10 rows kept in order",
    ]


def test_the_validation_split_keeps_all_its_rows_in_file_order(data_dir, model_dir, tokenizer_and_processor):
    config = verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet")
    train, val = datasets_build(config, tokenizer_and_processor)
    _, val_dataloader = dataloaders_build(config, train, val)

    assert type(val).__name__ == "BalancedRLHFDataset"
    assert batches_read(val_dataloader) == [
        [(500 + pair_id, answer) for pair_id, answer in enumerate(VAL_ANSWERS)]
    ]


def test_the_order_is_fixed_by_the_seed(data_dir, model_dir, tokenizer_and_processor):
    def epoch(seed: int) -> list:
        config = verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet", seed=seed)
        return train_batches(config, tokenizer_and_processor)

    first, other_seed = epoch(5), epoch(6)

    assert epoch(5) == first
    assert other_seed != first
    assert sorted(row for batch in other_seed for row in batch if row[1] == "no") == sorted(
        row for batch in first for row in batch if row[1] == "no"
    )


def test_balance_off_reads_like_verls_own_dataset(data_dir, model_dir, tokenizer_and_processor):
    balanced_off = verl_config(
        model_dir, data_dir / "train.parquet", data_dir / "test.parquet", extra=("++data.balance=off",)
    )
    plain = verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet", balance="off")
    assert balanced_off.data.shuffle is False and plain.data.shuffle is True
    plain.data.shuffle = False  # verl's random sampler would reorder its rows

    off_train, off_val = datasets_build(balanced_off, tokenizer_and_processor)
    plain_train, plain_val = datasets_build(plain, tokenizer_and_processor)

    assert type(off_train).__name__ == "BalancedRLHFDataset" and type(plain_train) is RLHFDataset
    assert len(off_train) == len(plain_train) == len(TRAIN_ANSWERS)  # all but the overlong one, none added
    assert batches_read(dataloaders_build(balanced_off, off_train, off_val)[0]) == batches_read(
        dataloaders_build(plain, plain_train, plain_val)[0]
    )
    assert off_train[0].keys() == plain_train[0].keys()


def test_a_single_answer_training_file_is_refused_with_the_counts(
    data_dir, model_dir, tokenizer_and_processor
):
    config = verl_config(model_dir, data_dir / "only-no.parquet", data_dir / "test.parquet")

    with pytest.raises(ValueError, match="hold 0 yes and 12 no answers"):
        datasets_build(config, tokenizer_and_processor)


def test_the_same_files_for_both_splits_are_refused(data_dir, model_dir, tokenizer_and_processor):
    config = verl_config(model_dir, data_dir / "test.parquet", data_dir / "test.parquet")

    with pytest.raises(ValueError, match="can't tell the training split"):
        datasets_build(config, tokenizer_and_processor)


def test_reading_the_files_again_rebuilds_the_same_order(data_dir, model_dir, tokenizer_and_processor):
    """``resume_dataset_state`` re-reads the files; the order must not change under a restored position."""
    config = verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet")
    train, _ = datasets_build(config, tokenizer_and_processor)
    before = [train[index]["extra_info"]["pair_id"] for index in range(len(train))]

    train.resume_dataset_state()

    assert [train[index]["extra_info"]["pair_id"] for index in range(len(train))] == before


def labels_of(order: list[int], labels: list[str]) -> list[str]:
    return [labels[index] for index in order]


def test_counts_that_do_not_fill_whole_batches_are_topped_up():
    labels = ["yes"] * 9 + ["no"] * 31
    half = 4

    for policy, leading, count in (("oversample", "no", 31), ("undersample", "yes", 9)):
        order = balanced_order(labels, batch_size=2 * half, policy=policy, seed=0)
        batches = -(-count // half)  # 8 and 3
        assert len(order) == batches * 2 * half
        for start in range(0, len(order), 2 * half):
            assert Counter(labels_of(order[start : start + 2 * half], labels)) == {"yes": half, "no": half}
        uses = Counter(index for index in order if labels[index] == leading)
        assert len(uses) == count  # every row of the class that sets the length
        assert sum(uses.values()) - count == batches * half - count  # and a few again, to fill the last batch
        assert set(uses.values()) <= {1, 2}


def test_a_batch_larger_than_the_data_repeats_rows():
    order = balanced_order(["yes", "no", "no"], batch_size=8, policy="oversample", seed=0)

    assert sorted(order) == [0, 0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("labels", "batch_size", "policy", "error"),
    [
        (["yes", "no"] * 4, 7, "oversample", "even data.train_batch_size"),
        (["yes", "no"] * 4, 0, "oversample", "even data.train_batch_size"),
        (["yes", "no", "maybe", ""], 2, "oversample", "other answers among 4 rows: {'maybe': 1, '': 1}"),
        (["yes"] * 5, 2, "undersample", "hold 5 yes and 0 no answers"),
        (["yes", "no"], 2, "off", "policy must be oversample or undersample"),
    ],
)
def test_balanced_order_refuses(labels, batch_size, policy, error):
    with pytest.raises(ValueError, match=error.replace("{", "\\{").replace("}", "\\}")):
        balanced_order(labels, batch_size=batch_size, policy=policy, seed=0)


def test_an_unknown_policy_in_the_config_is_refused(data_dir, model_dir, tokenizer_and_processor):
    config = copy.deepcopy(verl_config(model_dir, data_dir / "train.parquet", data_dir / "test.parquet"))
    config.data.balance = "sometimes"

    with pytest.raises(ValueError, match="data.balance must be one of oversample, undersample, off"):
        datasets_build(config, tokenizer_and_processor)
