"""Detection and classification sets built from scikit-learn's real handwritten digits.

Nothing can be downloaded, so every experiment trains on data rendered from the 1,797 real
8×8 digits that ship with scikit-learn (``sklearn.datasets.load_digits``):

* a COCO-format **detection** set: several digits per canvas at varied scale, position and
  contrast, partially overlapping, over a cluttered background with digit-like distractors
  (stroke fragments, arcs, blobs) that are *not* annotated;
* an mmpretrain-format **classification** set: one digit per small image, on the same kind of
  background.

The 1,797 digits are split once, stratified by class, into disjoint *train* and *val* pools
(:func:`digit_pools`); train images only use train digits and val images only val digits, in
both sets. Output is deterministic: every image is drawn from its own random stream seeded by
``(seed, set, split, index)``, so the same seed gives byte-identical json and PNG files.

Box convention: a digit's ink is its upsampled glyph after a contrast ramp (see
:func:`render_glyph`); every pixel with non-zero alpha is ink and the COCO box
``[x, y, w, h]`` is the smallest pixel rectangle holding all of it (pixel columns ``x`` to
``x + w - 1``), so the ink touches all four edges of the box and nothing of the digit is drawn
outside it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Class names of both sets; COCO category ``id = digit + 1``, ``name = str(digit)``."""
DETECTION_METAINFO: dict[str, tuple[str, ...]] = {"classes": DIGIT_CLASSES}
CLASSIFICATION_METAINFO: dict[str, tuple[str, ...]] = {"classes": DIGIT_CLASSES}
DIFFICULTIES: tuple[str, ...] = ("easy", "hard")

NUM_DIGITS = 1797
VAL_FRACTION = 0.25
"""Share of each class's digits held out for the val pool."""
POOL_SEED = 0
"""The train/val digit pools are fixed (independent of the generation seed)."""

# Glyph contrast ramp: sklearn's glyphs are 0..16; after scaling to 0..1 and upsampling,
# alpha = clip((v - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW)), and alphas below MIN_ALPHA are set to
# 0 so that the visible digit and its ink mask (alpha > 0) are the same pixels.
RAMP_LOW = 0.15
RAMP_HIGH = 0.6
MIN_ALPHA = 0.1

