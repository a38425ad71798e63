"""Linear centred kernel alignment (CKA) between two representations: "Similarity of Neural
Network Representations Revisited" (Kornblith et al., ICML 2019, arXiv:1905.00414), used to
compare corresponding teacher and student layers as in "What Knowledge Gets Distilled in
Knowledge Distillation?" (Ojha et al., NeurIPS 2023, arXiv:2205.16004).

For ``X ∈ R^{N×D1}`` and ``Y ∈ R^{N×D2}`` whose rows are the same ``N`` examples, with columns
centred (``X̃ = X − mean over rows``):

    CKA(X, Y) = ‖Ỹᵀ X̃‖_F² / (‖X̃ᵀ X̃‖_F · ‖Ỹᵀ Ỹ‖_F)
              = ⟨K̃, L̃⟩_F / (‖K̃‖_F ‖L̃‖_F),   K̃ = X̃ X̃ᵀ,  L̃ = Ỹ Ỹᵀ.

It lies in ``[0, 1]``, is 1 for ``X = Y``, and is invariant to orthogonal transforms and
isotropic scaling of either side (not to arbitrary invertible linear maps). With one column each
it is the squared Pearson correlation. The two forms are equal; the cheaper one is used.

Feature maps ``[B, C, H, W]`` are turned into rows in one of two ways (:func:`feature_map_cka`):

* ``mode='sample'`` (default, as in Kornblith et al. 2019): one row per image, the whole map
  flattened — ``[B, C·H·W]``. The two maps may differ in channels and spatial size. Needs a
  batch of several images; compare over a few hundred for a stable value.
* ``mode='location'``: one row per image position — ``[B·H·W, C]``. Compares the per-position
  channel codes; the second map is resized bilinearly to the first's ``H × W``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cka_matrix", "feature_map_cka", "flatten_representation", "linear_cka"]


def _as_rows(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"{name} must be an [N, D] matrix of N examples, got {shape}; flatten feature maps "
            "with flatten_representation or use feature_map_cka"
        )
    return x.double()


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA ``‖Ỹᵀ X̃‖_F² / (‖X̃ᵀ X̃‖_F ‖Ỹᵀ Ỹ‖_F)`` of ``[N, D1]`` and ``[N, D2]``.

    Computed in float64; returns a 0-dim float64 tensor (differentiable). Raises ``ValueError``
    when ``N < 2`` or either side is constant over the examples (CKA undefined).
    """
    xd, yd = _as_rows(x, "x"), _as_rows(y, "y")
    n = xd.shape[0]
    if yd.shape[0] != n:
        raise ValueError(
            f"x and y must have the same number of rows (examples), got {n} and {yd.shape[0]}"
        )
    if n < 2:
        raise ValueError(f"CKA needs at least 2 examples, got N={n}")
    xc = xd - xd.mean(dim=0, keepdim=True)
    yc = yd - yd.mean(dim=0, keepdim=True)
    d1, d2 = xc.shape[1], yc.shape[1]
    if n * n * (d1 + d2) < n * (d1 * d2 + d1 * d1 + d2 * d2):
        k, lg = xc @ xc.T, yc @ yc.T
        num, den_x, den_y = (k * lg).sum(), k.norm(), lg.norm()
    else:
        num = (yc.T @ xc).square().sum()
        den_x, den_y = (xc.T @ xc).norm(), (yc.T @ yc).norm()
    for name, raw, centred in (("x", xd, xc), ("y", yd, yc)):
        # Relative test: centring leaves only rounding noise of a constant representation.
        if centred.norm().item() <= 1e-10 * raw.norm().item():
            raise ValueError(f"CKA is undefined: {name} is constant over the {n} examples")
    return num / (den_x * den_y)


def flatten_representation(x: Tensor, mode: Literal["sample", "location"] = "sample") -> Tensor:
    """Rows for CKA: ``[B, …]`` → ``[B, prod(…)]`` (``'sample'``) or ``[B, C, H, W]`` →
    ``[B·H·W, C]`` (``'location'``). ``[B, D]`` vectors pass through in both modes."""
    if mode not in ("sample", "location"):
        raise ValueError(f"mode must be 'sample' or 'location', got {mode!r}")
    if not isinstance(x, Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"representation must be [B, D] or [B, C, H, W], got {shape}")
    if x.dim() == 2:
        return x
    if mode == "sample":
        return x.reshape(x.shape[0], -1)
    if x.dim() != 4:
        raise ValueError(f"mode='location' needs [B, C, H, W] maps, got {tuple(x.shape)}")
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def feature_map_cka(a: Tensor, b: Tensor, mode: Literal["sample", "location"] = "sample") -> Tensor:
    """Linear CKA of two layers' outputs on the same batch of images.

    ``mode='sample'``: rows are images (``[B, C·H·W]``); ``mode='location'``: rows are image
    positions (``[B·H·W, C]``), ``b`` resized bilinearly to ``a``'s spatial size first.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape[0] != b.shape[0]:
        raise ValueError(
            "a and b must be tensors over the same batch of images, got shapes "
            f"{getattr(a, 'shape', a)} and {getattr(b, 'shape', b)}"
        )
    if mode == "location" and a.dim() == 4 and b.dim() == 4 and a.shape[-2:] != b.shape[-2:]:
        b = F.interpolate(b.double(), size=a.shape[-2:], mode="bilinear", align_corners=False)
    if mode == "location" and (a.dim() == 4) != (b.dim() == 4):
        raise ValueError(
            f"mode='location' needs both maps as [B, C, H, W], got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; use mode='sample' to compare a map with a vector"
        )
    return linear_cka(flatten_representation(a, mode), flatten_representation(b, mode))


def cka_matrix(
    reps_a: Sequence[Tensor],
    reps_b: Sequence[Tensor],
    mode: Literal["sample", "location"] = "sample",
) -> Tensor:
    """``M[i, j] = feature_map_cka(reps_a[i], reps_b[j], mode)`` — layer-by-layer CKA, float64."""
    if len(reps_a) == 0 or len(reps_b) == 0:
        raise ValueError("cka_matrix needs at least one representation on each side")
    with torch.no_grad():
        rows = [torch.stack([feature_map_cka(a, b, mode) for b in reps_b]) for a in reps_a]
    return torch.stack(rows)
