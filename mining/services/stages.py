"""The mining stages, their parameters and defaults, and creating a job for one of them (or the pipeline).

A stage is recorded as a job of kind ``mining_<stage>``; the pipeline is a ``mining_pipeline`` job whose stages
are its child jobs, run one after the other.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import Job
from jobs.services import job_create
from mining.services.embeddings import embedder_spec_for
from mining.services.synthetic import dreambooth_model_check


class Stage(StrEnum):
    VERIFICATION = "verification"  # image-verification tasks for the catalog's pending photos
    EMBED = "embed"
    DUPLICATES = "duplicates"
    HARD_NEGATIVES = "hard_negatives"
    SYNTHETIC = "synthetic"


PIPELINE = "pipeline"
PIPELINE_STAGES = (Stage.VERIFICATION, Stage.EMBED, Stage.DUPLICATES, Stage.HARD_NEGATIVES, Stage.SYNTHETIC)
JOB_KIND_PREFIX = "mining_"
SEARCH_METHODS = ("auto", "exact", "hnsw", "ivf")


def job_kind(stage: str) -> str:
    return f"{JOB_KIND_PREFIX}{stage}"


def stage_of(job: Job) -> str:
    return job.kind.removeprefix(JOB_KIND_PREFIX)


def stage_defaults() -> dict[str, dict[str, Any]]:
    """Each stage's parameters with their defaults (from the settings and the TWIN paper)."""
    scope = {"sources": []}
    embedder = {"embedder": settings.MINING_EMBEDDER}
    return {
        Stage.VERIFICATION: {**scope},
        Stage.EMBED: {
            **scope,
            **embedder,
            "batch_size": settings.MINING_EMBED_BATCH_SIZE,
            "workers": settings.MINING_EMBED_WORKERS,
            "chunk_size": settings.MINING_EMBED_CHUNK_SIZE,
            "device": settings.MINING_DEVICE,
            "precision": "auto",
        },
        Stage.DUPLICATES: {**scope, **embedder, "search": "auto"},
        Stage.HARD_NEGATIVES: {**scope, **embedder, "search": "auto", "seed": 0, "same_category_only": False},
        Stage.SYNTHETIC: {
            **scope,
            "model": settings.MINING_DREAMBOOTH_MODEL,
            "method": "lora",
            "train_steps": 400,
            "resolution": 512,
            "images_per_prompt": 1,
            "inference_steps": 30,
            "guidance_scale": 7.5,
            "prompt_subject": "token",
            "instances_limit": None,
            "seed": 0,
            "device": settings.MINING_DEVICE,
        },
    }


def stage_parameters(stage: str, given: dict[str, Any]) -> dict[str, Any]:
    """The stage's defaults overridden by ``given``; ValueError names an unknown or invalid parameter."""
    defaults = stage_defaults()
    if stage == PIPELINE:
        allowed: dict[str, Any] = {"stages": [str(s) for s in PIPELINE_STAGES]}
        for stage_params in defaults.values():
            allowed.update(stage_params)
    elif stage in defaults:
        allowed = dict(defaults[stage])
    else:
        raise ValueError(f"unknown mining stage {stage!r}; the stages are {', '.join([*Stage, PIPELINE])}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) for {stage}: {', '.join(unknown)}")
    parameters = {**allowed, **{key: value for key, value in given.items() if value is not None}}
    _validate(stage, parameters)
    return parameters


def _validate(stage: str, parameters: dict[str, Any]) -> None:
    if not isinstance(parameters["sources"], list | tuple) or not all(
        isinstance(s, str) for s in parameters["sources"]
    ):
        raise ValueError("sources must be a list of catalog source names")
    parameters["sources"] = list(parameters["sources"])
    if stage == PIPELINE:
        unknown = [s for s in parameters["stages"] if s not in set(Stage)]
        if unknown or not parameters["stages"]:
            raise ValueError(
                f"pipeline stages must be some of {', '.join(Stage)}; got {parameters['stages']}"
            )
    if "embedder" in parameters:
        embedder_spec_for(parameters["embedder"])  # parses it and refuses random weights unless allowed
    if parameters.get("search", "auto") not in SEARCH_METHODS:
        raise ValueError(f"search must be one of {', '.join(SEARCH_METHODS)}")
    for name in (
        "batch_size",
        "chunk_size",
        "train_steps",
        "resolution",
        "images_per_prompt",
        "inference_steps",
    ):
        if name in parameters and (not isinstance(parameters[name], int) or parameters[name] < 1):
            raise ValueError(f"{name} must be a positive whole number")
    if "workers" in parameters and (not isinstance(parameters["workers"], int) or parameters["workers"] < 0):
        raise ValueError("workers must be 0 or more")
    limit = parameters.get("instances_limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError("instances_limit must be a positive whole number, or empty for all instances")
    if "model" in parameters:
        dreambooth_model_check(parameters["model"])
    if parameters.get("method", "lora") not in ("lora", "full"):
        raise ValueError("method must be lora or full")
    if parameters.get("prompt_subject", "token") not in ("token", "category"):
        raise ValueError("prompt_subject must be token or category")


@transaction.atomic
def mining_job_create(
    *,
    stage: str,
    parameters: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
    parent: Job | None = None,
) -> Job:
    """A queued job for one stage or for the whole pipeline (``stage="pipeline"``)."""
    parameters = stage_parameters(stage, parameters or {})
    total = len(parameters["stages"]) if stage == PIPELINE else None
    return job_create(
        kind=job_kind(stage), parameters=parameters, created_by=created_by, total=total, parent=parent
    )


def stage_parameters_subset(stage: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a pipeline that concern one of its stages."""
    return {key: value for key, value in parameters.items() if key in stage_defaults()[stage]}


def stages_of(parameters: dict[str, Any]) -> Sequence[str]:
    return parameters.get("stages", [])