_SET_CODES = {"det": 0, "cls": 1}
_SPLIT_CODES = {"train": 0, "val": 1}
_IMAGE_NAME = re.compile(r"^\d{6}\.png$")
_RESAMPLE = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
_DATE = "2025-01-01"  # fixed so that the json is byte-identical between runs


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ValueError(
            f"{name} must be a (min, max) pair with {low} <= min <= max <= {high}, got {value!r}"
        )


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class DetectionSpec:
    """How detection canvases are drawn. Defaults are the ``'hard'`` preset at 128 px.

    Attributes:
        image_size: side of the square canvas in px (default 128).
        digits_per_image: inclusive (min, max) number of annotated digits (default (3, 9));
            a digit that finds no place within the overlap limit after 40 tries is left out,
            the first one always fits.
        digit_size: (min, max) height in px of the upsampled 8×8 glyph cell, drawn
            log-uniformly (default (8, 28)); the ink box is usually a little smaller.
        aspect_jitter: the cell width is ``height * (1 + u)``, ``u ~ U(-j, j)`` (default 0.15).
        max_overlap_iou: largest IoU allowed between two digit boxes, and between a digit box
            and a distractor (default 0.3; 0 forbids any overlap).
        max_covered: largest fraction of either box's area that may lie inside the other box
            (default 0.5), so that no digit is hidden inside a larger one; the same limit
            applies between digits and distractors.
        overlap_prob: chance that a digit is placed next to an already placed one so that the
            two boxes overlap partially (default 0.35).
        distractors_per_image: inclusive (min, max) number of unannotated digit-like
            distractors: rotated or mirrored fragments of digits, stroke polylines, arcs,
            blobs (default (3, 8)).
        noise_std: std of per-pixel Gaussian noise, in units of full scale (default 0.05).
        clutter: strength of background gradient, low-frequency noise, grating texture and
            faint lines; 0 gives a flat background (default 1.0).
        contrast: (min, max) ink-to-local-background contrast per digit (default (0.25, 0.9));
            an effective contrast of at least ``min(contrast[0], 0.5)`` is guaranteed.
        invert_prob: chance that a digit is lighter than its background (default 0.5).
        rgb_prob: chance that a canvas is coloured rather than grey (default 0.5).
    """

    image_size: int = 128
    digits_per_image: tuple[int, int] = (3, 9)
    digit_size: tuple[float, float] = (8.0, 28.0)
    aspect_jitter: float = 0.15
    max_overlap_iou: float = 0.3
    max_covered: float = 0.5
    overlap_prob: float = 0.35
    distractors_per_image: tuple[int, int] = (3, 8)
    noise_std: float = 0.05
    clutter: float = 1.0
    contrast: tuple[float, float] = (0.25, 0.9)
    invert_prob: float = 0.5
    rgb_prob: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {self.image_size!r}")
        _check_range("digits_per_image", self.digits_per_image, 1, 1000)
        _check_range("digit_size", self.digit_size, 4, self.image_size)
        _check_range("distractors_per_image", self.distractors_per_image, 0, 1000)
        _check_range("contrast", self.contrast, 1e-3, 1.0)
        if not 0.0 <= self.aspect_jitter < 1.0:
            raise ValueError(f"aspect_jitter must lie in [0, 1), got {self.aspect_jitter!r}")
        if not 0.0 <= self.max_overlap_iou < 1.0:
            raise ValueError(f"max_overlap_iou must lie in [0, 1), got {self.max_overlap_iou!r}")
        for name in ("max_covered", "overlap_prob", "invert_prob", "rgb_prob"):
            _check_unit(name, getattr(self, name))
        if self.noise_std < 0 or self.clutter < 0:
            raise ValueError(
                f"noise_std and clutter must be >= 0, got {self.noise_std!r}, {self.clutter!r}"
            )

    @classmethod
    def preset(cls, difficulty: str = "hard", image_size: int = 128) -> DetectionSpec:
        """The ``'hard'`` (default) or ``'easy'`` spec, pixel sizes scaled to ``image_size``.

        ``'easy'``: 1–4 large (20–44 px at 128) high-contrast, non-overlapping digits, dark on
        a light, mildly textured background, no distractors.
        """
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        scale = image_size / 128
        if difficulty == "hard":
            base = cls()
        else:
            base = cls(
                digits_per_image=(1, 4),
                digit_size=(20.0, 44.0),
                max_overlap_iou=0.0,
                max_covered=0.0,
                overlap_prob=0.0,
                distractors_per_image=(0, 0),
                noise_std=0.02,
                clutter=0.3,
                contrast=(0.6, 0.9),
                invert_prob=0.0,
            )
        lo, hi = base.digit_size
        return replace(base, image_size=image_size, digit_size=(max(4.0, lo * scale), hi * scale))


@dataclass(frozen=True)
class ClassificationSpec:
    """How classification images are drawn. Defaults are the ``'hard'`` preset at 32 px.

    Attributes:
        image_size: side of the square image in px (default 32).
        digit_size: (min, max) height in px of the glyph cell, log-uniform (default (12, 30));
            the cell is placed at a uniformly random position inside the image.
        aspect_jitter: as in :class:`DetectionSpec` (default 0.15).
        distractors_per_image: inclusive (min, max) number of unannotated stroke fragments,
            arcs and blobs drawn under the digit (default (0, 3)).
        noise_std, clutter, contrast, invert_prob, rgb_prob: as in :class:`DetectionSpec`
            (defaults 0.05, 1.0, (0.25, 0.9), 0.5, 0.5).
    """

    image_size: int = 32
    digit_size: tuple[float, float] = (12.0, 30.0)
    aspect_jitter: float = 0.15
    distractors_per_image: tuple[int, int] = (0, 3)
    noise_std: float = 0.05
    clutter: float = 1.0
    contrast: tuple[float, float] = (0.25, 0.9)
    invert_prob: float = 0.5
    rgb_prob: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {self.image_size!r}")
        _check_range("digit_size", self.digit_size, 4, self.image_size)
        _check_range("distractors_per_image", self.distractors_per_image, 0, 1000)
        _check_range("contrast", self.contrast, 1e-3, 1.0)
        if not 0.0 <= self.aspect_jitter < 1.0:
            raise ValueError(f"aspect_jitter must lie in [0, 1), got {self.aspect_jitter!r}")
        for name in ("invert_prob", "rgb_prob"):
            _check_unit(name, getattr(self, name))
        if self.noise_std < 0 or self.clutter < 0:
            raise ValueError(
                f"noise_std and clutter must be >= 0, got {self.noise_std!r}, {self.clutter!r}"
            )

    @classmethod
    def preset(cls, difficulty: str = "hard", image_size: int = 32) -> ClassificationSpec:
        """The ``'hard'`` (default) or ``'easy'`` spec, pixel sizes scaled to ``image_size``."""
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        scale = image_size / 32
        if difficulty == "hard":
            base = cls()
        else:
            base = cls(
                digit_size=(22.0, 30.0),
                distractors_per_image=(0, 0),
                noise_std=0.02,
                clutter=0.3,
                contrast=(0.6, 0.9),
                invert_prob=0.0,
            )
        lo, hi = base.digit_size
        return replace(base, image_size=image_size, digit_size=(max(4.0, lo * scale), hi * scale))


