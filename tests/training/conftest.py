"""Fixtures of the training tests: the tiny Qwen2.5-VL processor, built once per run."""

from pathlib import Path

import pytest

from training.backends.tiny_vlm import tiny_qwen_vl_processor_save


@pytest.fixture(scope="session")
def tiny_processor_dir(tmp_path_factory) -> Path:
    """A folder holding the tiny processor, as a model folder holds a real one."""
    return tiny_qwen_vl_processor_save(tmp_path_factory.mktemp("tiny-qwen-vl"))
