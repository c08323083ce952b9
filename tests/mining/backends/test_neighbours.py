"""Nearest-neighbour search: exact blocked top-k against a brute-force reference, and FAISS recall against exact."""

import tracemalloc

import numpy as np
import pytest

from mining.backends import neighbours
from mining.backends.neighbours import faiss_index_build, faiss_index_search, top_k, top_k_exact, top_k_faiss


def normalized(rows: int, dims: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dims), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(rows: int, dims: int, clusters: int, seed: int = 0) -> np.ndarray:
    """A mixture of Gaussians around unit centres, normalized: neighbours mostly share a cluster, as with
    real image embeddings, which is what approximate indexes rely on (and uniform noise would not test)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.35, 0.7, clusters).astype(np.float32) / np.sqrt(dims)
    members = rng.integers(0, clusters, rows)
    vectors = centres[members] + spread[members, None] * rng.standard_normal((rows, dims), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def small_integers(rows: int, dims: int, seed: int = 0) -> np.ndarray:
    """Vectors whose inner products are exact in float32 whatever the summation order (multiples of 1/16),
    so any two ways of computing them agree bit for bit, and with many exactly tied scores."""
    return np.random.default_rng(seed).integers(-2, 3, (rows, dims)).astype(np.float32) / 4


def brute_force(
    queries: np.ndarray, corpus: np.ndarray, k: int, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The full score matrix, each row fully sorted by (-score, index)."""
    scores = queries @ corpus.T
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    index_grid = np.broadcast_to(np.arange(corpus.shape[0]), scores.shape)
    order = np.lexsort((index_grid, -scores), axis=-1)
    if exclude_self:
        order = order[:, : corpus.shape[0] - 1]
    order = order[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]))


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    return clustered(20_000, 64, clusters=2_000, seed=3)


@pytest.fixture(scope="module")
def exact_truth(embeddings: np.ndarray) -> np.ndarray:
    return top_k_exact(embeddings, embeddings, 10, exclude_self=True)[1]


# Exact search


def test_exact_matches_the_full_matrix_reference() -> None:
    corpus = normalized(500, 64, seed=1)
    queries = normalized(120, 64, seed=2)

    similarities, indices = top_k_exact(queries, corpus, 10)

    expected_similarities, expected_indices = brute_force(queries, corpus, 10)
    assert similarities.dtype == np.float32 and indices.dtype == np.int64
    assert similarities.shape == indices.shape == (120, 10)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(similarities, expected_similarities, rtol=0, atol=1e-6)
    assert np.all(np.diff(similarities, axis=1) <= 0)


def test_exact_breaks_ties_by_lower_index_including_at_the_kth_place() -> None:
    corpus = small_integers(400, 6, seed=4)  # 5**6 distinct vectors at most: plenty of equal scores
    queries = small_integers(50, 6, seed=5)

    similarities, indices = top_k_exact(queries, corpus, 25)

    expected_similarities, expected_indices = brute_force(queries, corpus, 25)
    ties_at_kth = np.sum((queries @ corpus.T) >= expected_similarities[:, -1:], axis=1) > 25
    assert ties_at_kth.sum() > 10, "the data should tie at the k-th place in many rows"
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(similarities, expected_similarities)


