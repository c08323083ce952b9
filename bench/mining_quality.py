"""Quality of the mining candidates on the two demo catalogs, for each embedder: recall against ground truth.

    python bench/mining_quality.py [--instances 60] [--seed 7] [--embedders descriptor,open_clip:ViT-B-32:random]

In a scratch SQLite database (a temporary folder, deleted afterwards) it imports:

- the generated demo catalog (``make_demo_catalog``): its ground truth names the duplicate listings (two
  products, one object) and the twins (two objects that differ in one detail: the hardest negatives);
- the real DreamBooth subset (20 subjects, 105 photos), with every subject of 4 or more photos listed twice
  (its photos split between two products), so that duplicate listings of real photos exist; the subjects'
  classes (dog, dog2, dog3... are all "dog") give natural hard negatives: same-class subject pairs.

Then, per embedder, it embeds the photos, runs the duplicate search (appendix B.2) and the hard-negative
shortlist (B.3) exactly as the pipeline does (without creating review tasks) and prints:

- duplicates: the share of true duplicate product pairs among the candidate pairs, and how many candidate
  pairs were proposed (recall is only worth something next to the number of pairs annotators must inspect);
- hard negatives: the share of twin pairs (generated) or same-class pairs (DreamBooth) that were shortlisted;
- next to each, the recall a random choice of as many pairs would get: the baseline to beat.

open_clip here has random weights (nothing can be downloaded): its figures show the plumbing, not CLIP's
quality, which needs real weights (``--embedders open_clip:ViT-B-32:laion2b_s34b_b79k`` where they are cached).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DREAMBOOTH = ROOT / "annotation" / "demo_data" / "dreambooth_subset"
SPLIT_AT_LEAST = 4  # DreamBooth subjects with this many photos are listed twice


def django_setup(data_dir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    os.environ["TWIN_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["TWIN_MINING_ALLOW_RANDOM_WEIGHTS"] = "1"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # open_clip logs every model it builds at INFO


def dreambooth_manifest(output: Path) -> tuple[Path, list[tuple[str, str]], dict[str, str]]:
    """A manifest of the DreamBooth subset with the larger subjects split into two listings; returns it, the
    duplicate listing pairs (product ids) and each product's subject class."""
    classes = {}
    for line in (DREAMBOOTH / "classes.csv").read_text().splitlines()[1:]:
        subject, cls, *_ = [part.strip() for part in line.split(",")]
        classes[subject] = cls
    lines, duplicates, class_of = [], [], {}
    for subject in sorted(classes):
        photos = sorted(
            p.relative_to(DREAMBOOTH).as_posix() for p in (DREAMBOOTH / subject).iterdir() if p.is_file()
        )
        groups = [photos]
        if len(photos) >= SPLIT_AT_LEAST:
            groups = [photos[0::2], photos[1::2]]
            duplicates.append((f"{subject}-a", f"{subject}-b"))
        for number, group in enumerate(groups):
            product_id = f"{subject}-{'ab'[number]}" if len(groups) == 2 else subject
            class_of[product_id] = classes[subject]
            lines.append(
                {"product_id": product_id, "title": subject, "category": classes[subject], "images": group}
            )
    path = output / "dreambooth-split.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, duplicates, class_of


def random_pair_recall(chosen: int, possible: int) -> float:
    return chosen / possible if possible else 0.0


