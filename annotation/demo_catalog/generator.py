"""Procedural product-photo catalogs: distinct objects, near-twins, duplicate listings and bad images.

The mining pipeline needs catalogs where the right answers are known: which listings show the same
physical object (duplicates), which objects are different but nearly identical (near-twins that differ in
one detail), and which images don't belong (blank or off-category). Real catalogs don't come with those
answers and model-generated ones need GPUs and weights, so this draws them with Pillow and numpy.

Every object is an ``InstanceSpec``: a category, colours per part, part shapes, proportions, a logo and a
brand word. It is drawn once as a cut-out sprite, then photographed from several viewpoints: a
perspective transform (rotation, scale, position, shear, flip), a background (solid, gradient, texture, a
table edge), a soft shadow and lighting (brightness, contrast, colour temperature, a light gradient).

Randomness comes from ``numpy.random.default_rng((seed, stream, index))``: each instance, product and bad
image has its own generator, so what one of them looks like never depends on drawing order. The same
(instances, seed, image_size) gives byte-identical files on the same Pillow/numpy/libjpeg build.
"""

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]

TWIN_FRACTION = 0.20  # twin pairs per instance: 40 instances -> 8 pairs
DUPLICATE_FRACTION = 0.10  # instances listed a second time
BAD_IMAGE_FRACTION = 0.05  # products that get one extra bad image
MIN_VIEWS, MAX_VIEWS = 3, 6
JPEG_QUALITY = 90

# One generator per (seed, stream, index): instance 5's looks don't depend on product 5's views, and so on.
_STREAM_PLAN = 0
_STREAM_INSTANCE = 1
_STREAM_TWIN = 2
_STREAM_VIEWS = 3
_STREAM_BAD = 4


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng((seed, stream, index))


# ----------------------------------------------------------------------------------------------------
# Colours

PALETTE: dict[str, RGB] = {
    "red": (196, 40, 44),
    "orange": (232, 118, 32),
    "yellow": (238, 198, 44),
    "green": (52, 140, 68),
    "olive": (118, 126, 56),
    "mint": (150, 216, 182),
    "teal": (28, 126, 130),
    "sky blue": (112, 172, 226),
    "blue": (38, 78, 180),
    "navy": (30, 40, 92),
    "purple": (112, 58, 152),
    "lavender": (182, 162, 216),
    "pink": (234, 132, 172),
    "coral": (242, 122, 100),
    "brown": (110, 70, 40),
    "tan": (202, 170, 120),
    "cream": (240, 230, 200),
    "white": (246, 246, 242),
    "grey": (140, 142, 146),
    "charcoal": (60, 62, 66),
    "black": (28, 28, 30),
}
_NEUTRALS = ("black", "charcoal", "grey", "white", "cream", "brown", "tan")
_BACKGROUNDS: tuple[RGB, ...] = (
    (238, 238, 234),
    (248, 248, 248),
    (220, 222, 226),
    (196, 202, 208),
    (232, 222, 204),
    (214, 196, 170),
    (190, 210, 222),
    (206, 224, 206),
    (240, 222, 222),
    (92, 96, 102),
    (58, 58, 62),
    (150, 112, 84),
    (176, 134, 96),
)
_GLASS: RGB = (172, 206, 230)
_TYRE: RGB = (26, 26, 28)


def _darker(color: RGB, factor: float = 0.55) -> RGB:
    return (int(color[0] * factor), int(color[1] * factor), int(color[2] * factor))


def _distance(a: RGB, b: RGB) -> float:
    return math.dist(a, b)


def _luminance(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _jitter(rng: np.random.Generator, color: RGB, amount: int = 10) -> RGB:
    # Two "red" objects should not be pixel-identical red.
    delta = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(color, delta, strict=True))  # type: ignore[return-value]


def _color_name(color: RGB) -> str:
    return min(PALETTE, key=lambda name: _distance(PALETTE[name], color))


# ----------------------------------------------------------------------------------------------------
# Instance specs


@dataclass(frozen=True)
class InstanceSpec:
    """Everything that makes one physical object look the way it does."""

    key: str
    category: str
    material: str
    colors: dict[str, RGB]  # part -> colour; "logo" and "text" colour the decals
    shapes: dict[str, str]  # part -> shape variant
    dims: dict[str, float]  # proportions, in canvas units
    logo: str | None  # logo shape, or no logo
    brand: str | None  # short word printed on the object, or none
    gloss: float  # strength of the specular highlight


@dataclass(frozen=True)
class _Decal:
    kind: str  # "logo" or "text"
    cx: float
    cy: float
    size: float  # logo radius or text height
    max_width: float = 1.0


@dataclass
class _Decals:
    """Logo/text positions from a drawer; painted after the optional mirror, so text stays readable."""

    spec: InstanceSpec
    items: list[_Decal] = field(default_factory=list)

    def logo(self, cx: float, cy: float, radius: float) -> None:
        if self.spec.logo:
            self.items.append(_Decal("logo", cx, cy, radius))

    def text(self, cx: float, cy: float, height: float, max_width: float) -> None:
        if self.spec.brand:
            self.items.append(_Decal("text", cx, cy, height, max_width))


