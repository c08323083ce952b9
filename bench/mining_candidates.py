"""Benchmark: the duplicate search (B.2) and the hard-negative shortlist (B.3) at the TWIN paper's scale.

    python bench/mining_candidates.py [--images 22157] [--instances 1836] [--dim 512] [--method auto]

Synthetic vectors stand in for CLIP embeddings: one centre per instance plus noise, each instance listed as two
products (so every product has other products of its own instance, which the duplicate search must look past).
Prints the seconds of each stage's search-and-rank (no database: the review tasks are not created), the
numbers of candidates, and the process's peak memory.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=22_157)
    parser.add_argument("--instances", type=int, default=1_836)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--method", default="auto", choices=["auto", "exact", "ivf", "hnsw"])
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from mining.services.duplicates import duplicate_candidates_find
    from mining.services.embeddings import EmbeddedImages
    from mining.services.hard_negatives import hard_negative_shortlist

    rng = np.random.default_rng(0)
    per_instance = args.images / args.instances
    sizes = rng.integers(max(1, int(per_instance / 2)), int(per_instance * 1.5) + 1, args.instances)
    instances = np.repeat(np.arange(args.instances), sizes)[: args.images]
    centres = rng.normal(size=(args.instances, args.dim)).astype(np.float32)
    vectors = centres[instances] + 0.8 * rng.normal(size=(len(instances), args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedded = EmbeddedImages(
        image_ids=np.arange(len(instances)),
        product_ids=instances * 2 + np.arange(len(instances)) % 2,
        instance_ids=instances,
        category_ids=instances % 36,
        vectors=vectors,
    )
    print(f"{len(instances):,} vectors of {args.dim} dims, {args.instances:,} instances, 2 products each")

    started = time.perf_counter()
    duplicates = duplicate_candidates_find(embedded, method=args.method)
    print(
        f"duplicates:     {time.perf_counter() - started:6.1f} s, {len(duplicates.candidates):,} candidate "
        f"product pairs from {duplicates.flagged_pairs:,} flagged image pairs"
    )
    started = time.perf_counter()
    shortlist = hard_negative_shortlist(embedded, seed=0, method=args.method)
    print(
        f"hard negatives: {time.perf_counter() - started:6.1f} s, {len(shortlist.candidates):,} shortlisted "
        f"instance pairs, {shortlist.short} instances short of their k"
    )
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB RSS")


if __name__ == "__main__":
    main()
