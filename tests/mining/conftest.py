"""Fixtures of the mining tests: a small procedurally drawn demo catalog, imported, with its ground truth."""

import json
from pathlib import Path

import pytest

from annotation.demo_catalog.generator import DemoCatalog, demo_catalog_make
from annotation.services.catalog_import import catalog_import

SOURCE = "demo-generated"


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> DemoCatalog:
    """12 instances (with twins, duplicate listings and bad photos) drawn at 96 px; made once per run."""
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("mining") / "catalog", instances=12, seed=3, image_size=96
    )


@pytest.fixture
def demo_catalog(db, demo_files: DemoCatalog) -> dict:
    """The demo catalog imported into this test's database and media root; returns its ground truth."""
    catalog_import(manifest_path=demo_files.manifest_path, images_root=demo_files.images_root, source=SOURCE)
    return json.loads(Path(demo_files.ground_truth_path).read_text(encoding="utf-8"))
