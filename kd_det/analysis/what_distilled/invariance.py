"""Invariance to colour jitter: how often a model's prediction survives a colour change.

Each image gets its own random colour jitter, drawn from a generator seeded by the analysis's
seed, the same jittered image for every model. The jitter is torchvision's
``ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)`` (:class:`JitterSpec`):
brightness, contrast and saturation factors ``~ U[1 − s, 1 + s]`` (``s = 0.4``), a hue shift
``~ U[−h, h]`` (``h = 0.2`` of the hue circle), applied in a random order per image, on RGB
values in [0, 1].

Agreement with itself under jitter:

* classifiers: % of images whose top-1 class is unchanged;
* detectors: % of the model's detections on the clean image (score >= 0.3) matched by its
  detections on the jittered image with the same class at IoU >= 0.5 (one-to-one, in decreasing
  score: :func:`~kd_det.analysis.what_distilled.agreement.greedy_matches`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

__all__ = ["JitterParams", "JitterSpec", "color_jitter", "sample_jitter"]

OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass(frozen=True)
class JitterSpec:
    """Jitter strengths: factors ``~ U[max(0, 1 − s), 1 + s]`` for brightness, contrast and
    saturation, hue shift ``~ U[−hue, hue]`` with ``0 <= hue <= 0.5``."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.2

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"jitter {name} must be >= 0, got {value}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"jitter hue must be in [0, 0.5], got {self.hue}")


@dataclass
class JitterParams:
    """Per-image draws: ``factors [n, 3]`` (brightness, contrast, saturation), ``hue [n]``,
    ``order [n, 4]`` (a permutation of the four operations)."""

    factors: Tensor
    hue: Tensor
    order: Tensor

    def __len__(self) -> int:
        return int(self.hue.numel())


def sample_jitter(spec: JitterSpec, n: int, generator: torch.Generator) -> JitterParams:
    """Draw the jitter of ``n`` images from ``generator`` (the same draws for the same seed)."""
    strengths = torch.tensor([spec.brightness, spec.contrast, spec.saturation], dtype=torch.float64)
    low = (1 - strengths).clamp_min(0)
    high = 1 + strengths
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    factors = low + (high - low) * u
    hue = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * spec.hue
    order = (
        torch.stack([torch.randperm(4, generator=generator) for _ in range(n)])
        if n
        else (torch.zeros(0, 4, dtype=torch.long))
    )
    return JitterParams(factors, hue, order)


def color_jitter(pixels: Tensor, params: JitterParams, rgb: bool = True) -> Tensor:
    """Jitter a pixel-unit batch ``[B, 3, H, W]`` (0–255) with one draw per image.

    ``rgb=False``: the channels are in BGR order (an mmcv-loaded image the preprocessor did not
    convert); they are jittered as RGB and returned in BGR order.
    """
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"colour jitter needs [B, 3, H, W] images, got {tuple(pixels.shape)}")
    if len(params) != pixels.shape[0]:
        raise ValueError(f"{len(params)} jitter draws for a batch of {pixels.shape[0]} images")
    images = (pixels / 255.0).clamp(0, 1)
    if not rgb:
        images = images.flip(1)
    out = []
    for i in range(images.shape[0]):
        img = images[i]
        for op in params.order[i].tolist():
            if op == 0:
                img = TF.adjust_brightness(img, float(params.factors[i, 0]))
            elif op == 1:
                img = TF.adjust_contrast(img, float(params.factors[i, 1]))
            elif op == 2:
                img = TF.adjust_saturation(img, float(params.factors[i, 2]))
            else:
                img = TF.adjust_hue(img, float(params.hue[i]))
        out.append(img)
    jittered = torch.stack(out)
    if not rgb:
        jittered = jittered.flip(1)
    return jittered * 255.0
