"""Nearest-neighbour search over L2-normalized embeddings: exact blocked products and FAISS (HNSW, IVF).

Conventions shared by every function here:

- Vectors are float32 and L2-normalized, so the inner product is the cosine similarity. Other dtypes are
  converted; values are expected to be finite.
- Results are ``(similarities, indices)``: float32 and int64 arrays of shape ``[len(queries), k']``, each row
  sorted by decreasing similarity, ties broken by the lower corpus index.
- ``k' = min(k, len(corpus))``, or ``min(k, len(corpus) - 1)`` with ``exclude_self``: asking for more
  neighbours than exist is not an error, the result is simply narrower. Empty inputs give empty results.
- ``exclude_self=True`` is the self-search of duplicate and hard-negative mining: ``queries`` are the corpus
  itself (row i of queries is row i of corpus) and row i never returns index i.
- Approximate search may find fewer than ``k'`` neighbours for a row. The missing slots are at the end of
  the row, with index ``-1`` and similarity ``-inf``; exact search never has missing slots.

faiss is imported inside the functions that use it, so importing this module costs the web process nothing.
"""

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

METHODS = ("auto", "exact", "hnsw", "ivf")
FAISS_METHODS = ("hnsw", "ivf")

# One block's scratch (scores, argpartition's int64 indices, a comparison mask) takes about 16 bytes per
# score; block_rows is lowered so that it stays under this, whatever the corpus size.
_BLOCK_SCRATCH_BYTES = 1 << 30
_SCRATCH_BYTES_PER_SCORE = 16

# HNSW: M=32 with efConstruction=80 and efSearch=128 keeps recall@10 above ~0.95 on clustered 64 to 512
# dimension embeddings; the faiss defaults (40 and 16) lose a lot of recall at k=10.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# IVF: ~4 sqrt(n) lists, and enough probes that a query's neighbours in nearby lists are still found.
IVF_NPROBE = 32
# faiss k-means wants at least 39 training points per list; many more add build time (minutes at a million
# vectors) for little recall.
_IVF_MIN_POINTS_PER_LIST = 39
_IVF_TRAIN_POINTS_PER_LIST = 40


def _as_matrix(name: str, array: np.ndarray) -> np.ndarray:
    """C-contiguous float32 2-D view of the input (a copy only when needed: faiss and BLAS want this)."""
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [rows, dims], got shape {matrix.shape}")
    return matrix