# --------------------------------------------------------------------------------------------
# Digits and pools
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as float32 glyphs in [0, 1], shape (1797, 8, 8), and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    glyphs = (digits.images / 16.0).astype(np.float32)
    glyphs.setflags(write=False)
    labels = digits.target.astype(np.int64)
    labels.setflags(write=False)
    return glyphs, labels


@functools.lru_cache(maxsize=4)
def digit_pools(val_fraction: float = VAL_FRACTION, seed: int = POOL_SEED) -> dict[str, np.ndarray]:
    """Disjoint train/val pools of digit indices into ``load_glyphs()``, stratified by class.

    Each class's indices are shuffled with ``seed`` and the first ``round(n * val_fraction)``
    go to ``'val'``. Both arrays are sorted; together they hold every index exactly once.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    _, labels = load_glyphs()
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in range(len(DIGIT_CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_val = round(len(idx) * val_fraction)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    pools = {"train": np.sort(np.concatenate(train)), "val": np.sort(np.concatenate(val))}
    for arr in pools.values():
        arr.setflags(write=False)
    return pools


def _image_rng(seed: int, kind: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SET_CODES[kind], _SPLIT_CODES[split], index])


# --------------------------------------------------------------------------------------------
# Rendering primitives (all images are float32 in [0, 1], shape (H, W, 3))
# --------------------------------------------------------------------------------------------


def render_glyph(glyph: np.ndarray, height: int, width: int, bicubic: bool) -> np.ndarray:
    """Upsample an 8×8 glyph in [0, 1] to an alpha map of shape (height, width).

    ``alpha = clip((v - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW), 0, 1)`` with ``v`` the
    bilinear/bicubic upsampled glyph; alphas below ``MIN_ALPHA`` are set to 0. If nothing is
    left (a glyph too faint), the ramp is applied to ``v / max(v)`` instead.
    """
    img = Image.fromarray(np.ascontiguousarray(glyph, dtype=np.float32))
    up = np.asarray(img.resize((width, height), resample=_RESAMPLE[int(bicubic)]), dtype=np.float32)
    alpha = np.clip((up - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW), 0.0, 1.0)
    if alpha.max() < MIN_ALPHA and up.max() > 0:
        alpha = np.clip((up / up.max() - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW), 0.0, 1.0)
    alpha[alpha < MIN_ALPHA] = 0.0
    return alpha


def _ink_bounds(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive, of the non-zero pixels of ``alpha``."""
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _background(rng: np.random.Generator, size: int, rgb: bool, clutter: float) -> np.ndarray:
    """A canvas: base level + gradient + low-frequency noise + grating + faint lines."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    base = rng.uniform(0.15, 0.85)
    theta = rng.uniform(0, 2 * np.pi)
    grey = np.full((size, size), base, dtype=np.float32)
    grey += clutter * rng.uniform(0.0, 0.35) * (np.cos(theta) * xx + np.sin(theta) * yy)
    coarse = Image.fromarray(rng.normal(0.0, 1.0, (5, 5)).astype(np.float32))
    low = np.asarray(coarse.resize((size, size), resample=Image.Resampling.BICUBIC))
    grey += clutter * 0.06 * low
    phi = rng.uniform(0, 2 * np.pi)
    freq = rng.uniform(4, 16)
    grey += (
        clutter
        * rng.uniform(0.0, 0.06)
        * np.sin(
            2 * np.pi * freq * (np.cos(phi) * xx + np.sin(phi) * yy) + rng.uniform(0, 2 * np.pi)
        )
    )
    n_lines = int(rng.integers(0, 1 + round(3 * clutter)))
    for _ in range(n_lines):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.4, 0.4)
        dist = np.abs(np.cos(angle) * xx + np.sin(angle) * yy - offset) * size
        width = rng.uniform(0.5, 1.5)
        grey += (
            rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12) * np.clip(width + 0.5 - dist, 0, 1)
        )
    canvas = np.repeat(grey[:, :, None], 3, axis=2)
    if rgb:
        canvas += rng.uniform(-0.15, 0.15, 3).astype(np.float32)
        tint = Image.fromarray(rng.normal(0.0, 1.0, (4, 4)).astype(np.float32))
        canvas[:, :, rng.integers(3)] += (
            clutter
            * 0.05
            * np.asarray(tint.resize((size, size), resample=Image.Resampling.BILINEAR))
        )
    return np.clip(canvas, 0.0, 1.0)


def _ink_color(
    rng: np.random.Generator,
    region: np.ndarray,
    contrast: tuple[float, float],
    invert_prob: float,
    rgb: bool,
) -> np.ndarray:
    """An ink colour differing from the region's mean level by a random contrast.

    Dark ink unless inverted; if the target level leaves [0, 1] the other side is used when it
    has more room, so the effective contrast is at least ``min(contrast[0], 0.5)``.
    """
    level = float(region.mean()) if region.size else 0.5
    c = rng.uniform(*contrast)
    sign = 1.0 if rng.random() < invert_prob else -1.0
    room = 1.0 - level if sign > 0 else level
    if c > room and (1.0 - room) > room:
        sign = -sign
    target = float(np.clip(level + sign * c, 0.0, 1.0))
    color = np.full(3, target, dtype=np.float32)
    if rgb:
        color = np.clip(color + rng.uniform(-0.2, 0.2, 3).astype(np.float32) * min(c, 0.5), 0, 1)
    return color


def _paste(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, color: np.ndarray) -> None:
    """Alpha-blend ``color`` into ``canvas`` at (x, y), clipped to the canvas (in place)."""
    h, w = alpha.shape
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - a
    region += a * color


def _stroke_alpha(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """1–3 digit-like strokes (segments of a polyline or circular arcs) in an (h, w) patch."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    half = max(0.6, 0.07 * min(h, w) * rng.uniform(0.8, 1.4))
    alpha = np.zeros((h, w), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:  # polyline segment
            p = rng.uniform([0, 0], [w, h], size=(2, 2)).astype(np.float32)
            d = p[1] - p[0]
            t = np.clip(
                ((xx - p[0, 0]) * d[0] + (yy - p[0, 1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1
            )
            dist = np.hypot(xx - p[0, 0] - t * d[0], yy - p[0, 1] - t * d[1])
        else:  # arc of a circle spanning 60-220 degrees
            cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
            r = rng.uniform(0.2, 0.45) * min(h, w)
            start, span = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(60, 220))
            ang = np.mod(np.arctan2(yy - cy, xx - cx) - start, 2 * np.pi)
            dist = np.where(ang <= span, np.abs(np.hypot(xx - cx, yy - cy) - r), np.inf)
        alpha = np.maximum(alpha, np.clip(half + 0.5 - dist, 0, 1))
    return alpha


def _fragment_alpha(rng: np.random.Generator, glyph: np.ndarray, h: int, w: int) -> np.ndarray:
    """A rotated or mirrored crop (3–5 of the 8 rows and/or columns) of a real digit.

    Crops that are mostly solid ink (mean > 0.45, they would render as filled blocks) or
    nearly empty are redrawn, up to 10 times.
    """
    for _ in range(10):
        rows, cols = 8, 8
        if rng.random() < 0.7:
            rows = int(rng.integers(3, 6))
        if rows == 8 or rng.random() < 0.4:
            cols = int(rng.integers(3, 6))
        r0, c0 = int(rng.integers(0, 9 - rows)), int(rng.integers(0, 9 - cols))
        piece = glyph[r0 : r0 + rows, c0 : c0 + cols]
        if 0.1 < float(piece.mean()) <= 0.45:
            break
    op = int(rng.integers(1, 8))  # one of the 7 non-identity symmetries of the square
    piece = np.rot90(piece, op % 4)
    if op >= 4:
        piece = piece[:, ::-1]
    ph = max(2, round(h * piece.shape[0] / 8))
    pw = max(2, round(w * piece.shape[1] / 8))
    return render_glyph(piece, ph, pw, bicubic=bool(rng.random() < 0.5))


def _blob_alpha(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A soft ellipse filling part of an (h, w) patch."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    ry, rx = rng.uniform(0.15, 0.45) * h, rng.uniform(0.15, 0.45) * w
    r = np.hypot((xx - w / 2) / max(rx, 0.5), (yy - h / 2) / max(ry, 0.5))
    return np.clip((1.0 - r) * 3.0, 0, 1) * rng.uniform(0.5, 1.0)


def _distractor_alpha(
    rng: np.random.Generator, glyphs: np.ndarray, pool: np.ndarray, h: int, w: int
) -> np.ndarray:
    kind = rng.random()
    if kind < 0.45:
        return _fragment_alpha(rng, glyphs[int(rng.choice(pool))], h, w)
    if kind < 0.9:
        return _stroke_alpha(rng, h, w)
    return _blob_alpha(rng, h, w)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _cell_shape(
    rng: np.random.Generator, size: tuple[float, float], jitter: float, limit: int
) -> tuple[int, int]:
    h = min(limit, max(4, round(_log_uniform(rng, *size))))
    w = min(limit, max(4, round(h * (1.0 + rng.uniform(-jitter, jitter)))))
    return h, w


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU, and the larger of the two covered fractions (intersection / own area), of one
    [x0, y0, x1, y1) box (exclusive ends) against each box of an (N, 4) array."""
    if len(boxes) == 0:
        return np.zeros(0), np.zeros(0)
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter), inter / np.minimum(area, areas)


def _fits(box: np.ndarray, boxes: np.ndarray, spec: DetectionSpec) -> bool:
    """Whether ``box`` respects the spec's IoU and covered-fraction limits against ``boxes``."""
    iou, covered = _overlaps(box, boxes)
    if not len(iou):
        return True
    if spec.max_overlap_iou == 0.0:
        return bool(iou.max() == 0.0)
    return bool(iou.max() <= spec.max_overlap_iou and covered.max() <= spec.max_covered)


def _finish(canvas: np.ndarray, rng: np.random.Generator, noise_std: float) -> np.ndarray:
    if noise_std > 0:
        canvas = canvas + rng.normal(0.0, noise_std, canvas.shape).astype(np.float32)
    return np.round(np.clip(canvas, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------


@dataclass
class DetectionSample:
    """One rendered detection canvas.

    Attributes:
        image: uint8 RGB array (H, W, 3).
        boxes: int64 (N, 4) COCO boxes [x, y, w, h], tight around each digit's ink.
        labels: int64 (N,) digit classes 0–9.
        digit_indices: int64 (N,) indices of the source digits in ``load_glyphs()``.
        masks: bool (N, H, W) ink of each digit (alpha > 0) in canvas coordinates, before
            occlusion by later digits.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    digit_indices: np.ndarray
    masks: np.ndarray = field(repr=False)


def render_detection_sample(
    rng: np.random.Generator, spec: DetectionSpec, pool: np.ndarray
) -> DetectionSample:
    """Draw one detection canvas using only the digits whose indices are in ``pool``."""
    glyphs, labels = load_glyphs()
    size = spec.image_size
    n_digits = int(rng.integers(spec.digits_per_image[0], spec.digits_per_image[1] + 1))

    # 1. Geometry of the digits: glyph alpha, cell origin, ink box [x0, y0, x1, y1).
    digits: list[tuple[int, np.ndarray, int, int]] = []
    ink_boxes = np.zeros((0, 4), dtype=np.int64)
    for _ in range(n_digits):
        index = int(rng.choice(pool))
        h, w = _cell_shape(rng, spec.digit_size, spec.aspect_jitter, size)
        alpha = render_glyph(glyphs[index], h, w, bicubic=bool(rng.random() < 0.5))
        ix0, iy0, ix1, iy1 = _ink_bounds(alpha)
        iw, ih = ix1 - ix0 + 1, iy1 - iy0 + 1
        for _attempt in range(40):
            if len(ink_boxes) and rng.random() < spec.overlap_prob:
                other = ink_boxes[int(rng.integers(len(ink_boxes)))]
                ocx, ocy = (other[0] + other[2]) / 2, (other[1] + other[3]) / 2
                ang = rng.uniform(0, 2 * np.pi)
                reach = rng.uniform(0.45, 0.95)
                cx = ocx + np.cos(ang) * reach * ((other[2] - other[0]) + iw) / 2
                cy = ocy + np.sin(ang) * reach * ((other[3] - other[1]) + ih) / 2
                x = round(cx - iw / 2) - ix0
                y = round(cy - ih / 2) - iy0
                x, y = min(max(x, 0), size - w), min(max(y, 0), size - h)
            else:
                x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = np.array([x + ix0, y + iy0, x + ix1 + 1, y + iy1 + 1])
            if _fits(box, ink_boxes, spec):
                digits.append((index, alpha, x, y))
                ink_boxes = np.vstack([ink_boxes, box[None]])
                break

    # 2. Distractors: not annotated, overlapping digit boxes at most as much as digits do.
    n_distract = int(rng.integers(spec.distractors_per_image[0], spec.distractors_per_image[1] + 1))
    distractors: list[tuple[np.ndarray, int, int]] = []
    for _ in range(n_distract):
        h, w = _cell_shape(rng, spec.digit_size, 0.5, size)
        alpha = _distractor_alpha(rng, glyphs, pool, h, w)
        if not alpha.any():
            continue
        ah, aw = alpha.shape
        for _attempt in range(20):
            x, y = int(rng.integers(0, size - aw + 1)), int(rng.integers(0, size - ah + 1))
            ix0, iy0, ix1, iy1 = _ink_bounds(alpha)
            box = np.array([x + ix0, y + iy0, x + ix1 + 1, y + iy1 + 1])
            if _fits(box, ink_boxes, spec):
                distractors.append((alpha, x, y))
                break

    # 3. Paint: background, distractors, then the digits in placement order.
    rgb = bool(rng.random() < spec.rgb_prob)
    canvas = _background(rng, size, rgb, spec.clutter)
    for alpha, x, y in distractors:
        region = canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]]
        _paste(canvas, alpha, x, y, _ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    masks = np.zeros((len(digits), size, size), dtype=bool)
    for k, (_, alpha, x, y) in enumerate(digits):
        region = canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]]
        _paste(canvas, alpha, x, y, _ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
        masks[k, y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha > 0
    image = _finish(canvas, rng, spec.noise_std)

    boxes = ink_boxes.copy()
    boxes[:, 2:] -= boxes[:, :2]
    indices = np.array([d[0] for d in digits], dtype=np.int64)
    return DetectionSample(image, boxes, labels[indices].astype(np.int64), indices, masks)


def render_classification_sample(
    rng: np.random.Generator, spec: ClassificationSpec, pool: np.ndarray, label: int | None = None
) -> tuple[np.ndarray, int, int]:
    """Draw one classification image: (uint8 RGB image, label, digit index).

    The digit is drawn from ``pool``, restricted to class ``label`` when one is given.
    """
    glyphs, labels = load_glyphs()
    size = spec.image_size
    if label is not None:
        if not 0 <= label < len(DIGIT_CLASSES):
            raise ValueError(f"label must be in 0..{len(DIGIT_CLASSES) - 1}, got {label!r}")
        pool = pool[labels[pool] == label]
    index = int(rng.choice(pool))
    rgb = bool(rng.random() < spec.rgb_prob)
    canvas = _background(rng, size, rgb, spec.clutter)
    n_distract = int(rng.integers(spec.distractors_per_image[0], spec.distractors_per_image[1] + 1))
    for _ in range(n_distract):
        h, w = _cell_shape(rng, (max(4.0, size * 0.3), max(4.0, size * 0.6)), 0.5, size)
        alpha = _distractor_alpha(rng, glyphs, pool, h, w)
        ah, aw = alpha.shape
        x, y = (
            int(rng.integers(-aw // 3, size - 2 * aw // 3 + 1)),
            int(rng.integers(-ah // 3, size - 2 * ah // 3 + 1)),
        )
        region = canvas[max(y, 0) : y + ah, max(x, 0) : x + aw]
        _paste(canvas, alpha, x, y, _ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    h, w = _cell_shape(rng, spec.digit_size, spec.aspect_jitter, size)
    alpha = render_glyph(glyphs[index], h, w, bicubic=bool(rng.random() < 0.5))
    x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    region = canvas[y : y + h, x : x + w]
    _paste(canvas, alpha, x, y, _ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    return _finish(canvas, rng, spec.noise_std), int(labels[index]), index


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).convert("RGB").save(path, format="PNG")


def _prepare_dir(path: Path) -> None:
    """Create ``path`` and remove stale images with this module's naming (``NNNNNN.png``)."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.iterdir():
        if _IMAGE_NAME.match(old.name):
            old.unlink()


def _check_counts(num_train: int, num_val: int) -> None:
    for name, n in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative int, got {n!r}")


def _write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def detection_stats(coco: dict[str, Any]) -> dict[str, float]:
    """Summary numbers of a COCO detection dict: images, boxes, mean digits per image, box
    side (``sqrt(w * h)``) percentiles 5/50/95 in px, and the fraction of boxes having an
    IoU > 0.1 with another box of the same image."""
    boxes_by_image: dict[int, list[list[float]]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        boxes_by_image[ann["image_id"]].append(ann["bbox"])
    sides, overlapped = [], 0
    for boxes in boxes_by_image.values():
        if not boxes:
            continue
        xywh = np.asarray(boxes, dtype=np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        sides.extend(np.sqrt(xywh[:, 2] * xywh[:, 3]).tolist())
        for i in range(len(xyxy)):
            iou, _ = _overlaps(xyxy[i], np.delete(xyxy, i, axis=0))
            overlapped += int(len(iou) > 0 and iou.max() > 0.1)
    n_img, n_box = len(coco["images"]), len(coco["annotations"])
    p5, p50, p95 = np.percentile(sides, [5, 50, 95]) if sides else (0.0, 0.0, 0.0)
    return {
        "images": n_img,
        "boxes": n_box,
        "digits_per_image": n_box / max(n_img, 1),
        "box_side_p5": float(p5),
        "box_side_p50": float(p50),
        "box_side_p95": float(p95),
        "overlap_frac_iou_0.1": overlapped / max(n_box, 1),
    }


def _detection_split(
    root: Path, split: str, num: int, seed: int, spec: DetectionSpec
) -> dict[str, Any]:
    img_dir = root / split
    _prepare_dir(img_dir)
    pool = digit_pools()[split]
    images, annotations = [], []
    for i in range(num):
        sample = render_detection_sample(_image_rng(seed, "det", split, i), spec, pool)
        image_id = i + 1
        file_name = f"{image_id:06d}.png"
        _save_png(sample.image, img_dir / file_name)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": spec.image_size,
                "height": spec.image_size,
            }
        )
        for box, label, index in zip(sample.boxes, sample.labels, sample.digit_indices):
            x, y, w, h = (int(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "digit_index": int(index),
                }
            )
    return {
        "info": {
            "description": f"kd_det handwritten-digit detection set ({split}) from sklearn load_digits",
            "version": "1.0",
            "year": 2025,
            "contributor": "kd_det",
            "url": "",
            "date_created": _DATE,
            "seed": seed,
            "spec": asdict(spec),
        },
        "licenses": [{"id": 1, "name": "BSD-3-Clause (scikit-learn digits)", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": d + 1, "name": name, "supercategory": "digit"}
            for d, name in enumerate(DIGIT_CLASSES)
        ],
    }


def make_detection_set(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    spec: DetectionSpec | None = None,
) -> dict[str, Any]:
    """Write a COCO-format detection set under ``root/det``.

    Layout: ``det/{train,val}/NNNNNN.png`` (RGB) and ``det/annotations/{train,val}.json``;
    stale ``NNNNNN.png`` files in those folders are removed first. Annotations carry an extra
    ``digit_index`` (source digit in ``load_glyphs()``). ``spec`` defaults to
    ``DetectionSpec()`` (the hard preset).

    Returns:
        ``data_root``, ``{train,val}_json``, ``{train,val}_images`` (absolute paths as str),
        ``num_{train,val}_images``, ``num_{train,val}_boxes`` and ``stats`` (per split, see
        :func:`detection_stats`).
    """
    _check_counts(num_train, num_val)
    spec = spec if spec is not None else DetectionSpec()
    if not isinstance(spec, DetectionSpec):
        raise ValueError(f"spec must be a DetectionSpec, got {type(spec).__name__}")
    data_root = Path(root).resolve() / "det"
    (data_root / "annotations").mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"data_root": str(data_root), "stats": {}}
    for split, num in (("train", num_train), ("val", num_val)):
        coco = _detection_split(data_root, split, num, seed, spec)
        ann_file = data_root / "annotations" / f"{split}.json"
        _write_json(coco, ann_file)
        result[f"{split}_json"] = str(ann_file)
        result[f"{split}_images"] = str(data_root / split)
        result[f"num_{split}_images"] = len(coco["images"])
        result[f"num_{split}_boxes"] = len(coco["annotations"])
        result["stats"][split] = detection_stats(coco)
    return result


def make_classification_set(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    spec: ClassificationSpec | None = None,
) -> dict[str, Any]:
    """Write an mmpretrain ``CustomDataset`` classification set under ``root/cls``.

    Layout: ``cls/{train,val}/NNNNNN.png`` (RGB), ``cls/annotations/{train,val}.txt`` with one
    ``NNNNNN.png <label>`` line per image (use ``data_prefix='{split}'``, ``ann_file`` the
    txt, ``metainfo=CLASSIFICATION_METAINFO``); image ``i`` shows digit class ``i % 10``, so
    classes are balanced; and ``cls/annotations/sources.json`` holding
    each split's source digit indices, the seed and the spec. ``spec`` defaults to
    ``ClassificationSpec()`` (the hard preset).

    Returns:
        ``data_root``, ``{train,val}_ann`` and ``{train,val}_images`` (absolute paths as str),
        ``num_{train,val}`` and ``{train,val}_class_counts`` (images per class).
    """
    _check_counts(num_train, num_val)
    spec = spec if spec is not None else ClassificationSpec()
    if not isinstance(spec, ClassificationSpec):
        raise ValueError(f"spec must be a ClassificationSpec, got {type(spec).__name__}")
    data_root = Path(root).resolve() / "cls"
    (data_root / "annotations").mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"data_root": str(data_root)}
    sources: dict[str, Any] = {"seed": seed, "spec": asdict(spec)}
    for split, num in (("train", num_train), ("val", num_val)):
        img_dir = data_root / split
        _prepare_dir(img_dir)
        pool = digit_pools()[split]
        lines, indices, counts = [], [], [0] * len(DIGIT_CLASSES)
        for i in range(num):
            image, label, index = render_classification_sample(
                _image_rng(seed, "cls", split, i), spec, pool, label=i % len(DIGIT_CLASSES)
            )
            file_name = f"{i:06d}.png"
            _save_png(image, img_dir / file_name)
            lines.append(f"{file_name} {label}\n")
            indices.append(index)
            counts[label] += 1
        ann_file = data_root / "annotations" / f"{split}.txt"
        ann_file.write_text("".join(lines))
        sources[split] = indices
        result[f"{split}_ann"] = str(ann_file)
        result[f"{split}_images"] = str(img_dir)
        result[f"num_{split}"] = num
        result[f"{split}_class_counts"] = counts
    _write_json(sources, data_root / "annotations" / "sources.json")
    return result
