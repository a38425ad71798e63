"""Drawing primitives: glyph alpha maps, cluttered backgrounds, ink colours, distractors.

All canvases are float32 in [0, 1], shape (H, W, 3); alpha maps are float32 (h, w).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Glyph contrast ramp: sklearn's glyphs are 0..16; after scaling to 0..1 and upsampling,
# alpha = clip((v - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW)), and alphas below MIN_ALPHA are set to
# 0 so that the visible digit and its ink mask (alpha > 0) are the same pixels.
RAMP_LOW = 0.15
RAMP_HIGH = 0.6
MIN_ALPHA = 0.1

_RESAMPLE = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


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


def ink_bounds(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive, of the non-zero pixels of ``alpha``."""
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def background(rng: np.random.Generator, size: int, rgb: bool, clutter: float) -> np.ndarray:
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


def ink_color(
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


def paste(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, color: np.ndarray) -> None:
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


def distractor_alpha(
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


def cell_shape(
    rng: np.random.Generator, size: tuple[float, float], jitter: float, limit: int
) -> tuple[int, int]:
    h = min(limit, max(4, round(_log_uniform(rng, *size))))
    w = min(limit, max(4, round(h * (1.0 + rng.uniform(-jitter, jitter)))))
    return h, w


def finish(canvas: np.ndarray, rng: np.random.Generator, noise_std: float) -> np.ndarray:
    if noise_std > 0:
        canvas = canvas + rng.normal(0.0, noise_std, canvas.shape).astype(np.float32)
    return np.round(np.clip(canvas, 0.0, 1.0) * 255.0).astype(np.uint8)
