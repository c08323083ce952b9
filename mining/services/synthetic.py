"""Synthetic negatives (TWIN appendix B.4): DreamBooth per instance, generated images into the review queue.

One chunk per instance: fine-tune on 3 to 5 of its photos, generate with the paper's five prompts, store the
generations as Images with origin "generated" (never photos of the instance: negatives of it) and create their
synthetic-validation tasks. The generations of one configuration are named by a hash of it, so a chunk run
again (after a crash, or a re-run of the stage) stores only what is missing and fine-tunes only when
something is.
"""

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from annotation.models import Image, Instance
from annotation.review.task_creation import synthetic_validation_tasks_create
from annotation.services.generated_images import generated_image_store
from mining.backends.dreambooth import (
    PAPER_PROMPTS,
    DreamBoothConfig,
    dreambooth_components_load,
    dreambooth_components_tiny,
    dreambooth_generate,
    instance_images_sample,
)
from mining.services.embeddings import RandomWeightsRefused
from mining.services.scope import active_instances, usable_images

TINY_RANDOM_MODEL = "tiny-random"
SOURCE_PREFIX = "dreambooth"


def dreambooth_model_check(model: str) -> None:
    """Refuses the random-weight model unless the settings allow it (tests and the demo)."""
    if model == TINY_RANDOM_MODEL and not settings.MINING_ALLOW_RANDOM_WEIGHTS:
        raise RandomWeightsRefused(
            f"DreamBooth model {TINY_RANDOM_MODEL!r} has random weights: its images are noise. Name a Stable "
            "Diffusion folder or hub id, or set TWIN_MINING_ALLOW_RANDOM_WEIGHTS=1 for a test or a demo"
        )


def dreambooth_config_from(parameters: dict) -> DreamBoothConfig:
    """The DreamBooth settings among a job's parameters (the rest are the job's own)."""
    names = {f.name for f in fields(DreamBoothConfig)}
    return DreamBoothConfig(**{key: value for key, value in parameters.items() if key in names})


def synthetic_run_key(*, model: str, config: DreamBoothConfig, prompts: Sequence[str]) -> str:
    """A short name for one way of generating: the same model, settings and prompts give the same images."""
    described = json.dumps(
        {"model": model, "config": asdict(config), "prompts": list(prompts)}, sort_keys=True
    )
    return hashlib.sha256(described.encode()).hexdigest()[:12]


def synthetic_chunks_plan(
    *, sources: Sequence[str], instances_limit: int | None, seed: int
) -> list[tuple[dict, int]]:
    """One chunk per active instance with usable photos; ``instances_limit`` draws that many, seeded."""
    with_photos = usable_images(sources=sources).values("product__instance_id")
    instance_ids = list(
        active_instances(sources=sources)
        .filter(pk__in=with_photos)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if instances_limit is not None and instances_limit < len(instance_ids):
        rng = np.random.default_rng(seed)
        instance_ids = sorted(int(i) for i in rng.choice(instance_ids, size=instances_limit, replace=False))
    return [({"instance_id": instance_id}, 1) for instance_id in instance_ids]


@dataclass(frozen=True)
class InstanceGenerated:
    stored: int  # new generated images
    tasks_created: int
    fine_tuned: bool  # False when every image of this configuration was already there


def synthetic_instance_run(
    *,
    instance_id: int,
    model: str,
    config: DreamBoothConfig,
    device: str | None = None,
    prompts: Sequence[str] = PAPER_PROMPTS,
    on_step: Callable[[int, int], None] | None = None,
) -> InstanceGenerated:
    """Fine-tunes on the instance's photos and stores what is missing of its generations, with their tasks."""
    instance = Instance.objects.select_related("category").get(pk=instance_id)
    run_key = synthetic_run_key(model=model, config=config, prompts=prompts)
    prefix = f"{SOURCE_PREFIX}/{run_key}/{instance_id}/"
    expected = len(prompts) * config.images_per_prompt
    mine = Image.objects.filter(generated_for_id=instance_id, source_path__startswith=prefix)
    stored = 0
    fine_tuned = False
    if mine.count() < expected:
        photos = list(
            usable_images()
            .filter(product__instance_id=instance_id)
            .order_by("product_id", "position", "pk")
            .values_list("file", flat=True)
        )
        if not photos:
            return InstanceGenerated(stored=0, tasks_created=0, fine_tuned=False)
        chosen = instance_images_sample(len(photos), rng=random.Random(f"{config.seed}:{instance_id}"))
        pictures = [_picture_open(photos[i]) for i in chosen]
        generated = dreambooth_generate(
            _components_get(model=model, config=config, device=device or settings.MINING_DEVICE),
            images=pictures,
            category=instance.category.name,
            token=f"<twin-{instance_id}>",
            config=config,
            prompts=prompts,
            on_step=on_step,
        )
        fine_tuned = True
        have = set(mine.values_list("source_path", flat=True))
        for number, sample in enumerate(generated):
            source_path = f"{prefix}{number:03d}.jpg"
            if source_path in have:
                continue
            stored += (
                generated_image_store(sample.image, instance_id=instance_id, source_path=source_path)
                is not None
            )
    prompt_of = {
        pk: _prompt_of(source_path, prompts=prompts, config=config, category=instance.category.name)
        for pk, source_path in mine.values_list("pk", "source_path")
    }
    created = synthetic_validation_tasks_create(images=mine, prompts=prompt_of)
    return InstanceGenerated(stored=stored, tasks_created=len(created), fine_tuned=fine_tuned)


def _prompt_of(source_path: str, *, prompts: Sequence[str], config: DreamBoothConfig, category: str) -> str:
    """The prompt that made a stored generation: generations are stored prompt by prompt, in order."""
    number = int(source_path.rsplit("/", 1)[-1].split(".")[0])
    template = prompts[min(number // config.images_per_prompt, len(prompts) - 1)]
    return template.format(c=category)


def _picture_open(name: str) -> PILImage.Image:
    with default_storage.open(name, "rb") as handle, PILImage.open(handle) as picture:
        return picture.convert("RGB")


_loaded: dict[tuple, object] = {}


def _components_get(*, model: str, config: DreamBoothConfig, device: str):
    """The base model's components, loaded once per worker process and put back after every instance."""
    key = (model, config.resolution if model == TINY_RANDOM_MODEL else None, device)
    if key not in _loaded:
        _loaded.clear()
        dreambooth_model_check(model)
        if model == TINY_RANDOM_MODEL:
            _loaded[key] = dreambooth_components_tiny(
                resolution=config.resolution, seed=config.seed, device="cpu"
            )
        else:
            _loaded[key] = dreambooth_components_load(model, device=device)
    return _loaded[key]