def evaluate(source: str, embedder: str, truth: dict) -> dict:
    from annotation.models import Product
    from mining.services.duplicates import duplicate_candidates_find
    from mining.services.embeddings import embedded_images, embedder_spec_for
    from mining.services.hard_negatives import hard_negative_shortlist
    from mining.services.runs import mining_job_run_inline
    from mining.services.scope import usable_images
    from mining.services.stages import mining_job_create

    started = time.perf_counter()
    job = mining_job_run_inline(
        job=mining_job_create(stage="embed", parameters={"sources": [source], "embedder": embedder})
    )
    if job.status != "succeeded":
        raise SystemExit(f"embedding failed: {job.error}")
    embed_seconds = time.perf_counter() - started
    spec = embedder_spec_for(embedder)
    embedded = embedded_images(embedder_key=spec.key, images=usable_images(sources=[source]))
    external = dict(Product.objects.filter(source=source).values_list("pk", "external_id"))
    instance_external = {
        instance: external[product]
        for instance, product in Product.objects.filter(source=source).values_list("instance_id", "pk")
    }

    search = duplicate_candidates_find(embedded)
    found_pairs = {frozenset((external[c.product_a_id], external[c.product_b_id])) for c in search.candidates}
    true_pairs = {frozenset(pair) for pair in truth["duplicates"]}
    products = len(external)
    all_pairs = products * (products - 1) // 2

    shortlist = hard_negative_shortlist(embedded, seed=0)
    shortlisted = {
        frozenset(
            (
                truth["object_of"][instance_external[c.instance_id]],
                truth["object_of"][instance_external[c.candidate_instance_id]],
            )
        )
        for c in shortlist.candidates
    }
    objects = len(set(truth["object_of"].values()))
    hard_pairs = {frozenset(pair) for pair in truth["hard_pairs"]}
    return {
        "embedder": spec.key,
        "images": len(embedded),
        "embed_seconds": embed_seconds,
        "duplicate_recall": len(true_pairs & found_pairs) / len(true_pairs) if true_pairs else float("nan"),
        "duplicate_pairs_found": f"{len(true_pairs & found_pairs)}/{len(true_pairs)}",
        "candidate_pairs": len(search.candidates),
        "duplicate_random": random_pair_recall(len(search.candidates), all_pairs),
        "hard_recall": len(hard_pairs & shortlisted) / len(hard_pairs) if hard_pairs else float("nan"),
        "hard_pairs_found": f"{len(hard_pairs & shortlisted)}/{len(hard_pairs)}",
        "shortlisted_pairs": len(shortlist.candidates),
        "hard_random": random_pair_recall(len(shortlist.candidates), objects * (objects - 1) // 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--embedders", default="descriptor,open_clip:ViT-B-32:random")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="twin-mining-quality-"))
    try:
        django_setup(scratch)
        from annotation.demo_catalog.generator import demo_catalog_make
        from annotation.services.catalog_import import catalog_import

        generated = demo_catalog_make(
            output_dir=scratch / "generated", instances=args.instances, seed=args.seed
        )
        catalog_import(
            manifest_path=generated.manifest_path, images_root=generated.images_root, source="generated"
        )
        ground = json.loads(Path(generated.ground_truth_path).read_text())
        generated_truth = {
            "duplicates": [tuple(pair) for pair in ground["duplicate_listings"]],
            # One object per ground-truth instance: two listings of one object are the same object.
            "object_of": {product: known["instance"] for product, known in ground["products"].items()},
            "hard_pairs": [(twin["instance_a"], twin["instance_b"]) for twin in ground["twin_pairs"]],
        }
        manifest, duplicates, class_of = dreambooth_manifest(scratch)
        catalog_import(manifest_path=manifest, images_root=DREAMBOOTH, source="dreambooth")
        subject_of = {
            product: product.rsplit("-", 1)[0] if product.endswith(("-a", "-b")) else product
            for product in class_of
        }
        subjects_by_class = defaultdict(set)
        for product, subject in subject_of.items():
            subjects_by_class[class_of[product]].add(subject)
        dreambooth_truth = {
            "duplicates": duplicates,
            "object_of": subject_of,
            "hard_pairs": [
                (a, b) for subjects in subjects_by_class.values() for a in subjects for b in subjects if a < b
            ],
        }

        print(
            f"Generated catalog: {args.instances} instances (seed {args.seed}), {len(generated_truth['duplicates'])} "
            f"duplicate listings, {len(generated_truth['hard_pairs'])} twin pairs"
        )
        print(
            f"DreamBooth subset: {len(class_of)} products (subjects with >= {SPLIT_AT_LEAST} photos listed twice: "
            f"{len(duplicates)} duplicate listings), {len(dreambooth_truth['hard_pairs'])} same-class subject pairs\n"
        )
        header = (
            f"{'catalog':11} {'embedder':38} {'images':>6} {'embed s':>7} | {'dup recall':>10} {'found':>7} "
            f"{'cand.':>6} {'random':>6} | {'hard recall':>11} {'found':>7} {'short.':>6} {'random':>6}"
        )
        print(header)
        print("-" * len(header))
        for embedder in [e.strip() for e in args.embedders.split(",") if e.strip()]:
            for name, source, truth in (
                ("generated", "generated", generated_truth),
                ("dreambooth", "dreambooth", dreambooth_truth),
            ):
                row = evaluate(source, embedder, truth)
                print(
                    f"{name:11} {row['embedder']:38} {row['images']:6d} {row['embed_seconds']:7.1f} | "
                    f"{row['duplicate_recall']:10.2f} {row['duplicate_pairs_found']:>7} {row['candidate_pairs']:6d} "
                    f"{row['duplicate_random']:6.2f} | {row['hard_recall']:11.2f} {row['hard_pairs_found']:>7} "
                    f"{row['shortlisted_pairs']:6d} {row['hard_random']:6.2f}"
                )
        print(
            "\nrandom: the recall of as many pairs drawn at random. open_clip with random weights measures the "
            "plumbing only; real CLIP quality needs real weights."
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