class _Painter:
    """ImageDraw in unit coordinates (0..1 across the canvas); filled shapes get a darker outline."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)
        self.edge = max(1, round(size * 0.006))

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        s = self.size
        return [min(x0, x1) * s, min(y0, y1) * s, max(x0, x1) * s, max(y0, y1) * s]

    def _points(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.size, y * self.size) for x, y in points]

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, radius: float = 0.0) -> None:
        box = self._box(x0, y0, x1, y1)
        r = min(radius * self.size, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
        self.draw.rounded_rectangle(box, radius=r, fill=fill, outline=_darker(fill), width=self.edge)

    def rect_ring(
        self, x0: float, y0: float, x1: float, y1: float, thickness: float, fill: RGB, radius: float = 0.0
    ) -> None:
        box = self._box(x0, y0, x1, y1)
        t, e = max(2, round(thickness * self.size)), self.edge
        r = radius * self.size
        self.draw.rounded_rectangle(box, radius=r, outline=_darker(fill), width=t)
        inner = [box[0] + e, box[1] + e, box[2] - e, box[3] - e]
        self.draw.rounded_rectangle(inner, radius=max(0, r - e), outline=fill, width=max(1, t - 2 * e))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB, outline: bool = True) -> None:
        box = self._box(cx - rx, cy - ry, cx + rx, cy + ry)
        if outline:
            self.draw.ellipse(box, fill=fill, outline=_darker(fill), width=self.edge)
        else:
            self.draw.ellipse(box, fill=fill)

    def ring(self, cx: float, cy: float, rx: float, ry: float, thickness: float, fill: RGB) -> None:
        box = self._box(cx - rx, cy - ry, cx + rx, cy + ry)
        t, e = max(2, round(thickness * self.size)), self.edge
        self.draw.ellipse(box, outline=_darker(fill), width=t)
        self.draw.ellipse(
            [box[0] + e, box[1] + e, box[2] - e, box[3] - e], outline=fill, width=max(1, t - 2 * e)
        )

    def arc(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        start: float,
        end: float,
        thickness: float,
        fill: RGB,
    ) -> None:
        box = self._box(cx - rx, cy - ry, cx + rx, cy + ry)
        t, e = max(2, round(thickness * self.size)), self.edge
        self.draw.arc(box, start, end, fill=_darker(fill), width=t)
        self.draw.arc(
            [box[0] + e, box[1] + e, box[2] - e, box[3] - e], start, end, fill=fill, width=max(1, t - 2 * e)
        )

    def pieslice(
        self, cx: float, cy: float, rx: float, ry: float, start: float, end: float, fill: RGB
    ) -> None:
        box = self._box(cx - rx, cy - ry, cx + rx, cy + ry)
        self.draw.pieslice(box, start, end, fill=fill, outline=_darker(fill), width=self.edge)

    def polygon(self, points: list[tuple[float, float]], fill: RGB, outline: bool = True) -> None:
        if outline:
            self.draw.polygon(self._points(points), fill=fill, outline=_darker(fill), width=self.edge)
        else:
            self.draw.polygon(self._points(points), fill=fill)

    def line(
        self, points: list[tuple[float, float]], fill: RGB, thickness: float, outline: bool = True
    ) -> None:
        t = max(1, round(thickness * self.size))
        if outline:
            self.draw.line(self._points(points), fill=_darker(fill), width=t + 2 * self.edge, joint="curve")
        self.draw.line(self._points(points), fill=fill, width=t, joint="curve")

    def tapered(
        self, points: list[tuple[float, float]], start_width: float, end_width: float, fill: RGB
    ) -> None:
        """A stroke along a polyline whose width goes from start_width to end_width (spouts, swooshes)."""
        pts = np.asarray(points, dtype=np.float64)
        tangents = np.gradient(pts, axis=0)
        normals = np.stack([-tangents[:, 1], tangents[:, 0]], axis=1)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
        widths = np.linspace(start_width, end_width, len(pts))[:, None] / 2
        left, right = pts + normals * widths, pts - normals * widths
        outline = [tuple(p) for p in left] + [tuple(p) for p in right[::-1]]
        self.polygon(outline, fill)  # type: ignore[arg-type]


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], n: int = 14):
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)
    return [(float(x), float(y)) for x, y in pts]


# ----------------------------------------------------------------------------------------------------
# Category drawers. Each draws one object centred on the unit canvas, roughly within 0.12..0.88, and says
# where its logo and text go. Decal positions never depend on whether the decal exists, so removing one
# changes only that small region.


def _draw_mug(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    w, h = d["width"], d["height"]
    cx = 0.45
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, 0.53 - h / 2, 0.53 + h / 2
    handle = s.shapes["handle"]
    if handle == "round":
        p.ring(x1, y0 + h * 0.45, 0.13, h * 0.27, 0.045, c["handle"])
    elif handle == "square":
        p.rect_ring(x1 - 0.06, y0 + h * 0.16, x1 + 0.12, y0 + h * 0.74, 0.042, c["handle"], radius=0.035)
    else:  # a small ear high on the body
        p.ring(x1, y0 + h * 0.3, 0.075, h * 0.16, 0.036, c["handle"])
    p.rect(x0, y0, x1, y1, c["body"], radius=0.045)
    p.ellipse(cx, y0, w / 2, 0.035, c["body"])
    p.ellipse(cx, y0 + 0.004, w / 2 - 0.02, 0.024, c["inside"], outline=False)
    dec.logo(cx, y0 + h * 0.42, min(w, h) * 0.19)
    dec.text(cx, y0 + h * 0.78, h * 0.14, w * 0.8)


def _draw_vase(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    h, belly, belly_at = d["height"], d["belly"], d["belly_at"]
    cx, y0, y1 = 0.5, 0.5 - h / 2, 0.5 + h / 2
    neck = belly * (0.34 if s.shapes["neck"] == "narrow" else 0.62)
    rim = neck * (1.6 if s.shapes["rim"] == "flared" else 1.05)
    control = [
        (y0, rim),
        (y0 + 0.07 * h, neck),
        (y0 + 0.2 * h, neck),
        (y0 + belly_at * h, belly),
        (y1, belly * d["foot"]),
    ]

    def half_width(y: float) -> float:
        for (ya, wa), (yb, wb) in zip(control, control[1:], strict=False):
            if y <= yb:
                t = (y - ya) / (yb - ya)
                t = t * t * (3 - 2 * t)  # smoothstep, so the profile has no corners
                return wa + (wb - wa) * t
        return control[-1][1]

    def band(ya: float, yb: float) -> list[tuple[float, float]]:
        ys = np.linspace(ya, yb, 24)
        return [(cx - half_width(y), y) for y in ys] + [(cx + half_width(y), y) for y in ys[::-1]]

    p.polygon(band(y0, y1), c["body"])
    p.polygon(band(y0 + 0.28 * h, y0 + 0.34 * h), c["band"])
    p.ellipse(cx, y0, rim, 0.022, c["body"])
    p.ellipse(cx, y0 + 0.003, rim * 0.8, 0.014, _darker(c["body"], 0.35), outline=False)
    logo_y = y0 + belly_at * h
    dec.logo(cx, logo_y, belly * 0.34)
    dec.text(cx, min(y1 - 0.05, logo_y + belly * 0.6), 0.045, belly * 1.5)


def _draw_bottle(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    w, h = d["width"], d["height"]
    cx = 0.5
    x0, x1 = cx - w / 2, cx + w / 2
    top, y1 = 0.5 - h / 2, 0.5 + h / 2
    neck = w * 0.3
    cap_y1, neck_y1 = top + 0.08, top + 0.11
    shoulder_y1 = neck_y1 + 0.08
    p.rect(x0, shoulder_y1 - 0.02, x1, y1, c["body"], radius=0.045)
    p.polygon([(x0, shoulder_y1), (cx - neck, neck_y1), (cx + neck, neck_y1), (x1, shoulder_y1)], c["body"])
    p.rect(cx - neck, cap_y1 - 0.01, cx + neck, neck_y1 + 0.005, c["body"])
    cap = s.shapes["cap"]
    if cap == "sport":
        p.rect(cx - neck * 0.45, top - 0.04, cx + neck * 0.45, top + 0.01, c["cap"], radius=0.01)
    elif cap == "loop":
        p.ring(cx, top - 0.012, neck * 0.8, 0.04, 0.018, c["cap"])
    p.rect(cx - neck * 1.18, top, cx + neck * 1.18, cap_y1, c["cap"], radius=0.012)
    label_y0 = shoulder_y1 + (y1 - shoulder_y1) * 0.22
    label_y1 = shoulder_y1 + (y1 - shoulder_y1) * 0.72
    p.rect(x0, label_y0, x1, label_y1, c["label"])
    label_h = label_y1 - label_y0
    dec.logo(cx, label_y0 + label_h * 0.36, min(w / 2, label_h / 2) * 0.5)
    dec.text(cx, label_y0 + label_h * 0.78, label_h * 0.2, w * 0.86)


def _draw_lamp(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, top, shade_h, shade_w, base_w = 0.5, 0.16, d["shade_h"], d["shade_w"], d["base_w"]
    shade_y1, base_y = top + shade_h, 0.85
    if s.shapes["base"] == "round":
        p.ellipse(cx, base_y - 0.03, base_w, 0.035, c["base"])
    else:
        p.rect(cx - base_w * 0.75, base_y - 0.075, cx + base_w * 0.75, base_y, c["base"], radius=0.012)
    if s.shapes["stem"] == "straight":
        p.line([(cx, shade_y1 - 0.02), (cx, base_y - 0.04)], c["stem"], 0.022)
    else:
        p.line(
            [(cx, shade_y1 - 0.02), (cx + 0.09, (shade_y1 + base_y) / 2), (cx, base_y - 0.04)],
            c["stem"],
            0.022,
        )
    shade = s.shapes["shade"]
    if shade == "dome":
        p.pieslice(cx, shade_y1, shade_w, shade_h, 180, 360, c["body"])
    else:
        top_w = shade_w * (0.45 if shade == "cone" else 0.9)
        p.polygon(
            [(cx - top_w, top), (cx + top_w, top), (cx + shade_w, shade_y1), (cx - shade_w, shade_y1)],
            c["body"],
        )
    dec.logo(cx, top + shade_h * 0.5, shade_h * 0.17)
    dec.text(cx, top + shade_h * 0.82, shade_h * 0.19, shade_w * 1.4)


def _draw_teapot(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, cy, rx, ry = 0.48, 0.58, d["rx"], d["ry"]
    base = (cx - rx * 0.8, cy + ry * 0.2)
    tip = (cx - rx - 0.13, cy - ry - 0.02)
    if s.shapes["spout"] == "straight":
        spout = [
            (base[0] + (tip[0] - base[0]) * t, base[1] + (tip[1] - base[1]) * t) for t in np.linspace(0, 1, 8)
        ]
    else:
        spout = _bezier(base, (cx - rx - 0.1, cy + ry * 0.45), tip)
    p.tapered(spout, 0.085, 0.03, c["body"])
    p.ring(cx + rx, cy - ry * 0.1, 0.095, ry * 0.62, 0.035, c["handle"])
    p.ellipse(cx, cy, rx, ry, c["body"])
    p.rect(cx - rx * 0.35, cy + ry * 0.9, cx + rx * 0.35, cy + ry + 0.02, c["body"], radius=0.01)
    lid_y = cy - ry * 0.78
    p.pieslice(cx, lid_y, rx * 0.5, ry * 0.42, 180, 360, c["lid"])
    p.ellipse(cx, lid_y, rx * 0.56, 0.018, c["lid"])
    knob_y = lid_y - ry * 0.42
    if s.shapes["knob"] == "ball":
        p.ellipse(cx, knob_y - 0.018, 0.028, 0.028, c["lid"])
    else:
        p.rect(cx - 0.05, knob_y - 0.03, cx + 0.05, knob_y + 0.008, c["lid"], radius=0.01)
    dec.logo(cx, cy + ry * 0.05, ry * 0.36)
    dec.text(cx, cy + ry * 0.62, ry * 0.26, rx * 1.2)


def _draw_speaker(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    w, h = d["width"], d["height"]
    cx = 0.5
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, 0.5 - h / 2, 0.5 + h / 2
    for fx in (x0 + 0.035, x1 - 0.095):
        p.rect(fx, y1 - 0.01, fx + 0.06, y1 + 0.028, c["feet"], radius=0.008)
    p.rect(x0, y0, x1, y1, c["body"], radius=0.07 if s.shapes["corners"] == "rounded" else 0.012)

    def driver(y: float, r: float) -> None:
        p.ellipse(cx, y, r, r, c["trim"])
        p.ellipse(cx, y, r * 0.84, r * 0.84, (48, 48, 54))
        p.ellipse(cx, y, r * 0.34, r * 0.34, (78, 78, 86))

    if s.shapes["woofer"] == "single":
        driver(y0 + h * 0.17, w * 0.085)
        driver(y0 + h * 0.56, min(w * 0.36, h * 0.25))
    else:
        driver(y0 + h * 0.13, w * 0.07)
        driver(y0 + h * 0.39, min(w * 0.3, h * 0.14))
        driver(y0 + h * 0.7, min(w * 0.3, h * 0.14))
    dec.logo(x0 + w * 0.16, y1 - h * 0.075, h * 0.04)
    dec.text(cx + w * 0.1, y1 - h * 0.075, h * 0.075, w * 0.55)


def _draw_headphones(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, span, cup_y = 0.5, d["span"], d["cup_y"]
    band_bottom = cup_y - 0.1
    p.arc(cx, band_bottom, span, band_bottom - 0.17, 180, 360, 0.045, c["body"])
    cup = s.shapes["cup"]
    rx, ry = {"round": (0.085, 0.1), "oval": (0.068, 0.125), "square": (0.08, 0.1)}[cup]
    for side in (-1, 1):
        x = cx + side * span
        p.rect(x - 0.016, band_bottom - 0.02, x + 0.016, cup_y - ry + 0.02, c["slider"], radius=0.006)
        p.ellipse(x - side * 0.04, cup_y, 0.05, ry * 0.92, c["cushion"])
        if cup == "square":
            p.rect(x - rx, cup_y - ry, x + rx, cup_y + ry, c["body"], radius=0.03)
        else:
            p.ellipse(x, cup_y, rx, ry, c["body"])
    dec.logo(cx - span, cup_y, 0.042)
    dec.text(cx + span, cup_y, 0.048, rx * 1.8)


def _draw_clock(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, cy, r = 0.5, 0.52, d["radius"]
    if s.shapes["feet"] == "legs":
        for side in (-1, 1):
            p.line(
                [(cx + side * r * 0.5, cy + r * 0.7), (cx + side * r * 0.78, cy + r + 0.07)], c["feet"], 0.022
            )
    else:
        p.rect(cx - r * 0.62, cy + r * 0.82, cx + r * 0.62, cy + r + 0.05, c["feet"], radius=0.015)
    top = s.shapes["top"]
    if top == "bells":
        for side in (-1, 1):
            p.ellipse(cx + side * r * 0.62, cy - r * 0.84, r * 0.32, r * 0.3, c["bells"])
        p.line([(cx, cy - r - 0.01), (cx, cy - r - 0.06)], c["bells"], 0.012)
    elif top == "handle":
        p.arc(cx, cy - r + 0.02, r * 0.45, 0.1, 180, 360, 0.026, c["bells"])
    else:  # a plain knob, as on a wind-up clock
        p.rect(cx - 0.025, cy - r - 0.045, cx + 0.025, cy - r + 0.01, c["bells"], radius=0.008)
    p.ellipse(cx, cy, r, r, c["body"])
    p.ellipse(cx, cy, r * 0.84, r * 0.84, c["face"])
    for k in range(12):
        a = k * math.pi / 6
        inner = 0.68 if k % 3 == 0 else 0.74
        ca, sa = math.cos(a), math.sin(a)
        p.line(
            [(cx + ca * r * inner, cy + sa * r * inner), (cx + ca * r * 0.8, cy + sa * r * 0.8)],
            c["hands"],
            0.012 if k % 3 == 0 else 0.007,
            outline=False,
        )
    for angle, length, width in ((d["hour"], 0.45, 0.02), (d["minute"], 0.68, 0.012)):
        p.line(
            [(cx, cy), (cx + math.sin(angle) * r * length, cy - math.cos(angle) * r * length)],
            c["hands"],
            width,
        )
    p.ellipse(cx, cy, 0.014, 0.014, c["hands"], outline=False)
    dec.text(cx, cy - r * 0.36, r * 0.17, r * 0.9)
    dec.logo(cx, cy + r * 0.42, r * 0.11)


def _draw_camera(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    w, h = d["width"], d["height"]
    cx, cy = 0.5, 0.56
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    finder = s.shapes["viewfinder"]
    if finder == "center":
        p.polygon(
            [(cx - 0.1, y0 + 0.01), (cx - 0.065, y0 - 0.07), (cx + 0.065, y0 - 0.07), (cx + 0.1, y0 + 0.01)],
            c["body"],
        )
    elif finder == "left":
        p.rect(x0 + 0.04, y0 - 0.06, x0 + 0.2, y0 + 0.01, c["body"], radius=0.015)
    p.rect(x1 - 0.15, y0 - 0.03, x1 - 0.085, y0 + 0.005, c["button"], radius=0.008)
    p.rect(x0, y0, x1, y1, c["body"], radius=0.03)
    p.rect(x0, y0, x0 + w * 0.16, y1, c["grip"], radius=0.03)
    p.rect(x1 - 0.13, y0 + 0.03, x1 - 0.04, y0 + 0.075, (236, 236, 226), radius=0.006)
    lens_r = h * (0.33 if s.shapes["lens"] == "small" else 0.44)
    lx, ly = cx + 0.02, cy + 0.01
    p.ellipse(lx, ly, lens_r, lens_r, c["trim"])
    p.ellipse(lx, ly, lens_r * 0.8, lens_r * 0.8, (46, 46, 52))
    p.ellipse(lx, ly, lens_r * 0.58, lens_r * 0.58, (30, 40, 72))
    p.ellipse(
        lx - lens_r * 0.2, ly - lens_r * 0.2, lens_r * 0.14, lens_r * 0.1, (196, 208, 232), outline=False
    )
    dec.text(x0 + w * 0.16 + 0.065, y0 + 0.045, 0.042, 0.13)
    dec.logo(x1 - 0.07, y1 - 0.05, 0.024)


def _draw_backpack(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    w, h = d["width"], d["height"]
    cx = 0.5
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, 0.54 - h / 2, 0.54 + h / 2
    for sx in (x0, x1):
        p.rect(sx - 0.03, y0 + h * 0.15, sx + 0.03, y1 - h * 0.1, c["straps"], radius=0.02)
    p.arc(cx, y0 + 0.015, 0.07, 0.055, 180, 360, 0.022, c["trim"])
    p.rect(x0, y0, x1, y1, c["body"], radius=w * 0.3)
    p.arc(cx, y0 + h * 0.42, w * 0.42, h * 0.3, 205, 335, 0.012, c["trim"])
    px0, px1, py0, py1 = x0 + w * 0.14, x1 - w * 0.14, y0 + h * 0.5, y1 - h * 0.07
    pocket = s.shapes["pocket"]
    if pocket == "rounded":
        p.rect(px0, py0, px1, py1, c["pocket"], radius=0.09)
    else:
        p.rect(px0, py0, px1, py1, c["pocket"], radius=0.025)
        if pocket == "flap":
            p.polygon(
                [(px0, py0), (px1, py0), (px1 - 0.02, py0 + h * 0.11), (px0 + 0.02, py0 + h * 0.11)],
                c["pocket"],
            )
    dec.logo(cx, y0 + h * 0.7, h * 0.055)
    dec.text(cx, y0 + h * 0.83, h * 0.06, (px1 - px0) * 0.85)


def _draw_sneaker(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    length, height = d["length"], d["height"]
    toe, base_y = 0.5 - length / 2, 0.66

    def at(u: float, v: float) -> tuple[float, float]:  # u: toe -> heel, v: sole -> collar
        return (toe + u * length, base_y - v * height)

    upper = [(0, 0), (-0.015, 0.14), (0.02, 0.3), (0.1, 0.4), (0.28, 0.5), (0.44, 0.68), (0.52, 0.84)]
    upper += [
        (0.58, 0.86),
        (0.62, 0.74),
        (0.7, 0.66),
        (0.82, 0.7),
        (0.94, 0.84),
        (1.0, 0.8),
        (1.02, 0.45),
        (1.0, 0),
    ]
    p.polygon([at(u, v) for u, v in upper], c["body"])
    toe_cap = [(0, 0), (-0.015, 0.14), (0.02, 0.3), (0.1, 0.4), (0.19, 0.43), (0.24, 0.2), (0.23, 0)]
    p.polygon([at(u, v) for u, v in toe_cap], c["toe"])
    p.polygon(
        [at(u, v) for u, v in ((0.9, 0.8), (0.94, 0.84), (1.0, 0.8), (1.02, 0.45), (0.93, 0.45))], c["heel"]
    )
    stripe = s.shapes["stripe"]
    if stripe == "swoosh":
        p.tapered(
            [at(u, v) for u, v in _bezier((0.28, 0.3), (0.6, 0.0), (0.92, 0.42))], 0.05, 0.012, c["stripe"]
        )
    elif stripe == "bars":
        for u in (0.48, 0.56, 0.64):
            p.polygon([at(u, 0.08), at(u + 0.04, 0.08), at(u + 0.1, 0.45), at(u + 0.06, 0.45)], c["stripe"])
    else:
        p.polygon([at(u, v) for u, v in ((0.42, 0.08), (0.82, 0.08), (0.82, 0.36), (0.46, 0.4))], c["stripe"])
    for k in range(4):
        f = (k + 0.5) / 4
        u, v = 0.3 + 0.2 * f, 0.5 + 0.3 * f
        p.line([at(u + 0.025, v - 0.13), at(u - 0.015, v - 0.02)], c["laces"], 0.012)
    thick = 0.05 if s.shapes["sole"] == "flat" else 0.085
    p.rect(toe - 0.02, base_y - 0.006, toe + length * 1.02 + 0.006, base_y + thick, c["sole"], radius=0.025)
    dec.logo(toe + length * 0.86, base_y - height * 0.57, 0.03)
    dec.text(toe + length * 0.62, base_y - height * 0.55, 0.04, length * 0.2)


def _draw_hat(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, base_y, rx, ry = 0.56, 0.6, d["crown_w"], d["crown_h"]
    p.pieslice(cx, base_y, rx, ry, 180, 360, c["body"])
    seam = _darker(c["body"], 0.78)
    p.arc(cx, base_y, rx * 0.45, ry, 270, 360, 0.006, seam)
    p.arc(cx, base_y, rx * 0.45, ry, 180, 270, 0.006, seam)
    p.rect(cx - rx, base_y - 0.022, cx + rx, base_y, _darker(c["body"], 0.85))
    # The brim, seen a little from above: a thin upper edge and a lower edge that bulges towards the viewer.
    front, reach = cx - rx * 0.72, 0.21
    drop = 0.012 if s.shapes["brim"] == "flat" else 0.07
    upper = _bezier(
        (front, base_y - 0.015), (front - reach * 0.55, base_y - 0.02), (front - reach, base_y + drop), 10
    )
    lower = _bezier(
        (front - reach, base_y + drop + 0.014),
        (front - reach * 0.4, base_y + 0.07 + drop),
        (front + 0.06, base_y + 0.03),
        10,
    )
    p.polygon(upper + lower, c["brim"])
    p.ellipse(cx, base_y - ry, 0.024, 0.014, c["button"])
    dec.logo(cx - rx * 0.34, base_y - ry * 0.5, ry * 0.16)
    dec.text(cx - rx * 0.2, base_y - ry * 0.18, ry * 0.14, rx * 0.8)


def _draw_toy_car(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    length = d["length"]
    x0, x1, yt, yb = 0.5 - length / 2, 0.5 + length / 2, 0.48, 0.65
    cabin = s.shapes["cabin"]
    if cabin == "sedan":
        roof = [
            (x0 + length * 0.24, yt),
            (x0 + length * 0.36, yt - 0.12),
            (x0 + length * 0.66, yt - 0.12),
            (x0 + length * 0.8, yt),
        ]
    elif cabin == "hatch":
        roof = [
            (x0 + length * 0.24, yt),
            (x0 + length * 0.37, yt - 0.13),
            (x1 - length * 0.05, yt - 0.12),
            (x1, yt),
        ]
    else:  # pickup: short cab, open bed
        roof = [
            (x0 + length * 0.28, yt),
            (x0 + length * 0.37, yt - 0.13),
            (x0 + length * 0.56, yt - 0.13),
            (x0 + length * 0.58, yt),
        ]
    p.polygon(roof, c["roof"])
    mx = sum(x for x, _ in roof) / 4
    window = [(mx + (x - mx) * 0.8, y + 0.025 if y < yt else y) for x, y in roof]
    p.polygon(window, _GLASS, outline=False)
    p.line([(mx, yt - 0.1), (mx, yt)], c["roof"], 0.012, outline=False)
    p.rect(x0, yt, x1, yb, c["body"], radius=0.04)
    if cabin == "pickup":
        p.line(
            [(x0 + length * 0.6, yt + 0.01), (x1 - 0.015, yt + 0.01)],
            _darker(c["body"], 0.7),
            0.006,
            outline=False,
        )
    p.rect(x0 + 0.012, yt + 0.055, x1 - 0.012, yt + 0.075, c["stripe"])
    p.ellipse(x0 + 0.02, yt + 0.03, 0.016, 0.012, (250, 226, 120))
    p.ellipse(x1 - 0.016, yt + 0.03, 0.012, 0.012, (214, 40, 40))
    r = 0.065 if s.shapes["wheels"] == "small" else 0.085
    for wx in (x0 + length * 0.2, x1 - length * 0.2):
        p.ellipse(wx, yb, r, r, _TYRE)
        p.ellipse(wx, yb, r * 0.5, r * 0.5, c["hubcaps"])
    dec.logo(0.5, yt + 0.03, 0.022)
    dec.text(0.5, yt + 0.115, 0.048, length * 0.3)


def _draw_robot_toy(p: _Painter, s: InstanceSpec, dec: _Decals) -> None:
    d, c = s.dims, s.colors
    cx, bw = 0.5, d["body_w"]
    head = s.shapes["head"]
    antenna = s.shapes["antenna"]
    if antenna == "single":
        p.line([(cx, 0.22), (cx, 0.14)], c["limbs"], 0.012)
        p.ellipse(cx, 0.135, 0.02, 0.02, c["limbs"])
    elif antenna == "double":
        for side in (-1, 1):
            p.line([(cx + side * 0.05, 0.22), (cx + side * 0.08, 0.14)], c["limbs"], 0.012)
            p.ellipse(cx + side * 0.08, 0.135, 0.018, 0.018, c["limbs"])
    else:  # bolts on the sides of the head
        for side in (-1, 1):
            p.rect(cx + side * 0.155 - 0.025, 0.27, cx + side * 0.155 + 0.025, 0.33, c["limbs"], radius=0.008)
    for side in (-1, 1):
        p.rect(cx + side * 0.055 - 0.028, 0.66, cx + side * 0.055 + 0.028, 0.8, c["limbs"], radius=0.008)
        p.rect(cx + side * 0.06 - 0.045, 0.79, cx + side * 0.06 + 0.04, 0.83, c["body"], radius=0.01)
        ax = cx + side * (bw + 0.028)
        p.rect(ax - 0.025, 0.43, ax + 0.025, 0.6, c["limbs"], radius=0.01)
        p.ellipse(ax, 0.625, 0.03, 0.03, c["limbs"])
    p.rect(cx - 0.03, 0.36, cx + 0.03, 0.42, c["limbs"])
    p.rect(cx - bw, 0.41, cx + bw, 0.67, c["body"], radius=0.02)
    if head == "square":
        p.rect(cx - 0.12, 0.2, cx + 0.12, 0.38, c["body"], radius=0.03)
    elif head == "round":
        p.ellipse(cx, 0.29, 0.125, 0.1, c["body"])
    else:  # wide
        p.rect(cx - 0.15, 0.22, cx + 0.15, 0.37, c["body"], radius=0.012)
    for side in (-1, 1):
        p.ellipse(cx + side * 0.05, 0.28, 0.026, 0.026, c["eyes"])
    p.line([(cx - 0.04, 0.335), (cx + 0.04, 0.335)], _darker(c["body"], 0.5), 0.008, outline=False)
    p.rect(cx - bw * 0.62, 0.45, cx + bw * 0.62, 0.62, c["panel"], radius=0.012)
    dec.logo(cx, 0.5, 0.028)
    dec.text(cx, 0.575, 0.038, bw * 1.15)


# ----------------------------------------------------------------------------------------------------
# Categories


@dataclass(frozen=True)
class Category:
    name: str
    supercategory: str
    noun: str  # as it reads in a title
    materials: tuple[str, ...]
    parts: tuple[str, ...]  # coloured parts besides "body"
    recolourable: tuple[str, ...]  # small parts a near-twin may have in another colour
    shapes: dict[str, tuple[str, ...]]  # part -> variants; a near-twin may have another variant
    dims: dict[str, tuple[float, float]]
    draw: Callable[[_Painter, InstanceSpec, _Decals], None]
    decal_surface: str = "body"  # the part the logo and text are printed on
    palettes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # part -> allowed colour names
    contrast_with: dict[str, str] = field(default_factory=dict)  # part -> part it must stand out against


_HOME, _ELECTRONICS, _FASHION, _TOYS, _SPORTS = (
    "Home & Kitchen",
    "Electronics",
    "Clothing, Shoes & Jewelry",
    "Toys & Games",
    "Sports & Outdoors",
)

CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        Category(
            "mug", _HOME, "mug", ("ceramic", "enamel", "stoneware", "porcelain"),
            ("handle", "inside"), ("handle", "inside"), {"handle": ("round", "square", "ear")},
            {"width": (0.32, 0.42), "height": (0.36, 0.48)}, _draw_mug,
        ),
        Category(
            "vase", _HOME, "vase", ("glass", "ceramic", "porcelain", "terracotta"),
            ("band",), ("band",), {"neck": ("narrow", "wide"), "rim": ("flared", "straight")},
            {"height": (0.56, 0.68), "belly": (0.15, 0.22), "belly_at": (0.5, 0.68), "foot": (0.45, 0.75)},
            _draw_vase,
        ),
        Category(
            "bottle", _SPORTS, "water bottle", ("steel", "plastic", "aluminium", "glass"),
            ("cap", "label"), ("cap", "label"), {"cap": ("flat", "sport", "loop")},
            {"width": (0.2, 0.27), "height": (0.54, 0.62)}, _draw_bottle, decal_surface="label",
        ),
        Category(
            "lamp", _HOME, "table lamp", ("linen", "metal", "ceramic", "paper"),
            ("stem", "base"), ("stem", "base"),
            {"shade": ("cone", "drum", "dome"), "base": ("round", "square"), "stem": ("straight", "angled")},
            {"shade_h": (0.2, 0.27), "shade_w": (0.19, 0.26), "base_w": (0.1, 0.15)}, _draw_lamp,
        ),
        Category(
            "teapot", _HOME, "teapot", ("ceramic", "cast iron", "porcelain", "enamel"),
            ("lid", "handle"), ("lid", "handle"), {"spout": ("straight", "curved"), "knob": ("ball", "flat")},
            {"rx": (0.18, 0.23), "ry": (0.14, 0.17)}, _draw_teapot,
        ),
        Category(
            "speaker", _ELECTRONICS, "bookshelf speaker", ("wooden", "plastic", "fabric"),
            ("trim", "feet"), ("trim", "feet"),
            {"woofer": ("single", "double"), "corners": ("sharp", "rounded")},
            {"width": (0.36, 0.46), "height": (0.52, 0.62)}, _draw_speaker,
            palettes={"feet": _NEUTRALS},
        ),
        Category(
            "headphones", _ELECTRONICS, "headphones", ("wireless", "over-ear", "foldable"),
            ("slider", "cushion"), ("slider", "cushion"), {"cup": ("round", "oval", "square")},
            {"span": (0.22, 0.27), "cup_y": (0.58, 0.64)}, _draw_headphones,
            palettes={"cushion": _NEUTRALS},
        ),
        Category(
            "clock", _ELECTRONICS, "alarm clock", ("metal", "retro", "wooden"),
            ("face", "hands", "bells", "feet"), ("hands", "bells", "feet"),
            {"top": ("bells", "handle", "plain"), "feet": ("legs", "stand")},
            {"radius": (0.21, 0.26), "hour": (0.0, 2 * math.pi), "minute": (0.0, 2 * math.pi)}, _draw_clock,
            decal_surface="face",
            palettes={"face": ("white", "cream", "black", "charcoal", "mint", "sky blue")},
            contrast_with={"hands": "face"},
        ),
        Category(
            "camera", _ELECTRONICS, "camera", ("compact", "retro film", "instant"),
            ("trim", "grip", "button"), ("trim", "grip", "button"),
            {"viewfinder": ("center", "left", "flat"), "lens": ("small", "large")},
            {"width": (0.56, 0.64), "height": (0.28, 0.34)}, _draw_camera,
        ),
        Category(
            "backpack", _FASHION, "backpack", ("canvas", "nylon", "leather"),
            ("pocket", "trim", "straps"), ("pocket", "trim", "straps"),
            {"pocket": ("square", "rounded", "flap")},
            {"width": (0.38, 0.46), "height": (0.54, 0.62)}, _draw_backpack, decal_surface="pocket",
        ),
        Category(
            "sneaker", _FASHION, "sneaker", ("canvas", "leather", "mesh"),
            ("toe", "heel", "stripe", "laces", "sole"), ("toe", "heel", "stripe", "laces", "sole"),
            {"stripe": ("swoosh", "bars", "panel"), "sole": ("flat", "chunky")},
            {"length": (0.64, 0.72), "height": (0.24, 0.3)}, _draw_sneaker,
        ),
        Category(
            "hat", _FASHION, "baseball cap", ("cotton", "wool", "denim"),
            ("brim", "button"), ("brim", "button"), {"brim": ("flat", "curved")},
            {"crown_w": (0.22, 0.27), "crown_h": (0.24, 0.3)}, _draw_hat,
        ),
        Category(
            "toy car", _TOYS, "toy car", ("die-cast", "plastic", "wooden"),
            ("roof", "stripe", "hubcaps"), ("roof", "stripe", "hubcaps"),
            {"cabin": ("sedan", "hatch", "pickup"), "wheels": ("small", "large")},
            {"length": (0.66, 0.74)}, _draw_toy_car,
        ),
        Category(
            "robot toy", _TOYS, "robot toy", ("tin", "plastic", "wind-up"),
            ("eyes", "panel", "limbs"), ("eyes", "panel", "limbs"),
            {"head": ("square", "round", "wide"), "antenna": ("single", "double", "bolts")},
            {"body_w": (0.13, 0.16)}, _draw_robot_toy, decal_surface="panel",
        ),
    )
}  # fmt: skip

LOGO_SHAPES = ("round", "ring", "star", "triangle", "square", "diamond")
_GLOSSY = {
    "ceramic",
    "enamel",
    "porcelain",
    "glass",
    "steel",
    "aluminium",
    "plastic",
    "metal",
    "die-cast",
    "tin",
}
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ve",
    "ra",
    "zu",
    "to",
    "ne",
    "sa",
    "po",
    "ri",
    "xa",
    "de",
    "fi",
    "bo",
    "lu",
    "ko",
)


def _brand(rng: np.random.Generator) -> str:
    word = "".join(_SYLLABLES[i] for i in rng.integers(len(_SYLLABLES), size=2))
    if rng.random() < 0.4:
        word += "XNRSTL"[int(rng.integers(6))].lower()
    return word.upper()


def _constraints(category: Category, part: str) -> list[tuple[str, float, float]]:
    """(other part, minimum colour distance, minimum luminance gap) for what `part` must stand out against."""
    pairs: list[tuple[str, float, float]] = []
    for other, ref in [(p, category.contrast_with.get(p, "body")) for p in category.parts]:
        if part == other and ref != part:
            pairs.append((ref, 90.0, 0.0))
        elif part == ref and other != part:
            pairs.append((other, 90.0, 0.0))
    # Print must be legible: different hue is not enough, it needs a lightness gap too.
    surface = category.decal_surface
    if part in ("logo", "text"):
        pairs.append((surface, 110.0, 50.0))
    elif part == surface:
        pairs += [("logo", 110.0, 50.0), ("text", 110.0, 50.0)]
    return pairs


def _color_pick(
    rng: np.random.Generator, category: Category, part: str, colors: dict[str, RGB], avoid: RGB | None = None
) -> RGB:
    names = category.palettes.get(part, tuple(PALETTE))
    fallback: RGB | None = None
    for index in rng.permutation(len(names)):
        candidate = _jitter(rng, PALETTE[names[int(index)]], 6)
        if avoid is not None and _distance(candidate, avoid) < 100:
            continue
        fallback = fallback or candidate
        if all(
            other not in colors
            or (
                _distance(candidate, colors[other]) >= gap
                and abs(_luminance(candidate) - _luminance(colors[other])) >= lightness
            )
            for other, gap, lightness in _constraints(category, part)
        ):
            return candidate
    # Every colour clashes (tiny palettes): better a low-contrast part than a failure.
    return fallback or PALETTE["black"]


def instance_spec_sample(rng: np.random.Generator, *, key: str, category: str | None = None) -> InstanceSpec:
    """A random object of `category` (or of a random category)."""
    if category is None:
        category = tuple(CATEGORIES)[int(rng.integers(len(CATEGORIES)))]
    cat = CATEGORIES[category]
    material = cat.materials[int(rng.integers(len(cat.materials)))]
    colors: dict[str, RGB] = {"body": _jitter(rng, PALETTE[tuple(PALETTE)[int(rng.integers(len(PALETTE)))]])}
    for part in cat.parts:
        if part in cat.palettes or rng.random() < 0.75:
            colors[part] = _color_pick(rng, cat, part, colors)
        else:  # same colour as the body, as many real products are
            colors[part] = _darker(colors["body"], 0.8) if part == "inside" else colors["body"]
    colors["logo"] = _color_pick(rng, cat, "logo", colors)
    colors["text"] = _color_pick(rng, cat, "text", colors)
    shapes = {part: variants[int(rng.integers(len(variants)))] for part, variants in cat.shapes.items()}
    dims = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in cat.dims.items()}
    logo = LOGO_SHAPES[int(rng.integers(len(LOGO_SHAPES)))] if rng.random() < 0.85 else None
    brand = _brand(rng) if rng.random() < 0.75 else None
    gloss = float(rng.uniform(0.25, 0.45)) if material in _GLOSSY else float(rng.uniform(0.0, 0.08))
    return InstanceSpec(key, category, material, colors, shapes, dims, logo, brand, gloss)


def twin_make(spec: InstanceSpec, rng: np.random.Generator, *, key: str) -> tuple[InstanceSpec, str]:
    """A near-twin: the same object with exactly one detail changed, and what changed."""
    cat = CATEGORIES[spec.category]
    # Pick the kind of change first, so that logo and text changes don't crowd out part changes.
    kinds: list[list[str]] = []
    if spec.logo:
        kinds.append(["logo removed", "logo recoloured"])
    if spec.brand:
        kinds.append(["text changed"])
    kinds.append([f"{part} recoloured" for part in cat.recolourable])
    kinds.append([f"{part} reshaped" for part in cat.shapes])
    options = kinds[int(rng.integers(len(kinds)))]
    change = options[int(rng.integers(len(options)))]
    part, _, what = change.rpartition(" ")
    if change == "logo removed":
        return replace(spec, key=key, logo=None), change
    if change == "text changed":
        brand = spec.brand
        while brand == spec.brand:
            brand = _brand(rng)
        return replace(spec, key=key, brand=brand), change
    if what == "recoloured":
        colors = dict(spec.colors)
        colors[part] = _color_pick(rng, cat, part, colors, avoid=spec.colors[part])
        return replace(spec, key=key, colors=colors), change
    shapes = dict(spec.shapes)
    others = [v for v in cat.shapes[part] if v != spec.shapes[part]]
    shapes[part] = others[int(rng.integers(len(others)))]
    return replace(spec, key=key, shapes=shapes), change


def title_make(spec: InstanceSpec, style: int) -> str:
    """A listing title in one of three styles, so duplicate listings can read differently."""
    cat = CATEGORIES[spec.category]
    color = _color_name(spec.colors["body"])
    if spec.logo:
        feature = f"{spec.logo} logo"
    elif spec.brand:
        feature = f'"{spec.brand}" print'
    else:
        part = cat.recolourable[0]
        feature = f"{_color_name(spec.colors[part])} {part}"
    if style == 0:
        title = f"{color} {spec.material} {cat.noun} with {feature}"
    elif style == 1:
        maker = spec.brand or "Classic"
        title = f"{maker} {spec.material} {cat.noun}, {color}, {feature}"
    else:
        title = f"{cat.noun} in {color} {spec.material} - {feature}"
    return title[0].upper() + title[1:]


# ----------------------------------------------------------------------------------------------------
# Drawing an object


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Loading the font parses its file; every image draws text, so keep one per size.
    return ImageFont.load_default(size=px)


def _logo_draw(p: _Painter, shape: str, cx: float, cy: float, r: float, color: RGB) -> None:
    if shape == "round":
        p.ellipse(cx, cy, r, r, color, outline=False)
    elif shape == "ring":
        p.ring(cx, cy, r, r, r * 0.35, color)
    elif shape == "square":
        p.rect(cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85, color, radius=r * 0.15)
    else:
        corners = {"star": 5, "triangle": 3, "diamond": 4}[shape]
        radii = [r, r * 0.45] * corners if shape == "star" else [r] * corners
        count = len(radii)
        pts = [
            (cx + rad * math.sin(2 * math.pi * k / count), cy - rad * math.cos(2 * math.pi * k / count))
            for k, rad in enumerate(radii)
        ]
        p.polygon(pts, color, outline=False)


def _decal_draw(p: _Painter, spec: InstanceSpec, decal: _Decal, cx: float) -> None:
    if decal.kind == "logo":
        _logo_draw(p, spec.logo or "round", cx, decal.cy, decal.size, spec.colors["logo"])
        return
    text = spec.brand or ""
    px = max(6, round(decal.size * p.size))
    width = _font(px).getlength(text)
    if width > decal.max_width * p.size:  # shrink long words to fit their surface
        px = max(6, int(px * decal.max_width * p.size / width))
    color = spec.colors["text"]
    # A thin stroke in the same colour: the bundled font is light, and small print should survive a JPEG.
    stroke = max(1, px // 16)
    p.draw.text(
        (cx * p.size, decal.cy * p.size),
        text,
        font=_font(px),
        fill=color,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=color,
    )


def instance_draw(spec: InstanceSpec, *, size: int, flipped: bool = False) -> Image.Image:
    """The object alone on a transparent canvas: premultiplied ``RGBa``, size x size.

    Drawn at twice the size and halved, for smooth edges. ``flipped`` mirrors the object (the handle moves to
    the other side) but not its print, which stays readable as on a real object seen from the other side.
    """
    painter = _Painter(size * 2)
    decals = _Decals(spec)
    CATEGORIES[spec.category].draw(painter, spec, decals)
    if flipped:
        painter.image = painter.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        painter.draw = ImageDraw.Draw(painter.image)
    for decal in decals.items:
        _decal_draw(painter, spec, decal, 1 - decal.cx if flipped else decal.cx)
    sprite = painter.image.convert("RGBa").reduce(2)
    return _volume_shade(sprite, spec.gloss)


_HEADROOM = 1.125  # the shade map brightens the middle a bit, beyond what an 8-bit mask can hold as 1.0
_BOOST = [min(255, round(i * _HEADROOM)) for i in range(256)]


def _volume_shade(sprite: Image.Image, gloss: float) -> Image.Image:
    """Darkens towards the silhouette's sides and adds a highlight, so flat drawings read as round objects.

    Pillow band operations rather than float numpy: this runs for every sprite and numpy was 5x slower.
    """
    *bands, alpha = sprite.split()
    bbox = alpha.getbbox()
    if bbox is None:
        return sprite
    size = sprite.width
    x0, y0, x1, y1 = bbox
    t = np.clip((np.arange(size, dtype=np.float32) - x0) / max(1, x1 - 1 - x0), 0, 1)
    v = np.clip((np.arange(size, dtype=np.float32) - y0) / max(1, y1 - 1 - y0), 0, 1)
    shade = np.outer(1.06 - 0.14 * v, 0.7 + 0.36 * np.clip(np.sin(np.pi * t), 0, 1) ** 0.6) / _HEADROOM
    shade_map = Image.fromarray(np.rint(shade * 255).astype(np.uint8))
    highlight = np.outer(1 - 0.5 * v, gloss * 255 * np.exp(-(((t - 0.3) / 0.05) ** 2)))
    highlight_map = ImageChops.multiply(Image.fromarray(np.rint(highlight).astype(np.uint8)), alpha)
    shaded = [
        # darker(..., alpha) keeps colour <= alpha, as premultiplied pixels must be.
        ImageChops.darker(
            ImageChops.add(ImageChops.multiply(band, shade_map).point(_BOOST), highlight_map), alpha
        )
        for band in bands
    ]
    return Image.merge("RGBa", (*shaded, alpha))


# ----------------------------------------------------------------------------------------------------
# Photographing an object


@dataclass(frozen=True)
class ViewParams:
    """One photo: camera pose, background, shadow and lighting. Lengths are fractions of the image size."""

    angle: float  # degrees
    scale: float
    shift_x: float
    shift_y: float
    shear: float
    perspective_x: float
    perspective_y: float
    flip: bool
    background: str  # solid, gradient, noise, table
    bg_a: RGB
    bg_b: RGB
    bg_param: float  # gradient direction (radians) or table edge height
    brightness: float
    contrast: float
    temperature: float  # > 0 warmer, < 0 cooler
    light_angle: float
    light_strength: float
    vignette: float
    shadow_dx: float
    shadow_dy: float
    shadow_blur: float
    shadow_strength: float
    grain: float
    noise_seed: int


def view_sample(rng: np.random.Generator) -> ViewParams:
    bg_a, bg_b = (_jitter(rng, _BACKGROUNDS[int(i)], 8) for i in rng.integers(len(_BACKGROUNDS), size=2))
    background = ("solid", "gradient", "noise", "table")[int(rng.choice(4, p=[0.2, 0.3, 0.2, 0.3]))]
    return ViewParams(
        angle=float(np.clip(rng.normal(0, 10), -25, 25)),
        scale=float(rng.uniform(0.72, 1.06)),
        shift_x=float(rng.uniform(-0.08, 0.08)),
        shift_y=float(rng.uniform(-0.07, 0.07)),
        shear=float(rng.uniform(-0.12, 0.12)),
        perspective_x=float(rng.uniform(-0.22, 0.22)),
        perspective_y=float(rng.uniform(-0.22, 0.22)),
        flip=bool(rng.random() < 0.35),
        background=background,
        bg_a=bg_a,
        bg_b=bg_b,
        bg_param=float(rng.uniform(0.62, 0.8) if background == "table" else rng.uniform(0, 2 * math.pi)),
        brightness=float(rng.uniform(0.86, 1.1)),
        contrast=float(rng.uniform(0.85, 1.12)),
        temperature=float(rng.uniform(-0.07, 0.07)),
        light_angle=float(rng.uniform(0, 2 * math.pi)),
        light_strength=float(rng.uniform(0.0, 0.35)),
        vignette=float(rng.uniform(0.0, 0.35)),
        shadow_dx=float(rng.uniform(-0.04, 0.04)),
        shadow_dy=float(rng.uniform(0.01, 0.05)),
        shadow_blur=float(rng.uniform(1.5, 3.5)),
        shadow_strength=float(rng.uniform(0.25, 0.55)),
        grain=float(rng.uniform(0.0, 3.0)),
        noise_seed=int(rng.integers(2**31)),
    )


def _view_matrix(view: ViewParams, size: int) -> np.ndarray:
    """Forward homography, sprite pixels -> image pixels, about the centre."""
    c = size / 2
    a = math.radians(view.angle)
    to_centre = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]], dtype=np.float64)
    scale = np.diag([view.scale, view.scale, 1.0])
    shear = np.array([[1, view.shear, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    rotate = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    perspective = np.array([[1, 0, 0], [0, 1, 0], [view.perspective_x / size, view.perspective_y / size, 1]])
    back = np.array([[1, 0, c + view.shift_x * size], [0, 1, c + view.shift_y * size], [0, 0, 1]])
    return back @ perspective @ rotate @ shear @ scale @ to_centre


# Smooth fields (gradients, light falloff, blotchy textures) are computed on a small grid and enlarged by
# Pillow: same look, a fraction of the cost of full-size numpy arrays.
_LOW = 16


def _low_grid(n: int = _LOW) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates in -0.5..0.5 of an n x n grid."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    return np.broadcast_to(axis[None, :], (n, n)), np.broadcast_to(axis[:, None], (n, n))


def _enlarge(
    low: np.ndarray, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> Image.Image:
    return Image.fromarray(np.clip(low + 0.5, 0, 255).astype(np.uint8)).resize((size, size), resample)


@lru_cache(maxsize=4)
def _black(size: int) -> Image.Image:
    return Image.new("RGB", (size, size))


@lru_cache(maxsize=8)
def _grain_field(size: int, level: int) -> Image.Image:
    """Fixed sensor noise (mean 128, sd `level`), twice the image size; photos crop it at random offsets."""
    noise = np.random.default_rng((20240607, level)).normal(128, level, size=(2 * size, 2 * size, 3))
    return Image.fromarray(np.clip(np.rint(noise), 0, 255).astype(np.uint8))


def _grain_add(img: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """Adds noise of about `amount` grey levels (rounded to 1, 2 or 3)."""
    size = img.width
    x, y = (int(v) for v in rng.integers(0, size, size=2))
    crop = _grain_field(size, min(3, max(1, round(amount)))).crop((x, y, x + size, y + size))
    return ImageChops.add(img, crop, 1.0, -128)


def _background(view: ViewParams, size: int, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(view.bg_a, dtype=np.float32)
    b = np.asarray(view.bg_b, dtype=np.float32)
    if view.background == "solid":
        return Image.new("RGB", (size, size), view.bg_a)
    xs, ys = _low_grid()
    if view.background == "gradient":
        t = np.clip(xs * math.cos(view.bg_param) + ys * math.sin(view.bg_param) + 0.5, 0, 1)
        return _enlarge(a + (b - a) * t[..., None], size)
    if view.background == "noise":
        # A mottled backdrop: two octaves of random values, each smoothly enlarged (a finer octave shows
        # its grid once enlarged to full size).
        octaves = [
            np.asarray(
                Image.fromarray(rng.integers(0, 256, size=(n, n), dtype=np.uint8)).resize(
                    (_LOW, _LOW), Image.Resampling.BICUBIC
                ),
                dtype=np.float32,
            )
            for n in (4, 7)
        ]
        t = (0.65 * octaves[0] + 0.35 * octaves[1]) / 255 * 0.6
        return _enlarge(a + (b - a) * t[..., None], size, Image.Resampling.BICUBIC)
    # A table: a wall above, a surface with faint wood grain below, a lit edge between. Built as a narrow
    # strip (every row, few columns) and stretched sideways.
    cols = 16
    y = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    x = (np.arange(cols, dtype=np.float32) + 0.5) / cols - 0.5
    horizon = int(view.bg_param * size)
    strip = np.empty((size, cols, 3), dtype=np.float32)
    strip[:horizon] = a * (0.92 + 0.12 * (y[:horizon, None, None] + 0.5))
    grain = 1 + 0.04 * np.sin(y[horizon:, None, None] * 160 + np.sin(x[None, :, None] * 9) * 2)
    strip[horizon:] = b * grain
    strip[horizon : horizon + max(1, size // 128)] = np.minimum(b * 1.25, 255)
    return Image.fromarray(np.clip(strip + 0.5, 0, 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR
    )


def _pose(sprite: Image.Image, view: ViewParams, size: int) -> Image.Image:
    """The sprite moved into the photo's frame. Only the object's box is resampled (Pillow's transform costs
    per output pixel, and most of the frame is empty), then pasted into an empty frame."""
    forward = _view_matrix(view, size)
    frame = Image.new("RGBa", (size, size))
    bbox = sprite.getbbox()
    if bbox is None:
        return frame
    x0, y0, x1, y1 = bbox
    corners = forward @ np.array([[x0, x0, x1, x1], [y0, y1, y0, y1], [1, 1, 1, 1]], dtype=np.float64)
    xs, ys = corners[0] / corners[2], corners[1] / corners[2]
    left, top = max(0, math.floor(xs.min()) - 1), max(0, math.floor(ys.min()) - 1)
    right, bottom = min(size, math.ceil(xs.max()) + 1), min(size, math.ceil(ys.max()) + 1)
    if right <= left or bottom <= top:
        return frame
    inverse = np.linalg.inv(forward) @ np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], dtype=np.float64)
    inverse /= inverse[2, 2]
    box = (right - left, bottom - top)
    part = sprite.transform(
        box, Image.Transform.PERSPECTIVE, tuple(inverse.ravel()[:8]), Image.Resampling.BILINEAR
    )
    frame.paste(part, (left, top))
    return frame


def view_render(sprite: Image.Image, view: ViewParams, *, size: int) -> Image.Image:
    """Photographs a sprite from ``instance_draw``: pose, background, shadow, light. Returns an RGB image."""
    rng = np.random.default_rng(view.noise_seed)
    obj = _pose(sprite, view, size)
    *bands, alpha = obj.split()

    # Shadow: the silhouette at quarter size, blurred, offset away from the light, enlarged.
    small = np.asarray(alpha.reduce(4).filter(ImageFilter.GaussianBlur(view.shadow_blur)), dtype=np.float32)
    dx, dy = round(view.shadow_dx * size / 4), round(view.shadow_dy * size / 4)
    shadow = np.zeros_like(small)
    h, w = small.shape
    shadow[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = small[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    shadow_mask = _enlarge(shadow * view.shadow_strength, size)

    black = _black(size)
    img = Image.composite(black, _background(view, size, rng), shadow_mask)
    img = ImageChops.add(
        Image.composite(black, img, alpha), Image.merge("RGB", bands)
    )  # obj is premultiplied

    # Light: a gradient across the frame with vignetting, as a smooth mask (gain / peak: masks can't exceed
    # 1); then a lookup table per channel puts back the peak, brightness, colour temperature and contrast.
    xs, ys = _low_grid()
    light = 1 + view.light_strength * (xs * math.cos(view.light_angle) + ys * math.sin(view.light_angle))
    light = light - view.vignette * (xs * xs + ys * ys)
    peak = float(light.max())
    img = Image.composite(img, black, _enlarge(light / peak * 255, size))
    levels = np.arange(256, dtype=np.float64) * peak * view.brightness
    tints = (1 + view.temperature, 1.0, 1 - view.temperature)
    lut = np.concatenate([np.clip((levels * tint - 128) * view.contrast + 128.5, 0, 255) for tint in tints])
    img = img.point(lut.astype(np.uint8).tolist())
    if view.grain >= 0.5:
        img = _grain_add(img, rng, view.grain)
    return img


def blank_render(rng: np.random.Generator, *, size: int) -> Image.Image:
    """A near-uniform image: lens cap, overexposure, an empty backdrop."""
    choices = [
        (250, 250, 250),
        (16, 16, 18),
        (128, 128, 128),
        _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))],
    ]
    base = np.asarray(choices[int(rng.integers(len(choices)))], dtype=np.float32)
    xs, ys = _low_grid()
    slope = rng.uniform(-6, 6, size=2).astype(np.float32)
    img = _enlarge(base + (xs * slope[0] + ys * slope[1])[..., None], size)
    return _grain_add(img, rng, float(rng.uniform(0.5, 2.0)))


# ----------------------------------------------------------------------------------------------------
# The catalog


@dataclass(frozen=True)
class ProductPlan:
    product_id: str
    number: int
    instance: int  # index into CatalogPlan.specs
    title: str
    views: int
    bad_reason: str | None = None  # "blank" or "off_category"
    bad_position: int = 0  # where in the image list the bad image sits


@dataclass(frozen=True)
class CatalogPlan:
    seed: int
    specs: tuple[InstanceSpec, ...]
    products: tuple[ProductPlan, ...]
    twin_pairs: tuple[tuple[int, int, str], ...]  # (original, twin, difference)
    duplicate_listings: tuple[tuple[str, str], ...]


def product_id_make(number: int) -> str:
    return f"DEMO-{number:06d}"


def catalog_plan(*, instances: int, seed: int) -> CatalogPlan:
    """Decides everything except pixels: objects, twins, listings, titles, view counts, bad images."""
    rng = _rng(seed, _STREAM_PLAN)
    keys = [f"I{i + 1:04d}" for i in range(instances)]
    specs = [instance_spec_sample(_rng(seed, _STREAM_INSTANCE, i), key=keys[i]) for i in range(instances)]

    pair_count = min(round(TWIN_FRACTION * instances), instances // 2)
    order = rng.permutation(instances)
    twin_pairs: list[tuple[int, int, str]] = []
    for k in range(pair_count):
        a, b = sorted((int(order[2 * k]), int(order[2 * k + 1])))
        specs[b], difference = twin_make(specs[a], _rng(seed, _STREAM_TWIN, b), key=keys[b])
        twin_pairs.append((a, b, difference))
    twin_pairs.sort()

    styles = rng.integers(3, size=instances)
    products = [
        ProductPlan(
            product_id_make(i + 1),
            i + 1,
            i,
            title_make(specs[i], int(styles[i])),
            int(rng.integers(MIN_VIEWS, MAX_VIEWS + 1)),
        )
        for i in range(instances)
    ]
    duplicate_count = round(DUPLICATE_FRACTION * instances)
    duplicates: list[tuple[str, str]] = []
    for i in sorted(int(i) for i in rng.choice(instances, size=duplicate_count, replace=False)):
        number = len(products) + 1
        style = (int(styles[i]) + 1 + int(rng.integers(2))) % 3  # a different title style from the original
        views = int(rng.integers(MIN_VIEWS, MAX_VIEWS + 1))
        products.append(ProductPlan(product_id_make(number), number, i, title_make(specs[i], style), views))
        duplicates.append((product_id_make(i + 1), product_id_make(number)))

    bad_count = round(BAD_IMAGE_FRACTION * len(products))
    for index in sorted(int(i) for i in rng.choice(len(products), size=bad_count, replace=False)):
        product = products[index]
        reason = "blank" if rng.random() < 0.5 else "off_category"
        position = int(rng.integers(product.views + 1))
        products[index] = replace(product, bad_reason=reason, bad_position=position)

    return CatalogPlan(seed, tuple(specs), tuple(products), tuple(twin_pairs), tuple(duplicates))


@dataclass(frozen=True)
class DemoCatalog:
    manifest_path: Path  # <output_dir>/manifest.jsonl
    images_root: Path  # <output_dir>/images
    ground_truth_path: Path  # <output_dir>/ground_truth.json


def _bad_image(plan: CatalogPlan, product: ProductPlan, size: int) -> Image.Image:
    rng = _rng(plan.seed, _STREAM_BAD, product.number)
    if product.bad_reason == "blank":
        return blank_render(rng, size=size)
    own = plan.specs[product.instance].category
    other = [name for name in CATEGORIES if name != own]
    spec = instance_spec_sample(rng, key="offcat", category=other[int(rng.integers(len(other)))])
    view = view_sample(rng)
    return view_render(instance_draw(spec, size=size, flipped=view.flip), view, size=size)


def _is_demo_images(folder: Path) -> bool:
    """Only product folders as this module names them (also after an interrupted run, before ground truth)."""
    return folder.is_dir() and all(
        child.is_dir() and re.fullmatch(r"DEMO-\d{6,}", child.name) for child in folder.iterdir()
    )


def demo_catalog_make(*, output_dir: Path, instances: int, seed: int, image_size: int = 256) -> DemoCatalog:
    """Writes a demo catalog under output_dir: manifest.jsonl, images/<product_id>/<n>.jpg, ground_truth.json.

    A previous demo catalog in output_dir is replaced; an images/ folder holding anything else is refused
    rather than deleted.
    """
    if instances < 1:
        raise ValueError(f"instances must be at least 1, not {instances}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, not {seed}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, not {image_size}")
    output_dir = Path(output_dir)
    catalog = DemoCatalog(
        manifest_path=output_dir / "manifest.jsonl",
        images_root=output_dir / "images",
        ground_truth_path=output_dir / "ground_truth.json",
    )
    if catalog.images_root.exists():
        if not _is_demo_images(catalog.images_root):
            raise FileExistsError(
                f"{catalog.images_root} holds files that are not a demo catalog's; not touching it"
            )
        # Stale folders of a larger earlier catalog would confuse an import.
        shutil.rmtree(catalog.images_root)
    catalog.images_root.mkdir(parents=True)

    plan = catalog_plan(instances=instances, seed=seed)
    listings: dict[int, list[ProductPlan]] = {}
    for product in plan.products:
        listings.setdefault(product.instance, []).append(product)

    image_lists: dict[str, list[str]] = {}
    bad_images: list[dict[str, str]] = []
    # Instance by instance, so a sprite is drawn once (twice if a view is mirrored) for all its listings.
    for index, spec in enumerate(plan.specs):
        sprites: dict[bool, Image.Image] = {}
        for product in listings[index]:
            folder = catalog.images_root / product.product_id
            folder.mkdir()
            rng = _rng(seed, _STREAM_VIEWS, product.number)
            names: list[str] = []
            total = product.views + (1 if product.bad_reason else 0)
            for position in range(total):
                name = f"{product.product_id}/{position}.jpg"
                if product.bad_reason and position == product.bad_position:
                    image = _bad_image(plan, product, image_size)
                    bad_images.append(
                        {"product_id": product.product_id, "image": name, "reason": product.bad_reason}
                    )
                else:
                    view = view_sample(rng)
                    if view.flip not in sprites:
                        sprites[view.flip] = instance_draw(spec, size=image_size, flipped=view.flip)
                    image = view_render(sprites[view.flip], view, size=image_size)
                image.save(catalog.images_root / name, "JPEG", quality=JPEG_QUALITY)
                names.append(name)
            image_lists[product.product_id] = names

    with catalog.manifest_path.open("w", encoding="utf-8", newline="\n") as handle:
        for product in plan.products:
            spec = plan.specs[product.instance]
            record = {
                "product_id": product.product_id,
                "title": product.title,
                "category": spec.category,
                "supercategory": CATEGORIES[spec.category].supercategory,
                "images": image_lists[product.product_id],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    bad_images.sort(key=lambda bad: bad["product_id"])
    ground_truth = {
        "seed": seed,
        "instances": instances,
        "image_size": image_size,
        "products": {
            product.product_id: {
                "instance": plan.specs[product.instance].key,
                "category": plan.specs[product.instance].category,
            }
            for product in plan.products
        },
        "duplicate_listings": [list(pair) for pair in plan.duplicate_listings],
        "twin_pairs": [
            {"instance_a": plan.specs[a].key, "instance_b": plan.specs[b].key, "difference": difference}
            for a, b, difference in plan.twin_pairs
        ],
        "bad_images": bad_images,
    }
    catalog.ground_truth_path.write_text(
        json.dumps(ground_truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return catalog


def demo_catalog_counts(catalog: DemoCatalog) -> dict[str, int]:
    """Products, images, duplicate listings, twin pairs and bad images of a written catalog, for reports."""
    truth = json.loads(catalog.ground_truth_path.read_text(encoding="utf-8"))
    with catalog.manifest_path.open(encoding="utf-8") as handle:
        images = sum(len(json.loads(line)["images"]) for line in handle if line.strip())
    return {
        "products": len(truth["products"]),
        "images": images,
        "duplicates": len(truth["duplicate_listings"]),
        "twins": len(truth["twin_pairs"]),
        "bad_images": len(truth["bad_images"]),
    }
