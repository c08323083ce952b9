"""The transformers runner on a tiny random Qwen2.5-VL, on the CPU: prompts with one and several images, batches of
mixed image counts that answer as the same prompts one at a time do, order, determinism and the token limits."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from evaluation.runners.base import GenerationRequest, RunnerError, RunnerSettings, runner_open
from evaluation.runners.transformers_runner import TransformersRunner, chat_messages

# transformers' processor turns its inputs into a numpy array the way numpy 2 warns about (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

QUESTION = "Do the images show the same object? Answer yes or no."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from training.backends.tiny_vlm import tiny_qwen_vl_model_save

    return tiny_qwen_vl_model_save(tmp_path_factory.mktemp("tiny-qwen-vl"), seed=0)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory) -> list[str]:
    """Six small pictures of different sizes, modes and formats: a shape on a noisy background each."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    specs = [
        ((64, 48), "RGB", "png"),
        ((48, 64), "RGB", "jpg"),
        ((80, 40), "L", "png"),  # grey: the runner converts to RGB
        ((56, 56), "RGBA", "png"),  # alpha: dropped
        ((70, 50), "RGB", "jpg"),
        ((40, 90), "P", "png"),  # palette
    ]
    paths = []
    for number, (size, mode, extension) in enumerate(specs):
        background = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        picture = Image.fromarray(background)
        ImageDraw.Draw(picture).ellipse((8, 8, size[0] - 8, size[1] - 8), fill=(200, 40 * number, 90))
        path = folder / f"{number}.{extension}"
        picture.convert(mode).save(path)
        paths.append(str(path))
    return paths


def settings_for(model_dir: Path, **overrides) -> RunnerSettings:
    values = {"backend": "transformers", "model": str(model_dir), "device": "cpu", "max_new_tokens": 8}
    values.update(overrides)
    return RunnerSettings(**values)


@pytest.fixture(scope="module")
def runner(model_dir):
    opened = runner_open(settings_for(model_dir))
    yield opened
    opened.close()


def mixed_requests(image_paths: list[str]) -> list[GenerationRequest]:
    """Prompts of 1 to 4 images and of two text lengths, so a batch needs padding of different widths."""
    counts = [1, 4, 2, 3, 1, 2, 4]
    return [
        GenerationRequest(
            key=f"q{index}",
            prompt=QUESTION if index % 2 else f"{QUESTION} Compare shape, colour and markings first.",
            image_paths=tuple(image_paths[(index + offset) % len(image_paths)] for offset in range(count)),
        )
        for index, count in enumerate(counts)
    ]


def test_the_messages_put_the_images_first_then_the_text():
    request = GenerationRequest(key="a", prompt="Same?", image_paths=("x.png", "y.png"))

    assert chat_messages(request) == [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}],
        }
    ]


def test_runner_open_gives_the_transformers_runner_on_the_cpu_in_fp32(runner):
    assert isinstance(runner, TransformersRunner)
    assert runner.device == "cpu"
    assert runner.dtype == torch.float32
    assert next(runner.model.parameters()).dtype == torch.float32
    assert runner.processor.tokenizer.padding_side == "left"


def test_a_one_image_prompt_is_answered_with_counts(runner, image_paths):
    (result,) = runner.generate(
        [GenerationRequest(key="one", prompt=QUESTION, image_paths=(image_paths[0],))]
    )

    assert result.key == "one"
    assert isinstance(result.text, str) and result.text
    assert 1 <= result.completion_tokens <= 8
    assert result.prompt_tokens > 10
    assert result.seconds > 0


def test_more_images_make_a_longer_prompt(runner, image_paths):
    one, four = runner.generate(
        [
            GenerationRequest(key="one", prompt=QUESTION, image_paths=(image_paths[0],)),
            GenerationRequest(key="four", prompt=QUESTION, image_paths=tuple(image_paths[:4])),
        ]
    )

    # Each image adds its vision markers and one placeholder token per merged 28x28 patch.
    assert four.prompt_tokens > one.prompt_tokens + 3 * 3
    assert four.text


def test_a_batch_of_mixed_image_counts_answers_as_one_prompt_at_a_time(runner, image_paths):
    requests = mixed_requests(image_paths)

    batched = runner.generate(requests)  # batch_size 8: all seven prompts in one left-padded batch
    alone = [runner.generate([request])[0] for request in requests]

    assert [result.key for result in batched] == [request.key for request in requests]
    assert [result.text for result in batched] == [result.text for result in alone]
    assert [result.completion_tokens for result in batched] == [result.completion_tokens for result in alone]
    assert [result.prompt_tokens for result in batched] == [result.prompt_tokens for result in alone]
    # The texts differ between prompts: the comparison is not between seven copies of one answer.
    assert len({result.text for result in alone}) > 1


