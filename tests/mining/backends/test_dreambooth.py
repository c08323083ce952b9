"""The DreamBooth backend, run for real on tiny random-weight components (CPU, 32x32, a few steps)."""

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mining.backends.dreambooth import (
    PAPER_PROMPTS,
    DreamBoothConfig,
    DreamBoothWeightsUnavailable,
    dreambooth_components_load,
    dreambooth_components_make,
    dreambooth_components_tiny,
    dreambooth_generate,
    dreambooth_instance,
    instance_images_sample,
)

TOKEN = "<twin-42>"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The models are tiny: a second thread buys little, and on a busy two-core machine its spin-waiting
    # makes every op many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def components():
    return dreambooth_components_tiny(resolution=32, seed=0)


@pytest.fixture(scope="module")
def instance_images() -> list[Image.Image]:
    """Three views of one 'mug': a blue body with a handle, shifted and lit differently, not all square."""
    images = []
    for index, (shift, light) in enumerate([(0, 220), (3, 190), (-2, 240)]):
        image = Image.new("RGB", (32 + 8 * index, 32), (light, light - 30, 200))
        draw = ImageDraw.Draw(image)
        draw.rectangle((8 + shift, 8, 20 + shift, 26), fill=(30, 60, 170))
        draw.arc((17 + shift, 12, 27 + shift, 22), 270, 90, fill=(30, 60, 170), width=2)
        images.append(image)
    return images


def tiny_config(**overrides) -> DreamBoothConfig:
    settings = {"resolution": 32, "train_steps": 3, "inference_steps": 2, "images_per_prompt": 1, "seed": 7}
    return DreamBoothConfig(**(settings | overrides))


