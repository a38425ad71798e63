"""How the images are drawn: :class:`DetectionSpec` and :class:`ClassificationSpec`, each
validated at construction, with an ``'easy'`` and a ``'hard'`` preset."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

DIFFICULTIES: tuple[str, ...] = ("easy", "hard")


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ValueError(
            f"{name} must be a (min, max) pair with {low} <= min <= max <= {high}, got {value!r}"
        )


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def _check_shared_fields(spec: DetectionSpec | ClassificationSpec, min_image_size: int) -> None:
    """The checks of the fields both specs have (the image and its one-digit rendering)."""
    if not isinstance(spec.image_size, int) or spec.image_size < min_image_size:
        raise ValueError(f"image_size must be an int >= {min_image_size}, got {spec.image_size!r}")
    _check_range("digit_size", spec.digit_size, 4, spec.image_size)
    _check_range("distractors_per_image", spec.distractors_per_image, 0, 1000)
    _check_range("contrast", spec.contrast, 1e-3, 1.0)
    if not 0.0 <= spec.aspect_jitter < 1.0:
        raise ValueError(f"aspect_jitter must lie in [0, 1), got {spec.aspect_jitter!r}")
    for name in ("invert_prob", "rgb_prob"):
        _check_unit(name, getattr(spec, name))
    if spec.noise_std < 0 or spec.clutter < 0:
        raise ValueError(
            f"noise_std and clutter must be >= 0, got {spec.noise_std!r}, {spec.clutter!r}"
        )


_Spec = TypeVar("_Spec", "DetectionSpec", "ClassificationSpec")


def _preset(cls: type[_Spec], difficulty: str, image_size: int, easy: dict[str, Any]) -> _Spec:
    """``cls()`` (``'hard'``) or ``cls(**easy)`` (``'easy'``), its ``digit_size`` scaled by
    ``image_size`` over the default image size (at least 4 px) and drawn at ``image_size``."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    base = cls() if difficulty == "hard" else cls(**easy)
    scale = image_size / base.image_size
    lo, hi = base.digit_size
    return replace(base, image_size=image_size, digit_size=(max(4.0, lo * scale), hi * scale))


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
        _check_shared_fields(self, min_image_size=16)
        _check_range("digits_per_image", self.digits_per_image, 1, 1000)
        if not 0.0 <= self.max_overlap_iou < 1.0:
            raise ValueError(f"max_overlap_iou must lie in [0, 1), got {self.max_overlap_iou!r}")
        for name in ("max_covered", "overlap_prob"):
            _check_unit(name, getattr(self, name))

    @classmethod
    def preset(cls, difficulty: str = "hard", image_size: int = 128) -> DetectionSpec:
        """The ``'hard'`` (default) or ``'easy'`` spec, pixel sizes scaled to ``image_size``.

        ``'easy'``: 1–4 large (20–44 px at 128) high-contrast, non-overlapping digits, dark on
        a light, mildly textured background, no distractors.
        """
        easy = dict(
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
        return _preset(cls, difficulty, image_size, easy)


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
        _check_shared_fields(self, min_image_size=8)

    @classmethod
    def preset(cls, difficulty: str = "hard", image_size: int = 32) -> ClassificationSpec:
        """The ``'hard'`` (default) or ``'easy'`` spec, pixel sizes scaled to ``image_size``."""
        easy = dict(
            digit_size=(22.0, 30.0),
            distractors_per_image=(0, 0),
            noise_std=0.02,
            clutter=0.3,
            contrast=(0.6, 0.9),
            invert_prob=0.0,
        )
        return _preset(cls, difficulty, image_size, easy)
