"""Embedders: naming them, the tiny open_clip model's vectors through the batched parallel path, weights that
can't be found, and the weightless descriptor."""

import io
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mining.backends.embedders import (
    TINY_MODEL,
    EmbedderSpec,
    EmbeddingError,
    WeightsUnavailable,
    embedder_load,
    embedder_spec_parse,
    precision_resolve,
)

TINY = EmbedderSpec(family="open_clip", model=TINY_MODEL, pretrained=None)


def jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def drawing(
    *, body: tuple[int, int, int], detail: tuple[int, int, int], mirrored: bool = False, light: float = 1.0
):
    """A product-like photo: an object (body, handle, a detail) on a plain background."""
    picture = Image.new("RGB", (96, 96), (235, 235, 230))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((30, 25, 62, 80), fill=body)
    draw.ellipse((62, 35, 78, 60), outline=body, width=5)
    draw.rectangle((36, 40, 50, 52), fill=detail)
    if mirrored:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if light != 1.0:
        picture = Image.eval(picture, lambda v: min(255, int(v * light)))
    return picture


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    rng = np.random.default_rng(0)
    return [
        jpeg(drawing(body=tuple(int(c) for c in rng.integers(0, 200, 3)), detail=(250, 20, 20)))
        for _ in range(9)
    ]


@pytest.mark.parametrize(
    ("text", "expected", "key"),
    [
        ("descriptor", EmbedderSpec("descriptor", "colour-layout-v1", None), "descriptor/colour-layout-v1"),
        ("open_clip", EmbedderSpec("open_clip"), "open_clip/ViT-B-32/laion2b_s34b_b79k"),
        ("open_clip:ViT-L-14", EmbedderSpec("open_clip", "ViT-L-14"), "open_clip/ViT-L-14/laion2b_s34b_b79k"),
        (
            "open_clip:ViT-B-32:openai",
            EmbedderSpec("open_clip", "ViT-B-32", "openai"),
            "open_clip/ViT-B-32/openai",
        ),
        (
            "open_clip:ViT-B-32:random",
            EmbedderSpec("open_clip", "ViT-B-32", None),
            "open_clip/ViT-B-32/random",
        ),
    ],
)
def test_specs_are_read_from_text_and_named_by_a_stable_key(text, expected, key):
    assert embedder_spec_parse(text) == expected
    assert embedder_spec_parse(text).key == key


def test_a_weights_file_is_named_by_its_name_and_a_hash_of_its_path(tmp_path):
    one = embedder_spec_parse(f"open_clip:ViT-B-32:{tmp_path / 'a' / 'model.bin'}")
    two = embedder_spec_parse(f"open_clip:ViT-B-32:{tmp_path / 'b' / 'model.bin'}")
    assert one.key.startswith("open_clip/ViT-B-32/file:model.bin:")
    assert one.key != two.key


@pytest.mark.parametrize("text", ["clip", "open_clip:", "descriptor:v2", "", "open_clip::x"])
def test_unknown_specs_are_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="open_clip:MODEL:PRETRAINED"):
        embedder_spec_parse(text)