@pytest.mark.parametrize("block_rows", [1, 7, 300])
def test_exact_results_do_not_depend_on_the_block_size(block_rows: int) -> None:
    corpus = small_integers(300, 16, seed=6)

    similarities, indices = top_k_exact(corpus, corpus, 12, block_rows=block_rows, exclude_self=True)

    expected_similarities, expected_indices = brute_force(corpus, corpus, 12, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(similarities, expected_similarities)


def test_exact_exclude_self_never_returns_the_query_itself() -> None:
    corpus = normalized(200, 32, seed=7)
    corpus[1] = corpus[0]  # an exact duplicate: its best match is the other copy, not itself

    similarities, indices = top_k_exact(corpus, corpus, 5, block_rows=16, exclude_self=True)

    assert not np.any(indices == np.arange(200)[:, None])
    assert indices[0, 0] == 1 and indices[1, 0] == 0
    assert similarities[0, 0] == pytest.approx(1.0, abs=1e-6)
    expected_similarities, expected_indices = brute_force(corpus, corpus, 5, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_indices)


def test_exact_with_k_beyond_the_corpus_returns_everything_sorted() -> None:
    corpus = normalized(30, 8, seed=8)

    similarities, indices = top_k_exact(corpus, corpus, 100)
    self_similarities, self_indices = top_k_exact(corpus, corpus, 100, exclude_self=True)

    assert indices.shape == (30, 30)
    assert all(sorted(row) == list(range(30)) for row in indices.tolist())
    assert np.all(np.diff(similarities, axis=1) <= 0)
    assert self_indices.shape == (30, 29)
    assert all(sorted(row) == sorted(set(range(30)) - {i}) for i, row in enumerate(self_indices.tolist()))
    assert np.all(np.isfinite(self_similarities))


def test_exact_handles_empty_inputs() -> None:
    corpus = normalized(10, 4)

    no_queries = top_k_exact(np.empty((0, 4), dtype=np.float32), corpus, 3)
    no_corpus = top_k_exact(corpus, np.empty((0, 4), dtype=np.float32), 3)
    k_zero = top_k_exact(corpus, corpus, 0)
    single_self = top_k_exact(corpus[:1], corpus[:1], 3, exclude_self=True)

    assert [a.shape for a in no_queries] == [(0, 3), (0, 3)]
    assert [a.shape for a in no_corpus] == [(10, 0), (10, 0)]
    assert [a.shape for a in k_zero] == [(10, 0), (10, 0)]
    assert [a.shape for a in single_self] == [(1, 0), (1, 0)]


def test_exact_rejects_inconsistent_inputs() -> None:
    corpus = normalized(10, 4)
    with pytest.raises(ValueError, match="dims"):
        top_k_exact(normalized(3, 5), corpus, 2)
    with pytest.raises(ValueError, match="exclude_self"):
        top_k_exact(corpus[:3], corpus, 2, exclude_self=True)
    with pytest.raises(ValueError, match="k must be"):
        top_k_exact(corpus, corpus, -1)


def test_exact_memory_stays_bounded_by_the_block_not_the_square() -> None:
    n, block_rows = 20_000, 256
    corpus = normalized(n, 32, seed=9)
    queries = corpus[:5_000]  # enough that unblocked scores (400 MB) would be 5x over the bound below

    tracemalloc.start()  # numpy reports its array allocations to tracemalloc
    try:
        similarities, _ = top_k_exact(queries, corpus, 10, block_rows=block_rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert similarities.shape == (5_000, 10)
    # One block: scores (4 bytes), argpartition's indices (8) and a comparison mask (1) per score.
    assert peak < 16 * block_rows * n + 2**20
    assert peak < n * n * 4 / 15


# FAISS


def test_hnsw_recall_at_10_against_exact(embeddings: np.ndarray, exact_truth: np.ndarray) -> None:
    similarities, indices = top_k_faiss(embeddings, embeddings, 10, method="hnsw", exclude_self=True)

    assert indices.shape == (20_000, 10) and indices.dtype == np.int64
    assert not np.any(indices == np.arange(20_000)[:, None])
    assert np.all(np.diff(similarities, axis=1) <= 0)
    # Measured 0.9998 on this data (M=32, efSearch=128).
    assert recall(indices, exact_truth) >= 0.98


def test_ivf_recall_at_10_against_exact(embeddings: np.ndarray, exact_truth: np.ndarray) -> None:
    similarities, indices = top_k_faiss(embeddings, embeddings, 10, method="ivf", exclude_self=True, seed=1)

    assert not np.any(indices == np.arange(20_000)[:, None])
    # Measured ~0.97 on this data with the default nprobe=32 of 512 lists; nprobe=1 only sees one list.
    assert recall(indices, exact_truth) >= 0.93
    index = faiss_index_build(embeddings, method="ivf", seed=1)
    one_probe = faiss_index_search(index, embeddings[:2_000], 11, nprobe=1)[1][:, 1:]
    assert recall(one_probe, exact_truth[:2_000]) < recall(indices[:2_000], exact_truth[:2_000]) - 0.05


def test_faiss_similarities_are_the_cosines_of_the_returned_indices() -> None:
    corpus = clustered(2_000, 32, clusters=50, seed=10)
    queries = clustered(100, 32, clusters=50, seed=10)  # the same centres, so some near neighbours exist

    for method in ("hnsw", "ivf"):
        similarities, indices = top_k_faiss(queries, corpus, 5, method=method)
        expected = np.einsum("qd,qkd->qk", queries, corpus[indices])
        np.testing.assert_allclose(similarities, expected, atol=1e-5)


def test_faiss_marks_missing_results_with_minus_one_and_minus_infinity() -> None:
    # Two far-apart groups, two IVF lists, one probe: a query can only see its own group's 20 vectors.
    rng = np.random.default_rng(11)
    direction = np.zeros(8, dtype=np.float32)
    direction[0] = 1
    groups = np.concatenate(
        [direction + 0.05 * rng.standard_normal((20, 8)), -direction + 0.05 * rng.standard_normal((20, 8))]
    )
    corpus = (groups / np.linalg.norm(groups, axis=1, keepdims=True)).astype(np.float32)

    index = faiss_index_build(corpus, method="ivf", nlist=2)
    similarities, indices = faiss_index_search(index, corpus, 30, exclude_self=True, nprobe=1)

    assert indices.shape == (40, 30)
    assert np.all(indices[:, :19] >= 0) and np.all(indices[:, 19:] == -1)
    assert np.all(np.isfinite(similarities[:, :19])) and np.all(similarities[:, 19:] == -np.inf)
    assert all(set(row[:19]) == set(range(20)) - {i} for i, row in enumerate(indices[:20].tolist()))


def test_faiss_with_k_beyond_the_corpus_and_empty_inputs() -> None:
    corpus = clustered(60, 16, clusters=3, seed=12)

    similarities, indices = top_k_faiss(corpus, corpus, 100, method="hnsw", exclude_self=True)
    empty = top_k_faiss(np.empty((0, 16), dtype=np.float32), corpus, 5, method="hnsw")

    assert indices.shape == (60, 59)
    assert all(sorted(row) == sorted(set(range(60)) - {i}) for i, row in enumerate(indices.tolist()))
    assert [a.shape for a in empty] == [(0, 5), (0, 5)]


# Choosing the method


def test_auto_is_exact_up_to_exact_max_and_ivf_above(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = normalized(100, 8)
    calls: list[str] = []
    monkeypatch.setattr(neighbours, "top_k_exact", lambda *a, **kw: calls.append("exact"))
    monkeypatch.setattr(neighbours, "top_k_faiss", lambda *a, **kw: calls.append(kw["method"]))

    top_k(corpus, corpus, 5, exact_max=100)
    top_k(corpus, corpus, 5, exact_max=99)
    top_k(corpus, corpus, 5, exact_max=10, method="exact")
    top_k(corpus, corpus, 5, method="hnsw")

    assert calls == ["exact", "ivf", "exact", "hnsw"]


def test_top_k_gives_the_exact_answer_below_exact_max() -> None:
    corpus = normalized(300, 16, seed=13)
    np.testing.assert_array_equal(
        top_k(corpus, corpus, 7, exclude_self=True)[1], brute_force(corpus, corpus, 7, exclude_self=True)[1]
    )


def test_unknown_method_is_refused_with_the_allowed_names() -> None:
    corpus = normalized(10, 4)
    with pytest.raises(ValueError, match="auto, exact, hnsw, ivf"):
        top_k(corpus, corpus, 3, method="annoy")
    with pytest.raises(ValueError, match="hnsw, ivf"):
        top_k_faiss(corpus, corpus, 3, method="exact")