def base_snapshot(components) -> dict:
    """Outputs and state that must be identical before and after an instance."""
    generator = torch.Generator().manual_seed(123)
    latents = torch.randn(1, 4, 16, 16, generator=generator).to(components.dtype)
    hidden = torch.randn(1, 77, 32, generator=generator).to(components.dtype)
    ids = components.tokenizer(
        ["a photo of headphones"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return {
            "unet": components.unet(latents, torch.tensor([500]), hidden).sample.clone(),
            "text": components.text_encoder(ids)[0].clone(),
            "embedding": components.text_encoder.get_input_embeddings(),
            "embedding_weight": components.text_encoder.get_input_embeddings().weight.clone(),
            "tokenizer_size": len(components.tokenizer),
            "unet_names": [name for name, _ in components.unet.named_modules()],
            "unet_dtype": components.unet.dtype,
        }


def assert_restored(components, before: dict) -> None:
    after = base_snapshot(components)
    assert torch.equal(after["unet"], before["unet"])
    assert torch.equal(after["text"], before["text"])
    assert after["embedding"] is before["embedding"]
    assert torch.equal(after["embedding_weight"], before["embedding_weight"])
    assert after["tokenizer_size"] == before["tokenizer_size"]
    assert TOKEN not in components.tokenizer.get_vocab()
    assert after["unet_names"] == before["unet_names"]  # no peft wrappers left behind
    assert after["unet_dtype"] == before["unet_dtype"]
    assert not getattr(components.unet, "peft_config", None)
    assert not components.unet.training
    for module in (components.unet, components.vae, components.text_encoder):
        assert not any(param.requires_grad for param in module.parameters())


def category_embedding(components, category: str) -> torch.Tensor:
    ids = components.tokenizer(category, add_special_tokens=False).input_ids
    return components.text_encoder.get_input_embeddings().weight[ids].mean(0).detach().clone()


def test_instance_images_sample_bounds():
    for count in range(3):
        assert instance_images_sample(count, rng=random.Random(0)) == list(range(count))
    sizes = set()
    for count in range(3, 12):
        for seed in range(30):
            chosen = instance_images_sample(count, rng=random.Random(seed))
            assert 3 <= len(chosen) <= min(5, count)
            assert chosen == sorted(set(chosen)) and all(0 <= index < count for index in chosen)
            assert chosen == instance_images_sample(count, rng=random.Random(seed))
            sizes.add(len(chosen))
    assert sizes == {3, 4, 5}
    with pytest.raises(ValueError):
        instance_images_sample(-1, rng=random.Random(0))


def test_lora_trains_adapter_and_token_then_restores(components, instance_images):
    before = base_snapshot(components)
    # "teapot" is whole in the tiny vocabulary; "zebra" is not, so its initializer is the mean of its pieces.
    for category in ("teapot", "zebra"):
        expected_initial = category_embedding(components, category)
        with dreambooth_instance(
            components, category=category, token=TOKEN, config=tiny_config()
        ) as instance:
            lora = {
                name: param.detach().clone()
                for name, param in components.unet.named_parameters()
                if "lora" in name
            }
            assert lora and all(
                param.requires_grad for name, param in components.unet.named_parameters() if "lora" in name
            )
            frozen = {
                name: param.detach().clone()
                for name, param in components.unet.named_parameters()
                if "lora" not in name
            }
            report = instance.train(instance_images)

            assert len(report.losses) == 3 and all(np.isfinite(report.losses))
            assert torch.allclose(report.token_embedding_initial, expected_initial)
            assert not torch.allclose(report.token_embedding_final, report.token_embedding_initial)
            trained = dict(components.unet.named_parameters())
            assert any(not torch.equal(trained[name], value) for name, value in lora.items())
            assert all(torch.equal(trained[name], value) for name, value in frozen.items())
            # The placeholder is one new id; every other row of the table is untouched.
            assert report.token_id == before["tokenizer_size"]
            assert torch.equal(
                components.text_encoder.get_input_embeddings().base.weight, before["embedding_weight"]
            )
        assert_restored(components, before)


def test_full_finetuning_changes_unet_then_restores(components, instance_images):
    before = base_snapshot(components)
    original = {name: param.detach().clone() for name, param in components.unet.named_parameters()}
    config = tiny_config(method="full")
    assert config.effective_learning_rate == 5e-6 and tiny_config().effective_learning_rate == 1e-4
    with dreambooth_instance(components, category="mug", token=TOKEN, config=config) as instance:
        report = instance.train(instance_images)
        assert all(np.isfinite(report.losses))
        changed = [
            name
            for name, param in components.unet.named_parameters()
            if not torch.equal(param, original[name])
        ]
        assert len(changed) > len(original) // 2
        assert not torch.equal(report.token_embedding_final, report.token_embedding_initial)
    assert_restored(components, before)


def test_generation_prompts_sizes_and_reproducibility(components, instance_images):
    before = base_snapshot(components)
    config = tiny_config(images_per_prompt=2)
    first = dreambooth_generate(
        components, images=instance_images, category="mug", token=TOKEN, config=config
    )
    assert_restored(components, before)
    assert len(first) == len(PAPER_PROMPTS) * 2
    assert [item.prompt for item in first] == [
        prompt.format(c=TOKEN) for prompt in PAPER_PROMPTS for _ in range(2)
    ]
    assert [item.seed for item in first] == list(range(7, 17))
    assert all(item.image.size == (32, 32) and item.image.mode == "RGB" for item in first)

    # Same seed, same images: the second run starts from the restored base model.
    again = dreambooth_generate(
        components, images=instance_images, category="mug", token=TOKEN, config=config
    )
    for one, two in zip(first, again, strict=True):
        assert np.array_equal(np.asarray(one.image), np.asarray(two.image))
    assert not np.array_equal(np.asarray(first[0].image), np.asarray(first[1].image))

    literal = dreambooth_generate(
        components,
        images=instance_images,
        category="mug",
        token=TOKEN,
        config=tiny_config(prompt_subject="category", train_steps=1, inference_steps=1),
        prompts=PAPER_PROMPTS[:2],
    )
    assert [item.prompt for item in literal] == ["an image of mug", "similar to mug"]
    assert_restored(components, before)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_bfloat16_components_train_in_float32_and_restore(instance_images, method):
    """The CUDA set-up (bf16 weights, bf16 autocast, float32 trained weights), exercised on the CPU."""
    tiny = dreambooth_components_tiny(seed=1)
    parts = {name: getattr(tiny, name) for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    components = dreambooth_components_make(**parts, device="cpu", dtype="bfloat16", source="tiny bf16")
    before = base_snapshot(components)
    config = tiny_config(method=method, mixed_precision="bf16")
    with dreambooth_instance(components, category="mug", token=TOKEN, config=config) as instance:
        trained = [param for param in components.unet.parameters() if param.requires_grad]
        assert trained and all(param.dtype == torch.float32 for param in trained)
        report = instance.train(instance_images)
        assert all(np.isfinite(report.losses))
        assert not torch.equal(report.token_embedding_final, report.token_embedding_initial)
        generated = instance.generate(PAPER_PROMPTS[:1])
        assert generated[0].image.size == (32, 32)
    assert_restored(components, before)


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("stop_at", [2, 5], ids=["training", "generation"])
def test_raising_in_on_step_stops_and_restores(components, instance_images, method, stop_at):
    before = base_snapshot(components)
    seen: list[tuple[int, int]] = []

    def on_step(done: int, total: int) -> None:
        seen.append((done, total))
        if done == stop_at:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        dreambooth_generate(
            components,
            images=instance_images,
            category="mug",
            token=TOKEN,
            config=tiny_config(method=method),
            on_step=on_step,
        )
    total = 3 + len(PAPER_PROMPTS) * 2
    assert seen == [(done, total) for done in range(1, stop_at + 1)]
    assert_restored(components, before)


def test_bad_token_is_refused_before_touching_components(components):
    before = base_snapshot(components)
    config = tiny_config()
    with (
        pytest.raises(ValueError, match="already"),
        dreambooth_instance(components, category="mug", token="<|endoftext|>", config=config),
    ):
        pass
    assert_restored(components, before)


def test_load_missing_folder_names_it(tmp_path):
    missing = tmp_path / "no-such-model"
    started = time.perf_counter()
    with pytest.raises(DreamBoothWeightsUnavailable, match=str(missing)):
        dreambooth_components_load(str(missing), device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DreamBoothWeightsUnavailable, match="unet"):
        dreambooth_components_load(str(empty), device="cpu")
    assert time.perf_counter() - started < 5


def test_load_unknown_hub_id_names_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    started = time.perf_counter()
    with pytest.raises(DreamBoothWeightsUnavailable) as raised:
        dreambooth_components_load("twin-tests/no-such-model", device="cpu")
    assert "twin-tests/no-such-model" in str(raised.value) and str(tmp_path / "hf-cache") in str(raised.value)
    assert time.perf_counter() - started < 5


def save_diffusers_layout(components, folder) -> None:
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        getattr(components, name).save_pretrained(folder / name)


def test_round_trip_from_folder_and_from_hf_cache(components, instance_images, tmp_path, monkeypatch):
    folder = tmp_path / "tiny-sd"
    save_diffusers_layout(components, folder)
    loaded = dreambooth_components_load(str(folder), device="cpu", dtype="float32")
    assert base_snapshot(loaded)["unet"].equal(base_snapshot(components)["unet"])
    assert base_snapshot(loaded)["text"].equal(base_snapshot(components)["text"])
    assert (
        loaded.tokenizer("show me a teapot").input_ids == components.tokenizer("show me a teapot").input_ids
    )

    # The same files as a snapshot in a Hugging Face cache, found by hub id without any network.
    cache = tmp_path / "hf-cache"
    revision = "0" * 40
    shutil.copytree(folder, cache / "models--twin-tests--tiny-sd" / "snapshots" / revision)
    (cache / "models--twin-tests--tiny-sd" / "refs").mkdir()
    (cache / "models--twin-tests--tiny-sd" / "refs" / "main").write_text(revision)
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    cached = dreambooth_components_load("twin-tests/tiny-sd", device="cpu")
    generated = dreambooth_generate(
        cached,
        images=instance_images,
        category="teapot",
        token=TOKEN,
        config=tiny_config(train_steps=1, inference_steps=1),
        prompts=PAPER_PROMPTS[:1],
    )
    assert [(item.prompt, item.image.size) for item in generated] == [(f"an image of {TOKEN}", (32, 32))]


def test_importing_the_module_loads_no_ml_library():
    code = (
        "import sys; import mining.backends.dreambooth; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"
