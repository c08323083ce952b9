"""The vLLM runner: what it asks vLLM for (conversations, sampling and engine arguments) is checked everywhere; the
same values are passed to vLLM's own types where vLLM is installed (the GPU nodes)."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from evaluation.runners.base import GenerationRequest, RunnerError, RunnerSettings, runner_open
from evaluation.runners.vllm_runner import (
    images_per_prompt_limit,
    vllm_conversations,
    vllm_engine_kwargs,
    vllm_sampling_kwargs,
)

VLLM_MISSING = "vLLM is not installed here (GPU nodes only: requirements-gpu.txt)"
vllm_installed = importlib.util.find_spec("vllm") is not None


def settings_for(**overrides) -> RunnerSettings:
    values = {"backend": "vllm", "model": "/models/twin-qwen2.5-vl-3b", "max_new_tokens": 64}
    values.update(overrides)
    return RunnerSettings(**values)


@pytest.fixture
def image_paths(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for number, mode in enumerate(["RGB", "L", "RGBA", "RGB"]):
        path = tmp_path / f"{number}.png"
        Image.fromarray(rng.integers(0, 256, size=(20 + number, 30, 3), dtype=np.uint8)).convert(mode).save(
            path
        )
        paths.append(str(path))
    return paths


def test_each_request_is_one_user_turn_with_its_images_first_then_the_text(image_paths):
    requests = [
        GenerationRequest(key="pair", prompt="Same object?", image_paths=tuple(image_paths[:2])),
        GenerationRequest(key="multi", prompt="How many match?", image_paths=tuple(image_paths)),
        GenerationRequest(key="text", prompt="No images."),
    ]

    pair, multi, text = vllm_conversations(requests)

    ((turn,),) = [pair]
    assert turn["role"] == "user"
    assert [part["type"] for part in turn["content"]] == ["image_pil", "image_pil", "text"]
    assert turn["content"][-1] == {"type": "text", "text": "Same object?"}
    images = [part["image_pil"] for part in multi[0]["content"][:-1]]
    assert len(images) == 4 and all(image.mode == "RGB" for image in images)
    # In the requests' order: the sizes tell the pictures apart.
    assert [image.size for image in images] == [(30, 20), (30, 21), (30, 22), (30, 23)]
    assert text == [{"role": "user", "content": [{"type": "text", "text": "No images."}]}]


def test_temperature_zero_is_greedy_with_the_token_limit():
    assert vllm_sampling_kwargs(settings_for(seed=3)) == {"max_tokens": 64, "temperature": 0.0, "seed": 3}
    assert vllm_sampling_kwargs(settings_for(temperature=1.0, seed=9)) == {
        "max_tokens": 64,
        "temperature": 1.0,
        "seed": 9,
    }


def test_the_engine_arguments_carry_the_settings():
    kwargs = vllm_engine_kwargs(
        settings_for(
            tensor_parallel_size=2,
            gpu_memory_utilization=0.8,
            max_model_len=8192,
            seed=4,
            dtype="bfloat16",
            min_pixels=3136,
            max_pixels=200704,
        )
    )

    assert kwargs == {
        "model": "/models/twin-qwen2.5-vl-3b",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.8,
        "seed": 4,
        "dtype": "bfloat16",
        "max_model_len": 8192,
        "limit_mm_per_prompt": {"image": 4},
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 200704},
    }


def test_unset_options_are_left_to_vllm_and_the_model():
    kwargs = vllm_engine_kwargs(settings_for(max_pixels=401408))

    assert "dtype" not in kwargs and "max_model_len" not in kwargs
    assert kwargs["mm_processor_kwargs"] == {"max_pixels": 401408}
    assert "mm_processor_kwargs" not in vllm_engine_kwargs(settings_for())


def test_extra_overrides_the_engine_arguments_and_the_image_limit():
    kwargs = vllm_engine_kwargs(
        settings_for(extra={"limit_mm_per_prompt": {"image": 6}, "enforce_eager": True})
    )

    assert kwargs["limit_mm_per_prompt"] == {"image": 6}
    assert kwargs["enforce_eager"] is True
    assert images_per_prompt_limit(kwargs) == 6
    assert images_per_prompt_limit({"limit_mm_per_prompt": {"image": {"count": 5, "width": 512}}}) == 5
    assert images_per_prompt_limit({}) == 4


@pytest.mark.skipif(vllm_installed, reason="vLLM is installed: the runner opens instead")
def test_without_vllm_the_runner_says_where_it_runs():
    with pytest.raises(RunnerError, match="requirements-gpu.txt"):
        runner_open(settings_for())


@pytest.mark.skipif(not vllm_installed, reason=VLLM_MISSING)
def test_vllm_takes_the_sampling_arguments():
    from vllm import SamplingParams

    from evaluation.runners.vllm_runner import vllm_sampling_params

    params = vllm_sampling_params(settings_for(seed=3))

    assert isinstance(params, SamplingParams)
    assert (params.max_tokens, params.temperature, params.seed) == (64, 0.0, 3)


@pytest.mark.skipif(not vllm_installed, reason=VLLM_MISSING)
def test_vllm_reads_the_image_parts_as_images(image_paths):
    # vLLM's own parser of chat content parts (what LLM.chat applies to each part): our parts must come out as
    # in-memory images, not as unknown parts or URLs to fetch.
    from vllm.entrypoints.chat_utils import _parse_chat_message_content_mm_part

    ((turn,),) = vllm_conversations(
        [GenerationRequest(key="q", prompt="Same?", image_paths=(image_paths[0],))]
    )
    image_part, text_part = turn["content"]

    part_type, content = _parse_chat_message_content_mm_part(image_part)
    assert part_type == "image_pil" and content is image_part["image_pil"]
    assert _parse_chat_message_content_mm_part(text_part) == ("text", "Same?")
