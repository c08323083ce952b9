"""A weightless image descriptor: colour and layout, for catalogs where no CLIP weights can be loaded.

It is no substitute for CLIP: it sees colours and coarse shapes, not what an object is. It is what the demo and
the tests run on machines without model weights, and a cheap first pass where colour is what tells objects
apart (product photos on plain backgrounds).

Three parts, each unit-normalized, then weighted and concatenated (the result is unit-normalized):

- colour: the square roots of a coarse colour histogram (6 levels per channel), each pixel weighted by how far
  its colour is from the background's (the median of the border), so the object counts more than the backdrop;
  dot products of these are Bhattacharyya coefficients;
- layout: the object's mean colour in a 4x4 grid of the background-weighted thumbnail, averaged with its mirror
  image, so a photo taken from the other side still matches;
- shape: a histogram of gradient orientations (8 unsigned bins) in a 2x2 grid, folded over the vertical axis
  for the same reason.
"""

import numpy as np
from PIL import Image as PILImage

DESCRIPTOR_NAME = "colour-layout-v1"
_THUMB = 32
# Colour histogram: 6 levels per channel (216 bins) of a 32x32 thumbnail. Finer bins split the same colour under
# different light; coarser ones merge the parts of an object.
_HIST_LEVELS = 6
COLOUR_HISTOGRAM_DIM = _HIST_LEVELS**3
_GRID = 4
_ORIENTATIONS = 8
# Weights of the parts in the concatenation: colour carries most of what tells demo objects apart; layout and
# shape split look-alikes of the same colours.
_WEIGHTS = {"colour": 1.0, "layout": 0.6, "shape": 0.5}
DESCRIPTOR_DIM = COLOUR_HISTOGRAM_DIM + _GRID * _GRID * 3 + 4 * _ORIENTATIONS


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _thumbnail(image: PILImage.Image) -> np.ndarray:
    image.draft("RGB", (_THUMB * 2, _THUMB * 2))  # JPEG decodes at 1/2..1/8 scale: most of the cost saved
    return np.asarray(
        image.convert("RGB").resize((_THUMB, _THUMB), PILImage.Resampling.BILINEAR), dtype=np.float64
    )


def _object_weights(thumb: np.ndarray) -> np.ndarray:
    """Per pixel, how far its colour is from the background's (the median of the border); + 1 so a blank image
    still counts."""
    border = np.concatenate([thumb[0], thumb[-1], thumb[:, 0], thumb[:, -1]])
    return np.linalg.norm(thumb - np.median(border, axis=0), axis=2) + 1.0


def colour_histogram(image: PILImage.Image) -> np.ndarray:
    """The colour part alone: a unit vector whose dot products are Bhattacharyya coefficients."""
    thumb = _thumbnail(image)
    return _colour(thumb, _object_weights(thumb))


def _colour(thumb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    levels = thumb.reshape(-1, 3).astype(np.int64) * _HIST_LEVELS // 256
    bins = (levels[:, 0] * _HIST_LEVELS + levels[:, 1]) * _HIST_LEVELS + levels[:, 2]
    histogram = np.bincount(bins, weights=weights.ravel(), minlength=_HIST_LEVELS**3)
    return _unit(np.sqrt(histogram / histogram.sum()))


def _layout(thumb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    cell = _THUMB // _GRID
    weighted = (thumb * weights[..., None]).reshape(_GRID, cell, _GRID, cell, 3).sum(axis=(1, 3))
    mass = weights.reshape(_GRID, cell, _GRID, cell).sum(axis=(1, 3))[..., None]
    means = weighted / mass / 255.0
    symmetric = (means + means[:, ::-1]) / 2
    return _unit(symmetric.ravel() - symmetric.mean())


def _shape(thumb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    grey = thumb.mean(axis=2)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy) * np.minimum(weights, 50.0) / 50.0
    # Unsigned orientation in [0, pi); mirroring maps theta to pi - theta, so bins are folded pairwise below.
    theta = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((theta / np.pi * _ORIENTATIONS).astype(np.int64), _ORIENTATIONS - 1)
    half = _THUMB // 2
    cells = []
    for rows in (slice(0, half), slice(half, _THUMB)):
        left = np.bincount(bins[rows, :half].ravel(), magnitude[rows, :half].ravel(), _ORIENTATIONS)
        right = np.bincount(bins[rows, half:].ravel(), magnitude[rows, half:].ravel(), _ORIENTATIONS)
        mirrored = lambda h: np.roll(h[::-1], 1)  # noqa: E731  (theta -> pi - theta on the bins)
        cells += [(left + mirrored(right)) / 2, (right + mirrored(left)) / 2]
    return _unit(np.sqrt(np.concatenate(cells)))


def descriptor(image: PILImage.Image) -> np.ndarray:
    """The full descriptor of an image: float32, unit length, DESCRIPTOR_DIM values."""
    thumb = _thumbnail(image)
    weights = _object_weights(thumb)
    parts = [
        _WEIGHTS["colour"] * _colour(thumb, weights),
        _WEIGHTS["layout"] * _layout(thumb, weights),
        _WEIGHTS["shape"] * _shape(thumb, weights),
    ]
    return _unit(np.concatenate(parts)).astype(np.float32)