def test_batches_smaller_than_the_requests_keep_the_order(model_dir, image_paths, runner):
    requests = mixed_requests(image_paths)
    small = TransformersRunner(settings_for(model_dir, batch_size=3))  # batches of 3, 3 and 1

    results = small.generate(requests)

    assert [result.key for result in results] == [request.key for request in requests]
    assert [result.text for result in results] == [result.text for result in runner.generate(requests)]
    small.close()


def test_greedy_answers_are_the_same_on_every_call_and_every_opening(model_dir, image_paths, runner):
    requests = mixed_requests(image_paths)[:3]
    first = runner.generate(requests)
    reopened = runner_open(settings_for(model_dir))

    assert [result.text for result in runner.generate(requests)] == [result.text for result in first]
    assert [result.text for result in reopened.generate(requests)] == [result.text for result in first]
    reopened.close()


def test_sampling_with_a_seed_is_repeatable(model_dir, image_paths):
    requests = mixed_requests(image_paths)[:3]
    sampling = TransformersRunner(settings_for(model_dir, temperature=1.0, seed=7))

    assert [result.text for result in sampling.generate(requests)] == [
        result.text for result in sampling.generate(requests)
    ]
    sampling.close()


def test_max_new_tokens_bounds_the_answer(model_dir, image_paths):
    requests = mixed_requests(image_paths)[:4]
    # min_new_tokens (passed through extra to generate) holds back the end of turn, so every answer runs to the limit.
    forced = TransformersRunner(settings_for(model_dir, max_new_tokens=5, extra={"min_new_tokens": 5}))
    short = TransformersRunner(settings_for(model_dir, max_new_tokens=2))

    assert [result.completion_tokens for result in forced.generate(requests)] == [5, 5, 5, 5]
    assert all(1 <= result.completion_tokens <= 2 for result in short.generate(requests))
    forced.close()
    short.close()


def test_max_pixels_shrinks_the_images(model_dir, tmp_path):
    large = tmp_path / "large.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (224, 280, 3), dtype=np.uint8)).save(large)
    request = GenerationRequest(key="large", prompt=QUESTION, image_paths=(str(large),))
    bounded = TransformersRunner(settings_for(model_dir, max_pixels=56 * 56))

    (default,) = TransformersRunner(settings_for(model_dir)).generate([request])
    (small,) = bounded.generate([request])

    assert bounded.processor.image_processor.size.longest_edge == 56 * 56
    assert small.prompt_tokens < default.prompt_tokens - 50  # 80 image tokens at 224x280, 4 at most at 56x56


def test_a_batch_out_of_cuda_memory_is_retried_in_halves(runner, image_paths, monkeypatch):
    requests = mixed_requests(image_paths)
    expected = [result.text for result in runner.generate(requests)]
    real = TransformersRunner._batch_generate_once
    sizes = []

    def small_batches_only(self, batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch)

    monkeypatch.setattr(TransformersRunner, "_batch_generate_once", small_batches_only)
    results = runner.generate(requests)

    assert [result.text for result in results] == expected
    assert [result.key for result in results] == [request.key for request in requests]
    assert sizes == [7, 3, 1, 2, 4, 2, 2]


def test_a_single_prompt_out_of_memory_is_a_runner_error(runner, image_paths, monkeypatch):
    def always_out_of_memory(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(TransformersRunner, "_batch_generate_once", always_out_of_memory)

    with pytest.raises(RunnerError, match="out of memory on a single prompt"):
        runner.generate(mixed_requests(image_paths)[:2])


def test_what_cannot_be_loaded_is_a_runner_error(model_dir, tmp_path, runner):
    with pytest.raises(RunnerError, match="cannot load model"):
        runner_open(settings_for(tmp_path / "no-such-model"))
    with pytest.raises(RunnerError, match="unknown dtype"):
        runner_open(settings_for(model_dir, dtype="float8"))
    with pytest.raises(RunnerError, match="cannot read image"):
        runner.generate(
            [GenerationRequest(key="x", prompt=QUESTION, image_paths=(str(tmp_path / "gone.png"),))]
        )


def test_close_drops_the_model(model_dir):
    opened = runner_open(settings_for(model_dir))
    opened.close()

    assert opened.model is None
