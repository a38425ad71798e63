"""Whole samples: a detection canvas with its tight boxes and masks, a classification image.

Placement rules: two digit boxes (or a digit box and a distractor) may overlap up to the
spec's IoU and covered-fraction limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .draw import (
    background,
    cell_shape,
    distractor_alpha,
    finish,
    ink_bounds,
    ink_color,
    paste,
    render_glyph,
)
from .glyphs import DIGIT_CLASSES, load_glyphs
from .spec import ClassificationSpec, DetectionSpec


def box_overlaps(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    iou, covered = box_overlaps(box, boxes)
    if not len(iou):
        return True
    if spec.max_overlap_iou == 0.0:
        return bool(iou.max() == 0.0)
    return bool(iou.max() <= spec.max_overlap_iou and covered.max() <= spec.max_covered)


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
        h, w = cell_shape(rng, spec.digit_size, spec.aspect_jitter, size)
        alpha = render_glyph(glyphs[index], h, w, bicubic=bool(rng.random() < 0.5))
        ix0, iy0, ix1, iy1 = ink_bounds(alpha)
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
        h, w = cell_shape(rng, spec.digit_size, 0.5, size)
        alpha = distractor_alpha(rng, glyphs, pool, h, w)
        if not alpha.any():
            continue
        ah, aw = alpha.shape
        for _attempt in range(20):
            x, y = int(rng.integers(0, size - aw + 1)), int(rng.integers(0, size - ah + 1))
            ix0, iy0, ix1, iy1 = ink_bounds(alpha)
            box = np.array([x + ix0, y + iy0, x + ix1 + 1, y + iy1 + 1])
            if _fits(box, ink_boxes, spec):
                distractors.append((alpha, x, y))
                break

    # 3. Paint: background, distractors, then the digits in placement order.
    rgb = bool(rng.random() < spec.rgb_prob)
    canvas = background(rng, size, rgb, spec.clutter)
    for alpha, x, y in distractors:
        region = canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]]
        paste(canvas, alpha, x, y, ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    masks = np.zeros((len(digits), size, size), dtype=bool)
    for k, (_, alpha, x, y) in enumerate(digits):
        region = canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]]
        paste(canvas, alpha, x, y, ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
        masks[k, y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha > 0
    image = finish(canvas, rng, spec.noise_std)

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
    canvas = background(rng, size, rgb, spec.clutter)
    n_distract = int(rng.integers(spec.distractors_per_image[0], spec.distractors_per_image[1] + 1))
    for _ in range(n_distract):
        h, w = cell_shape(rng, (max(4.0, size * 0.3), max(4.0, size * 0.6)), 0.5, size)
        alpha = distractor_alpha(rng, glyphs, pool, h, w)
        ah, aw = alpha.shape
        x, y = (
            int(rng.integers(-aw // 3, size - 2 * aw // 3 + 1)),
            int(rng.integers(-ah // 3, size - 2 * ah // 3 + 1)),
        )
        region = canvas[max(y, 0) : y + ah, max(x, 0) : x + aw]
        paste(canvas, alpha, x, y, ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    h, w = cell_shape(rng, spec.digit_size, spec.aspect_jitter, size)
    alpha = render_glyph(glyphs[index], h, w, bicubic=bool(rng.random() < 0.5))
    x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    region = canvas[y : y + h, x : x + w]
    paste(canvas, alpha, x, y, ink_color(rng, region, spec.contrast, spec.invert_prob, rgb))
    return finish(canvas, rng, spec.noise_std), int(labels[index]), index
