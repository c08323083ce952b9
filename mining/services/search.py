"""Nearest neighbours among a run's embedded images, with the method the settings choose for its size."""

import numpy as np
from django.conf import settings

from mining.backends.neighbours import top_k

# Deeper lists cost memory in proportion (rows x depth); beyond this the shortlists are taken from the
# nearest 512 images of each image, which covers products and instances of up to a few dozen images exactly.
DEPTH_MAX_EXACT = 512
DEPTH_MAX_APPROXIMATE = 128


def neighbours_of_all(
    vectors: np.ndarray, *, depth: int, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """For every row, its ``depth`` most cosine-similar other rows: (similarities, indices), most similar
    first; index -1 marks a missing result (approximate search may find fewer)."""
    n = len(vectors)
    exact = method == "exact" or (method == "auto" and n <= settings.MINING_EXACT_SEARCH_MAX)
    depth = max(0, min(depth, n - 1, DEPTH_MAX_EXACT if exact else DEPTH_MAX_APPROXIMATE))
    if depth == 0:
        return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
    return top_k(
        vectors, vectors, depth, exact_max=settings.MINING_EXACT_SEARCH_MAX, method=method, exclude_self=True
    )
