"""The verl export, read back by verl 0.9's own RLHFDataset and turned into model inputs the way its rollout
does, with the tiny Qwen2.5-VL processor."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.tokenizer import hf_processor, hf_tokenizer
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from annotation.dataset.questions import PAIR_QUESTION
from tests.training.exports.conftest import (
    PICTURES,
    WIDE,
    checksums_verify,
    export_input,
    longest_side_fits,
    sha256_of,
    unpack,
)
from training.backends.tiny_vlm import IMAGE_PAD
from training.exports.writers import ExportFormat, export_write

# transformers' processor turns its inputs into a numpy array the way numpy 2 warns about (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """RLHFDataset reads the parquet through ``datasets``, whose cache would otherwise land in the home folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def verl_export(tmp_path: Path, split_rows, stored_images, **overrides) -> Path:
    archive = export_write(
        format=ExportFormat.VERL,
        input=export_input(split_rows, stored_images, **overrides),
        out_dir=tmp_path / "out",
    )
    return unpack(archive, tmp_path / "unpacked")


def rlhf_dataset(parquet: Path, folder: Path, tmp_path: Path) -> RLHFDataset:
    """The dataset as verl's trainer builds it (data.* config keys), with the processor loaded by verl."""
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "image_key": "images",
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,  # counts each prompt's tokens, images included: reads every image
            # In this process: a forked worker of a process that already ran torch's OpenMP threads can hang.
            "filter_overlong_prompts_workers": None,
            "truncation": "error",
            "return_raw_chat": True,
            "cache_dir": str(tmp_path / "verl-cache"),
        }
    )
    return RLHFDataset(
        data_files=[str(parquet)],
        tokenizer=hf_tokenizer(str(folder)),
        processor=hf_processor(str(folder)),
        config=config,
    )


def test_archive_holds_the_splits_each_image_once_shrunk_and_checksums(tmp_path, split_rows, stored_images):
    folder = verl_export(tmp_path, split_rows, stored_images, image_root="/data/twin-v3")

    listed = checksums_verify(folder)
    assert {"train.parquet", "test.parquet", "dataset_info.json"} <= set(listed)

    image_files = sorted((folder / "images").iterdir())
    assert len(image_files) == len(PICTURES)  # every picture is shown by several pairs, stored once
    assert {path.stem for path in image_files} == {sha256_of(content) for content in stored_images.values()}
    for path in image_files:
        assert longest_side_fits(path.read_bytes(), 512), path.name
    # The small ones fitted: they are the stored files, PNG included; the large ones became JPEGs.
    by_sha = {sha256_of(content): (name, content) for name, content in stored_images.items()}
    for path in image_files:
        name, content = by_sha[path.stem]
        if name.endswith(("small.jpg", "small.png")):
            assert path.read_bytes() == content and path.suffix == Path(name).suffix
        else:
            assert path.suffix == ".jpg" and path.read_bytes() != content

    info = json.loads((folder / "dataset_info.json").read_text())
    assert info["format"] == "verl" and info["question"] == PAIR_QUESTION and info["max_side"] == 512
    assert info["splits"] == {
        "train": {"file": "train.parquet", "rows": 5},
        "eval": {"file": "test.parquet", "rows": 2},
    }
    assert info["images"] == 4 and info["metadata"]["snapshot"] == 7

    for file, split in (("train.parquet", "train"), ("test.parquet", "eval")):
        records = pq.read_table(folder / file).to_pylist()
        assert [record["extra_info"]["pair_id"] for record in records] == [
            row.pair_id for row in split_rows[split]
        ]
        for index, (record, row) in enumerate(zip(records, split_rows[split], strict=True)):
            assert record["data_source"] == "twin-v3"
            assert record["prompt"] == [{"role": "user", "content": "<image>\n<image>\n" + PAIR_QUESTION}]
            assert record["ability"] == "vision"
            assert record["reward_model"] == {"style": "rule", "ground_truth": row.answer}
            assert record["extra_info"] == {
                "pair_id": row.pair_id,
                "image_a_id": row.image_a_id,
                "image_b_id": row.image_b_id,
                "source": row.source,
                "split": split,
                "category": row.category,
                "index": index,
            }
            image_a, image_b = record["images"]
            assert image_a.startswith(f"/data/twin-v3/images/{row.image_a_sha256}.")
            assert image_b.startswith(f"/data/twin-v3/images/{row.image_b_sha256}.")
            assert (folder / image_a.removeprefix("/data/twin-v3/")).is_file()


@pytest.mark.parametrize("paths", ["absolute", "relative"])
def test_rlhf_dataset_reads_the_export_and_the_rollout_builds_two_image_inputs(
    paths, tmp_path, split_rows, stored_images, tiny_processor_dir, monkeypatch
):
    if paths == "absolute":
        folder = verl_export(tmp_path, split_rows, stored_images, image_root=str(tmp_path / "unpacked"))
    else:
        folder = verl_export(tmp_path, split_rows, stored_images)
        monkeypatch.chdir(folder)  # relative paths are read from the working directory

    dataset = rlhf_dataset(folder / "train.parquet", tiny_processor_dir, tmp_path)
    # verl goes on without a processor (text only) when it can't load one.
    assert type(dataset.processor).__name__ == "Qwen2_5_VLProcessor"
    # The length filter tokenized every prompt with its two images; a row it could not read would be gone.
    assert len(dataset) == len(split_rows["train"])

    for index, row in enumerate(split_rows["train"]):
        item = dataset[index]
        assert item["data_source"] == "twin-v3"
        assert item["reward_model"]["ground_truth"] == row.answer
        assert item["extra_info"]["pair_id"] == row.pair_id and item["index"] == index
        parts = item["raw_prompt"][0]["content"]
        assert [part["type"] for part in parts] == ["image", "text", "image", "text"]
        assert parts[-1]["text"] == "\n" + PAIR_QUESTION

    # What verl's single-turn agent loop does with a row: load its images, then render and tokenize the prompt
    # through the processor with verl's Qwen2.5-VL token builder.
    tokenizer, processor = dataset.tokenizer, dataset.processor
    messages = dataset[0]["raw_prompt"]
    images, videos, audios = RLHFDataset._process_multi_modal_info(
        messages, image_patch_size=processor.image_processor.patch_size, config=dataset.config
    )
    assert len(images) == 2 and videos is None and audios is None
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen2_5_vl", processor=processor)
    multi_modal_inputs: dict = {}
    input_ids = builder.build_initial_tokens(messages, images=images, mm_inputs_out=multi_modal_inputs)

    grid = multi_modal_inputs["image_grid_thw"]
    assert grid.shape == (2, 3)
    patches = int(grid.prod(dim=1).sum())
    assert multi_modal_inputs["pixel_values"].shape[0] == patches
    assert input_ids.count(tokenizer.convert_tokens_to_ids(IMAGE_PAD)) == patches // 4  # 2x2 patches merge
    # The 800x600 picture came out of the export at 512x384, which Qwen's 28-pixel grid makes 504x392.
    assert split_rows["train"][0].image_a_file == WIDE
    assert grid[0].tolist() == [1, 392 // 14, 504 // 14]

    test_dataset = rlhf_dataset(folder / "test.parquet", tiny_processor_dir, tmp_path)
    assert [test_dataset[i]["extra_info"]["pair_id"] for i in range(len(test_dataset))] == [6, 7]