def _checked(
    queries: np.ndarray, corpus: np.ndarray, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated inputs and the clipped k' (see the module docstring)."""
    queries = _as_matrix("queries", queries)
    corpus = _as_matrix("corpus", corpus)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dims but the corpus has {corpus.shape[1]}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if exclude_self and queries.shape[0] != corpus.shape[0]:
        raise ValueError(
            f"exclude_self needs queries to be the corpus itself, got {queries.shape[0]} queries "
            f"for a corpus of {corpus.shape[0]}"
        )
    available = corpus.shape[0] - 1 if exclude_self else corpus.shape[0]
    return queries, corpus, max(0, min(k, available))


def _empty(rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((rows, k), dtype=np.float32), np.empty((rows, k), dtype=np.int64)


def _sort_rows(similarities: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row by decreasing similarity, then increasing index, so equal scores come out the same way always."""
    order = np.lexsort((indices, -similarities), axis=-1)
    return np.take_along_axis(similarities, order, axis=1), np.take_along_axis(indices, order, axis=1)


def top_k_exact(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    *,
    block_rows: int = 2048,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k by blocked matrix products, so memory stays O(block_rows * n), never n * n.

    The n x n score matrix of a 22,157-image self-search would take 2 GB, and 4 TB at a million images; here
    only ``block_rows`` query rows are scored at a time. ``block_rows`` is lowered further when one block's
    scratch (about 16 bytes per score) would exceed 1 GiB. Ties are broken by the lower index, including at
    the k-th place, so results do not depend on the block size. Conventions: see the module docstring.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    queries, corpus, k = _checked(queries, corpus, k, exclude_self)
    n_queries, n = queries.shape[0], corpus.shape[0]
    similarities, indices = _empty(n_queries, k)
    if n_queries == 0 or k == 0:
        return similarities, indices
    block_rows = max(1, min(block_rows, _BLOCK_SCRATCH_BYTES // (n * _SCRATCH_BYTES_PER_SCORE)))

    for start in range(0, n_queries, block_rows):
        stop = min(start + block_rows, n_queries)
        rows = np.arange(stop - start)
        scores = queries[start:stop] @ corpus.T
        if exclude_self:
            scores[rows, rows + start] = -np.inf
        # The k largest of each row, unordered; only those k are sorted afterwards.
        top = np.argpartition(scores, n - k, axis=1)[:, n - k :]
        top_scores = np.take_along_axis(scores, top, axis=1)
        # argpartition picks arbitrarily among scores equal to the k-th one; rows with such a tie take the
        # lowest indices among the tied ones instead, so the result is deterministic.
        kth = top_scores.min(axis=1)
        tied_rows = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
        for row in tied_rows:
            candidates = np.flatnonzero(scores[row] >= kth[row])
            top[row] = candidates[np.lexsort((candidates, -scores[row, candidates]))[:k]]
            top_scores[row] = scores[row, top[row]]
        similarities[start:stop], indices[start:stop] = _sort_rows(top_scores, top)
        del scores, top
    return similarities, indices


def _faiss() -> Any:
    """The faiss module, or an error that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "Approximate nearest-neighbour search needs faiss: pip install faiss-cpu "
            "(it is in requirements-ml.txt)"
        ) from exc
    return faiss


@contextlib.contextmanager
def _faiss_threads(faiss: Any, threads: int | None) -> Iterator[None]:
    """faiss's OpenMP thread count is process-wide: set it only when asked, and put it back afterwards."""
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _ivf_list_count(n: int) -> int:
    """~4 sqrt(n) lists, but never fewer than 39 training points per list (faiss k-means warns below that)."""
    return max(1, min(round(4 * math.sqrt(n)), n // _IVF_MIN_POINTS_PER_LIST))


def faiss_index_build(
    corpus: np.ndarray,
    *,
    method: str = "hnsw",
    seed: int = 0,
    hnsw_m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    nlist: int | None = None,
    threads: int | None = None,
) -> Any:
    """An inner-product FAISS index over the corpus (separate from the search so that both can be timed).

    ``method``: "hnsw" (``IndexHNSWFlat``, no training, the better recall per query time) or "ivf"
    (``IndexIVFFlat`` with ``nlist`` lists, ~4 sqrt(n) by default, trained by k-means on a sample drawn with
    ``seed``; much faster to build at millions of vectors). IVF builds are reproducible for a given seed;
    HNSW builds on several threads may differ slightly from run to run.
    """
    if method not in FAISS_METHODS:
        raise ValueError(f"unknown FAISS method {method!r}; allowed: {', '.join(FAISS_METHODS)}")
    faiss = _faiss()
    corpus = _as_matrix("corpus", corpus)
    n, dims = corpus.shape
    with _faiss_threads(faiss, threads):
        if method == "hnsw":
            index = faiss.IndexHNSWFlat(dims, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = HNSW_EF_SEARCH
            if n:
                index.add(corpus)
            return index

        lists = _ivf_list_count(n) if nlist is None else nlist
        quantizer = faiss.IndexFlatIP(dims)
        index = faiss.IndexIVFFlat(quantizer, dims, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.nprobe = min(IVF_NPROBE, lists)
        if n:
            sample_size = min(n, lists * _IVF_TRAIN_POINTS_PER_LIST)
            sample = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
            index.train(corpus[sample])
            index.add(corpus)
        return index


def faiss_index_search(
    index: Any,
    queries: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    ef_search: int | None = None,
    nprobe: int | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of an index from :func:`faiss_index_build`, with this module's conventions (see its docstring).

    ``ef_search`` (HNSW, default 128, raised to k + 1 if lower) and ``nprobe`` (IVF, default 32) trade speed
    for recall. With ``exclude_self`` it asks for k + 1 and drops each query's own index, or the last result
    when the own index was not found (approximate search can miss even that).
    """
    faiss = _faiss()
    queries = _as_matrix("queries", queries)
    n = index.ntotal
    if queries.shape[1] != index.d:
        raise ValueError(f"queries have {queries.shape[1]} dims but the index has {index.d}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if exclude_self and queries.shape[0] != n:
        raise ValueError(
            f"exclude_self needs queries to be the indexed corpus, got {queries.shape[0]} queries for {n}"
        )
    k = max(0, min(k, n - 1 if exclude_self else n))
    if queries.shape[0] == 0 or k == 0:
        return _empty(queries.shape[0], k)
    asked = k + 1 if exclude_self else k

    params = None
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=max(ef_search or HNSW_EF_SEARCH, asked + 1))
    elif isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(nprobe=min(nprobe or index.nprobe, index.nlist))
    with _faiss_threads(faiss, threads):
        similarities, indices = index.search(queries, asked, params=params)

    if exclude_self:
        drop = indices == np.arange(queries.shape[0])[:, None]
        drop[~drop.any(axis=1), -1] = True
        keep = ~drop
        similarities = similarities[keep].reshape(-1, k)
        indices = indices[keep].reshape(-1, k)
    similarities = similarities.astype(np.float32, copy=False)
    indices = indices.astype(np.int64, copy=False)
    # faiss pads missing results with -1 and the lowest float; -inf makes them sort last and reads as such.
    similarities[indices < 0] = -np.inf
    return _sort_rows(similarities, indices)


def top_k_faiss(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    *,
    method: str = "hnsw",
    exclude_self: bool = False,
    seed: int = 0,
    ef_search: int | None = None,
    nprobe: int | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine top-k through a FAISS inner-product index built on the spot, for corpora too large
    for exact search. Rows may have missing results (index -1, similarity -inf); see the module docstring.
    """
    if method not in FAISS_METHODS:
        raise ValueError(f"unknown FAISS method {method!r}; allowed: {', '.join(FAISS_METHODS)}")
    queries, corpus, _ = _checked(queries, corpus, k, exclude_self)
    index = faiss_index_build(corpus, method=method, seed=seed, threads=threads)
    return faiss_index_search(
        index, queries, k, exclude_self=exclude_self, ef_search=ef_search, nprobe=nprobe, threads=threads
    )


def top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    *,
    exact_max: int = 200_000,
    method: str = "auto",
    exclude_self: bool = False,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k, exact while that is affordable: "auto" searches exactly up to ``exact_max`` corpus
    vectors and with FAISS IVF above; "exact", "hnsw" and "ivf" force one. Conventions: module docstring.

    IVF rather than HNSW for "auto": on 1,000,000 clustered 512-dim vectors (bench/nearest_neighbours.py) IVF
    with nprobe 32 had recall@10 1.000 at 13x the speed of exact search and built in half HNSW's time, where
    HNSW with efSearch 128 had 0.937.
    """
    if method not in METHODS:
        raise ValueError(f"unknown nearest-neighbour method {method!r}; allowed: {', '.join(METHODS)}")
    if method == "auto":
        method = "exact" if len(corpus) <= exact_max else "ivf"
    if method == "exact":
        return top_k_exact(queries, corpus, k, exclude_self=exclude_self)
    return top_k_faiss(
        queries, corpus, k, method=method, exclude_self=exclude_self, seed=seed, threads=threads
    )
