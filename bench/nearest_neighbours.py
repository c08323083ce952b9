"""Benchmark: nearest-neighbour search of the mining stage (mining/backends/neighbours.py).

1. Exact self-search (every vector against all the others, itself excluded) over 22,157 vectors of 512 dims,
   the TWIN paper's image count: seconds (median of --repeats runs) and peak memory (tracemalloc peak of the
   search, beside the size of the n x n float32 score matrix it avoids), for two block sizes.
2. FAISS against exact at --n vectors of 512 dims (1,000,000; --quick: 100,000): build time, search time of
   --queries vectors drawn from the corpus, exact (blocked) time of the same queries, speed-up per query and
   recall@10 against exact. The query itself is left out of both result lists, as in self-search.

Both indexes are built on the full --n corpus: on two cores, at a million vectors, the IVF build took ~2.3
minutes and the HNSW build (M=32, efConstruction=80) ~4.5 minutes, so HNSW needs no smaller stand-in
(--hnsw-n gives it one anyway; the queries are then drawn from the part both corpora share). A default run
takes about 12 minutes and peaks at ~6 GB of memory (the corpus and each index's copy of it).

The data is synthetic but clustered like image embeddings: a mixture of --clusters Gaussians (5,000, about
200 vectors each at a million), their centres grouped around 100 directions so that sibling clusters
overlap, with a spread drawn per cluster, L2-normalized. Seeded, so runs are comparable.

    python bench/nearest_neighbours.py --quick
    python bench/nearest_neighbours.py
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TWIN_IMAGES = 22_157
K = 10


def clustered_embeddings(
    n: int, dims: int, clusters: int, seed: int, groups: int = 100, chunk: int = 100_000
) -> np.ndarray:
    """n normalized float32 vectors from a two-level mixture of Gaussians, made in chunks so that a million
    vectors cost their 2 GB and not several float64 temporaries of that size.

    ``clusters`` centres (products) are drawn around ``groups`` unit directions (categories), close enough
    that neighbouring clusters overlap (the twins of the TWIN data set); uniform noise would have no
    neighbour structure for the indexes to find, and well separated clusters would make them look perfect.
    """
    rng = np.random.default_rng(seed)
    categories = rng.standard_normal((groups, dims), dtype=np.float32)
    categories /= np.linalg.norm(categories, axis=1, keepdims=True)
    offsets = rng.standard_normal((clusters, dims), dtype=np.float32) * np.float32(0.4 / np.sqrt(dims))
    centres = categories[rng.integers(0, groups, clusters)] + offsets
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Noise of norm 0.5 to 1: members sit at cosine ~0.8 from their centre, ~0.65 from each other, ~0.55
    # from the members of a sibling cluster.
    spread = rng.uniform(0.5, 1.0, clusters).astype(np.float32) / np.float32(np.sqrt(dims))
    vectors = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        members = rng.integers(0, clusters, stop - start)
        block = rng.standard_normal((stop - start, dims), dtype=np.float32)
        block *= spread[members, None]
        block += centres[members]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start:stop] = block
    return vectors


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def peak_bytes(function: Callable[[], object]) -> int:
    """tracemalloc's peak during the call: numpy reports its array buffers to it."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def without_self(indices: np.ndarray, query_ids: np.ndarray, k: int) -> np.ndarray:
    """The first k results of each row other than the query's own id (or all but the last if it is absent)."""
    drop = indices == query_ids[:, None]
    drop[~drop.any(axis=1), -1] = True
    return indices[~drop].reshape(len(indices), -1)[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a[a >= 0], b)) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


def megabytes(size: float) -> str:
    return f"{size / 2**20:,.0f} MB"


def exact_self_search(args: argparse.Namespace) -> None:
    from mining.backends.neighbours import top_k_exact

    n = TWIN_IMAGES
    started = time.perf_counter()
    clusters = n // 5  # products of ~5 images
    corpus = clustered_embeddings(n, args.dims, clusters=clusters, seed=args.seed)
    print(
        f"\n1. Exact self-search: {n:,} x {args.dims} float32 (clustered, {clusters:,} clusters in 100 groups), "
        f"generated in {time.perf_counter() - started:.1f} s; median of {args.repeats} run(s)"
    )
    print(f"   an n x n float32 score matrix would take {megabytes(n * n * 4)}")
    print(
        f"   {'k':>3} {'block_rows':>10} {'seconds':>9} {'queries/s':>10} {'peak memory':>12} {'of n x n':>9}"
    )
    results = {}
    for k, block_rows in ((10, 256), (10, 2048), (20, 2048)):

        def search(k: int = k, block_rows: int = block_rows) -> tuple[np.ndarray, np.ndarray]:
            return top_k_exact(corpus, corpus, k, block_rows=block_rows, exclude_self=True)

        seconds = statistics.median(timed(search)[0] for _ in range(args.repeats))
        peak = peak_bytes(search)
        results[(k, block_rows)] = search()[1]
        print(
            f"   {k:>3} {block_rows:>10,} {seconds:>9.2f} {n / seconds:>10,.0f} {megabytes(peak):>12} "
            f"{peak / (n * n * 4):>8.1%}"
        )
    same = np.array_equal(results[(10, 256)], results[(10, 2048)])
    print(f"   block sizes 256 and 2,048 give identical neighbours: {same}")


