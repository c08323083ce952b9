"""Benchmark: importing a generated catalog of ~20,000 images, fresh and again (idempotent re-import).

Compares the import's threaded image pipeline against a one-thread baseline in the same run, each on a fresh
SQLite database (or on DATABASE_URL's database when --postgres is given). Prints medians over --repeats runs.

    python bench/import_catalog.py --instances 4000 --repeats 1
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_one(catalog_dir: Path, workers: int, data_dir: Path) -> dict:
    """Imports the catalog into a fresh database in a child process; returns its timings and counts."""
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    env.pop("DATABASE_URL", None)
    code = f"""
import json, time, django
django.setup()
from pathlib import Path
from django.core.management import call_command
from annotation.services.catalog_import import catalog_import
call_command("migrate", verbosity=0)
root, manifest = Path({str(catalog_dir / "images")!r}), Path({str(catalog_dir / "manifest.jsonl")!r})
started = time.perf_counter()
first = catalog_import(manifest_path=manifest, images_root=root, workers={workers})
fresh = time.perf_counter() - started
started = time.perf_counter()
second = catalog_import(manifest_path=manifest, images_root=root, workers={workers})
again = time.perf_counter() - started
print(json.dumps({{"fresh_s": fresh, "again_s": again, "first": first.summary(), "second": second.summary()}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=4000, help="generated instances (~5 images each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="threads of the pipeline under test")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from annotation.demo_catalog.generator import demo_catalog_make

    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        catalog = demo_catalog_make(output_dir=tmp_path / "catalog", instances=args.instances, seed=args.seed)
        generated_s = time.perf_counter() - started
        images = sum(len(json.loads(line)["images"]) for line in catalog.manifest_path.open())
        products = sum(1 for _ in catalog.manifest_path.open())
        print(f"catalog: {products:,} products, {images:,} images, generated in {generated_s:.1f} s")

        results: dict[str, list[dict]] = {"baseline (1 thread)": [], f"pipeline ({args.workers} threads)": []}
        for repeat in range(args.repeats):
            for label, workers in (
                ("baseline (1 thread)", 1),
                (f"pipeline ({args.workers} threads)", args.workers),
            ):
                results[label].append(
                    run_one(tmp_path / "catalog", workers, tmp_path / f"data-{label[:4]}-{repeat}")
                )

        print(
            f"{'configuration':<24} {'fresh import':>14} {'images/s':>10} {'re-import':>11} {'images/s':>10}"
        )
        medians = {}
        for label, runs in results.items():
            fresh = statistics.median(run["fresh_s"] for run in runs)
            again = statistics.median(run["again_s"] for run in runs)
            medians[label] = fresh
            print(
                f"{label:<24} {fresh:>12.1f} s {images / fresh:>10.0f} {again:>9.1f} s {images / again:>10.0f}"
            )
        summary = results[f"pipeline ({args.workers} threads)"][0]
        print(
            "first import:", json.dumps(summary["first"]["images"]), json.dumps(summary["first"]["products"])
        )
        print(
            "re-import:   ",
            json.dumps(summary["second"]["images"]),
            json.dumps(summary["second"]["products"]),
        )
        baseline, pipeline = medians.values()
        print(f"speed-up of the pipeline over the baseline (fresh import): {baseline / pipeline:.2f}x")


if __name__ == "__main__":
    main()