def test_tiny_open_clip_yields_unit_vectors_in_order_whatever_the_batching_and_workers(photos):
    torch.manual_seed(0)
    embedder = embedder_load(TINY, device="cpu", precision="fp32", allow_random_weights=True)
    items = list(range(len(photos)))
    batches = list(embedder.embed(items, photos.__getitem__, batch_size=4, workers=0))
    assert [len(b) for b in batches] == [4, 4, 1]
    vectors = np.concatenate(batches)
    assert vectors.shape == (9, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    in_workers = np.concatenate(list(embedder.embed(items, photos.__getitem__, batch_size=2, workers=2)))
    one_by_one = np.concatenate(list(embedder.embed(items, photos.__getitem__, batch_size=1, workers=0)))
    np.testing.assert_allclose(in_workers, vectors, atol=1e-5)
    np.testing.assert_allclose(one_by_one, vectors, atol=1e-5)
    reversed_order = np.concatenate(
        list(embedder.embed(items[::-1], photos.__getitem__, batch_size=4, workers=2))
    )
    np.testing.assert_allclose(reversed_order, vectors[::-1], atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 9  # distinct photos, distinct vectors


def test_bf16_vectors_are_close_to_fp32_ones(photos):
    torch.manual_seed(1)
    full = embedder_load(TINY, device="cpu", precision="fp32", allow_random_weights=True)
    torch.manual_seed(1)
    half = embedder_load(TINY, device="cpu", precision="bf16", allow_random_weights=True)
    items = list(range(len(photos)))
    a = np.concatenate(list(full.embed(items, photos.__getitem__, workers=0)))
    b = np.concatenate(list(half.embed(items, photos.__getitem__, workers=0)))
    assert b.dtype == np.float32
    assert (a * b).sum(axis=1).min() > 0.99


def test_precision_auto_is_bf16_on_cuda_and_explicit_choices_stand():
    assert precision_resolve("auto", "cuda") == "bf16"
    assert precision_resolve("fp32", "cuda") == "fp32"
    assert precision_resolve("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ValueError):
        precision_resolve("fp16", "cpu")


def test_random_weights_need_an_explicit_permission():
    with pytest.raises(WeightsUnavailable, match=TINY_MODEL):
        embedder_load(TINY, device="cpu")


def test_missing_weights_fail_fast_and_say_where_they_were_looked_for(tmp_path):
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as missing_tag:
        embedder_load(embedder_spec_parse("open_clip:ViT-B-32:laion2b_s34b_b79k"), cache_dir=str(tmp_path))
    message = str(missing_tag.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message and str(tmp_path) in message
    assert time.monotonic() - started < 30  # no download attempt

    with pytest.raises(WeightsUnavailable, match=r"no weights file at .*nothing\.bin"):
        embedder_load(embedder_spec_parse(f"open_clip:ViT-B-32:{tmp_path / 'nothing.bin'}"))
    with pytest.raises(WeightsUnavailable, match="unknown pretrained tag 'bogus'"):
        embedder_load(embedder_spec_parse("open_clip:ViT-B-32:bogus"))


def test_a_weights_file_loads_into_the_model(tmp_path, photos):
    torch.manual_seed(2)
    source = embedder_load(TINY, device="cpu", precision="fp32", allow_random_weights=True)
    import open_clip

    torch.manual_seed(3)
    model = open_clip.create_model(TINY_MODEL, pretrained=None)
    model.visual.load_state_dict(source.model.state_dict())
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    loaded = embedder_load(
        embedder_spec_parse(f"open_clip:{TINY_MODEL}:{path}"), device="cpu", precision="fp32"
    )
    items = list(range(3))
    np.testing.assert_allclose(
        np.concatenate(list(loaded.embed(items, photos.__getitem__, workers=0))),
        np.concatenate(list(source.embed(items, photos.__getitem__, workers=0))),
        atol=1e-5,
    )


def test_descriptor_matches_a_mirrored_relit_photo_before_another_object():
    embedder = embedder_load(embedder_spec_parse("descriptor"))
    pictures = [
        jpeg(drawing(body=(40, 90, 160), detail=(240, 200, 30))),
        jpeg(drawing(body=(40, 90, 160), detail=(240, 200, 30), mirrored=True, light=0.85)),
        jpeg(drawing(body=(160, 60, 40), detail=(30, 30, 30))),
    ]
    vectors = np.concatenate(list(embedder.embed([0, 1, 2, 0], pictures.__getitem__, workers=2)))
    assert vectors.shape == (4, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


@pytest.mark.parametrize("family", ["descriptor", "tiny"])
def test_an_undecodable_image_is_an_error_naming_it(family):
    spec = embedder_spec_parse("descriptor") if family == "descriptor" else TINY
    embedder = embedder_load(spec, device="cpu", allow_random_weights=True)
    contents = {"good.jpg": jpeg(drawing(body=(1, 2, 3), detail=(4, 5, 6))), "broken.jpg": b"not an image"}
    with pytest.raises(EmbeddingError, match="broken.jpg"):
        list(embedder.embed(["good.jpg", "broken.jpg"], contents.__getitem__, workers=0))


def _embed_in_a_daemon(results) -> None:
    embedder = embedder_load(embedder_spec_parse("descriptor"))
    pictures = [jpeg(drawing(body=(9 * n, 40, 90), detail=(200, 20, 20))) for n in range(5)]
    results.put(np.concatenate(list(embedder.embed(range(5), pictures.__getitem__, batch_size=2, workers=2))))


def test_a_daemon_process_such_as_a_celery_prefork_child_still_embeds():
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(target=_embed_in_a_daemon, args=(results,), daemon=True)
    process.start()
    vectors = results.get(timeout=60)
    process.join(timeout=10)
    assert process.exitcode == 0
    assert vectors.shape == (5, embedder_load(embedder_spec_parse("descriptor")).dim)