def faiss_against_exact(args: argparse.Namespace) -> None:
    from mining.backends.neighbours import faiss_index_build, faiss_index_search, top_k_exact

    hnsw_n = min(args.hnsw_n, args.n)
    started = time.perf_counter()
    corpus = clustered_embeddings(args.n, args.dims, args.clusters, seed=args.seed)
    print(
        f"\n2. FAISS against exact: {args.n:,} x {args.dims} float32 ({megabytes(corpus.nbytes)}; clustered, "
        f"{args.clusters:,} clusters in 100 groups), generated in {time.perf_counter() - started:.1f} s"
    )
    # The same queries for every corpus size: drawn from the part that the HNSW corpus shares.
    query_ids = np.sort(np.random.default_rng(args.seed + 1).choice(hnsw_n, size=args.queries, replace=False))
    queries = corpus[query_ids]
    print(
        f"   {args.queries:,} queries drawn from the corpus, k={K}, the query itself left out; "
        f"faiss threads: {_faiss_threads()}"
    )

    exact: dict[int, tuple[float, np.ndarray]] = {}
    for size in sorted({args.n, hnsw_n}):
        seconds, (_, indices) = timed(top_k_exact, queries, corpus[:size], K + 1)
        exact[size] = (seconds, without_self(indices, query_ids, K))

    print(
        f"   {'method':<6} {'corpus':>10} {'build s':>8} {'setting':>13} {'search s':>9} {'ms/query':>9} "
        f"{'exact ms/q':>11} {'speed-up':>9} {'recall@10':>10}"
    )
    runs = [("ivf", args.n, [("nprobe", 8), ("nprobe", 32), ("nprobe", 64)])]
    runs.append(("hnsw", hnsw_n, [("efSearch", 64), ("efSearch", 128), ("efSearch", 256)]))
    for method, size, settings in runs:
        build_s, index = timed(faiss_index_build, corpus[:size], method=method)
        exact_s, truth = exact[size]
        for number, (name, value) in enumerate(settings):
            option = {"nprobe": value} if name == "nprobe" else {"ef_search": value}
            search_s, (_, indices) = timed(faiss_index_search, index, queries, K + 1, **option)
            found = without_self(indices, query_ids, K)
            build = f"{build_s:>8.1f}" if number == 0 else f"{'':>8}"
            label = f"{name}={value}"
            print(
                f"   {method:<6} {size:>10,} {build} {label:>13} {search_s:>9.2f} "
                f"{1000 * search_s / args.queries:>9.3f} {1000 * exact_s / args.queries:>11.2f} "
                f"{exact_s / search_s:>8.0f}x {recall(found, truth):>10.4f}"
            )
        del index
    print(
        "   default settings: nprobe=32 (IVF, ~4 sqrt(n) lists), efSearch=128 (HNSW, M=32, efConstruction=80)"
    )


def _faiss_threads() -> int:
    import faiss

    return faiss.omp_get_max_threads()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="--n 100,000 and 1 repeat")
    parser.add_argument("--n", type=int, default=None, help="corpus of part 2 (1,000,000; --quick: 100,000)")
    parser.add_argument("--hnsw-n", type=int, default=None, help="corpus of HNSW in part 2 (--n)")
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=None, help="runs of part 1 (3; --quick: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    args = parser.parse_args()
    args.n = args.n or (100_000 if args.quick else 1_000_000)
    args.hnsw_n = args.hnsw_n or args.n
    args.repeats = args.repeats or (1 if args.quick else 3)

    sys.path.insert(0, str(ROOT))
    print(f"nearest-neighbour search benchmark on {os.cpu_count()} CPU cores, numpy {np.__version__}")
    if args.part in ("1", "all"):
        exact_self_search(args)
    if args.part in ("2", "all"):
        faiss_against_exact(args)


if __name__ == "__main__":
    main()
