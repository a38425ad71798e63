"""Angles between teacher layers seen from the student: the diagnostic of "Revisiting
Intermediate-Layer Matching in Knowledge Distillation: Layer-Selection Strategy Doesn't Matter
(Much)" (Yu, Wen & Mou, arXiv:2502.04499).

For a student hidden state ``s`` and teacher states ``t_1 … t_L`` at the same ``N`` positions
(already in the student's width), the diagnostic is

    A[j, k] = (1/N) Σ_n cos∠(t_j[n] − s[n], t_k[n] − s[n])
            = (1/N) Σ_n ⟨t_j[n] − s[n], t_k[n] − s[n]⟩ / (‖t_j[n] − s[n]‖ ‖t_k[n] − s[n]‖).

Mostly positive off-diagonal entries (acute angles) mean that pulling the student towards any
one teacher layer also pulls it towards the others — the paper's explanation of why the
layer-selection strategy matters little.

Where a teacher state equals the student state the direction is undefined; its unit vector is
taken as zero (norms are clamped at ``eps``), so that position contributes a cosine of 0 to every
entry of its row and column, diagonal included.

:func:`align_feature_maps` turns CNN feature maps ``[B, C, H, W]`` into ``[N, C]`` position
matrices (``N = B·H·W``): teacher maps are resized bilinearly to the student's ``H × W`` and, when
their channel width differs, projected to the student's width by a given module or by a
least-squares linear fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "acute_fraction",
    "align_feature_maps",
    "feature_map_angle_matrix",
    "layer_angle_matrix",
    "lstsq_projection",
    "position_cosines",
]

Projection = Callable[[Tensor], Tensor]


def _unit_directions(student: Tensor, teachers: Sequence[Tensor] | Tensor, eps: float) -> Tensor:
    """Validate shapes and return the unit directions ``(t_j − s)/‖t_j − s‖`` as ``[L, N, D]``."""
    if not isinstance(student, Tensor) or student.dim() != 2:
        shape = tuple(student.shape) if isinstance(student, Tensor) else type(student).__name__
        raise ValueError(f"student must be a [N, D] tensor of N positions, got {shape}")
    if isinstance(teachers, Tensor):
        if teachers.dim() != 3:
            raise ValueError(
                f"teachers as one tensor must be [L, N, D], got {tuple(teachers.shape)}"
            )
        stacked = teachers
    else:
        if len(teachers) == 0:
            raise ValueError("teachers is empty; give at least one [N, D] teacher state")
        for j, t in enumerate(teachers):
            if not isinstance(t, Tensor) or t.shape != student.shape:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(
                    f"teachers[{j}] has shape {shape}, the student {tuple(student.shape)}; "
                    "project and align teacher states to the student's [N, D] first "
                    "(align_feature_maps does this for feature maps)"
                )
        stacked = torch.stack(list(teachers))
    if stacked.shape[1:] != student.shape:
        raise ValueError(
            f"teachers have shape [L, N, D] = {tuple(stacked.shape)}, the student "
            f"{tuple(student.shape)}; N and D must match"
        )
    if student.shape[0] == 0:
        raise ValueError("student has no positions (N = 0)")
    diff = stacked - student.unsqueeze(0)
    return diff / diff.norm(dim=-1, keepdim=True).clamp_min(eps)


def position_cosines(
    student: Tensor, teachers: Sequence[Tensor] | Tensor, eps: float = 1e-12
) -> Tensor:
    """Per-position cosines ``C[n, j, k] = cos∠(t_j[n] − s[n], t_k[n] − s[n])``.

    Args:
        student: ``[N, D]`` student states.
        teachers: ``L`` tensors ``[N, D]`` (or one ``[L, N, D]`` tensor) in the student's width.
        eps: norms below this count as zero (undefined direction → cosine 0).

    Returns:
        ``[N, L, L]`` tensor; its mean over ``n`` is :func:`layer_angle_matrix`.
    """
    u = _unit_directions(student, teachers, eps)
    return torch.einsum("jnd,knd->njk", u, u)


def layer_angle_matrix(
    student: Tensor, teachers: Sequence[Tensor] | Tensor, eps: float = 1e-12
) -> Tensor:
    """``A[j, k] = mean_n cos∠(t_j[n] − s[n], t_k[n] − s[n])``, an ``[L, L]`` matrix.

    Args:
        student: ``[N, D]`` student states.
        teachers: ``L`` tensors ``[N, D]`` (or one ``[L, N, D]`` tensor) in the student's width.
        eps: norms below this count as zero (undefined direction → cosine 0).
    """
    u = _unit_directions(student, teachers, eps)
    return torch.einsum("jnd,knd->jk", u, u) / u.shape[1]


def acute_fraction(cosines: Tensor) -> float:
    """Fraction of off-diagonal angles that are acute (cosine ``> 0``).

    Accepts an ``[L, L]`` matrix from :func:`layer_angle_matrix` (fraction of layer pairs whose
    *mean* cosine is positive) or ``[N, L, L]`` from :func:`position_cosines` (fraction over all
    positions and layer pairs). Right angles (cosine exactly 0, also undefined directions) do not
    count as acute. Needs ``L >= 2``.
    """
    if cosines.dim() not in (2, 3) or cosines.shape[-1] != cosines.shape[-2]:
        raise ValueError(f"cosines must be [L, L] or [N, L, L], got shape {tuple(cosines.shape)}")
    num_layers = cosines.shape[-1]
    if num_layers < 2:
        raise ValueError(
            f"need at least 2 teacher layers for off-diagonal angles, got {num_layers}"
        )
    off = ~torch.eye(num_layers, dtype=torch.bool, device=cosines.device)
    values = cosines[..., off]
    if values.numel() == 0:
        raise ValueError("cosines has no positions (N = 0)")
    return (values > 0).double().mean().item()


def _flatten_positions(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` → ``[B·H·W, C]`` (one row per image position)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def lstsq_projection(source: Tensor, target: Tensor) -> Tensor:
    """Bias-free least-squares map ``W = argmin_W ‖source · W − target‖_F``.

    Args:
        source: ``[N, C_in]`` rows (e.g. teacher positions).
        target: ``[N, C_out]`` rows (the student's positions).

    Returns:
        ``[C_in, C_out]`` matrix, fitted in float64 (minimum-norm solution when ``source`` is
        rank-deficient), returned in ``source``'s dtype.
    """
    if source.dim() != 2 or target.dim() != 2 or source.shape[0] != target.shape[0]:
        raise ValueError(
            f"lstsq_projection needs [N, C_in] and [N, C_out] with the same N, got "
            f"{tuple(source.shape)} and {tuple(target.shape)}"
        )
    a = source.detach().double().cpu()
    b = target.detach().double().cpu()
    sol = torch.linalg.lstsq(a, b, driver="gelsd").solution
    return sol.to(dtype=source.dtype, device=source.device)


def align_feature_maps(
    student: Tensor,
    teachers: Sequence[Tensor],
    projections: Projection | Sequence[Projection | None] | None = None,
    fit: Literal["lstsq"] | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Turn feature maps into aligned ``[N, C]`` position matrices for the angle diagnostic.

    Every teacher map ``[B, C_t, H_t, W_t]`` is resized bilinearly (``align_corners=False``) to
    the student's ``H × W``, then brought to the student's width ``C``:

    * ``projections[j]`` given: applied to the resized map; it must map ``[B, C_t, H, W]`` to
      ``[B, C, H, W]`` (e.g. a 1×1 ``nn.Conv2d`` or a distiller's adapter). One callable applies
      to every teacher.
    * otherwise, with ``fit='lstsq'``: a bias-free linear map fitted by least squares from the
      teacher's positions to the student's (:func:`lstsq_projection`). This is done for every
      teacher without an explicit projection, also those whose width already matches, so all
      teachers are treated alike.
    * otherwise the widths must already match (identity).

    Positions are flattened over batch and space: ``N = B·H·W``. Runs under ``torch.no_grad``.

    Returns:
        ``(s, [t_1, …, t_L])``, each ``[N, C]``.
    """
    if not isinstance(student, Tensor) or student.dim() != 4:
        shape = tuple(student.shape) if isinstance(student, Tensor) else type(student).__name__
        raise ValueError(f"student must be a [B, C, H, W] feature map, got {shape}")
    if isinstance(teachers, Tensor) or len(teachers) == 0:
        raise ValueError("teachers must be a non-empty list of [B, C, H, W] feature maps")
    if fit not in (None, "lstsq"):
        raise ValueError(f"fit must be None or 'lstsq', got {fit!r}")
    num = len(teachers)
    if isinstance(projections, list | tuple | nn.ModuleList):
        per_teacher: list[Projection | None] = list(projections)
        if len(per_teacher) != num:
            raise ValueError(
                f"projections has {len(per_teacher)} entries for {num} teacher maps; give one "
                "per teacher (None where the width already matches), or a single callable"
            )
    elif projections is None or callable(projections):
        per_teacher = [projections] * num
    else:
        raise ValueError(
            f"projections must be None, a callable or a list of them, got {type(projections).__name__}"
        )
    batch, width, height, wid = student.shape
    out: list[Tensor] = []
    with torch.no_grad():
        s_rows = _flatten_positions(student)
        for j, (t, proj) in enumerate(zip(teachers, per_teacher)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[0] != batch:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(
                    f"teachers[{j}] must be a [B, C, H, W] map with B={batch} like the student, "
                    f"got {shape}"
                )
            t = t.to(dtype=student.dtype, device=student.device)
            if t.shape[-2:] != student.shape[-2:]:
                t = F.interpolate(t, size=(height, wid), mode="bilinear", align_corners=False)
            if proj is not None:
                t = proj(t)
                if t.shape != student.shape:
                    raise ValueError(
                        f"projections[{j}] returned shape {tuple(t.shape)}, expected the "
                        f"student's {tuple(student.shape)}"
                    )
                out.append(_flatten_positions(t))
            elif fit == "lstsq":
                rows = _flatten_positions(t)
                out.append(rows @ lstsq_projection(rows, s_rows))
            elif t.shape[1] != width:
                raise ValueError(
                    f"teachers[{j}] has {t.shape[1]} channels, the student {width}: give "
                    "projections[j] (a module mapping [B, C_t, H, W] to [B, C_s, H, W], e.g. "
                    "the distiller's adapter or a 1x1 conv) or fit='lstsq' to fit a linear map"
                )
            else:
                out.append(_flatten_positions(t))
    return s_rows, out


def feature_map_angle_matrix(
    student: Tensor,
    teachers: Sequence[Tensor],
    projections: Projection | Sequence[Projection | None] | None = None,
    fit: Literal["lstsq"] | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """:func:`layer_angle_matrix` for feature maps, aligned by :func:`align_feature_maps`.

    ``A[j, k] = mean over all B·H·W positions of cos∠(t_j − s, t_k − s)`` with ``t_j`` the
    resized (and projected) teacher map ``j``.
    """
    s_rows, t_rows = align_feature_maps(student, teachers, projections=projections, fit=fit)
    return layer_angle_matrix(s_rows, t_rows, eps=eps)
