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
matrices (``N = B·H·W``): teacher maps are resized bilinearly to the student's ``H × W`` and
brought to the student's width.

Bringing a teacher state to the student's space. The distiller learns a bias-free adapter
``W_j`` (``C_t × C_s``) that maps the student to teacher layer ``j``, ``W_j s ≈ t_j``. The teacher
state as the student sees it is the student state nearest ``s`` that the adapter maps closest to
``t_j`` (:func:`adapter_targets`)::

    t̃_j = s + W_j⁺ (t_j − W_j s)        so        t̃_j − s = W_j⁺ (t_j − W_j s)

(``W⁺`` the Moore–Penrose pseudo-inverse; ``t̃_j = W_j⁺ t_j`` when ``W_j`` has full column rank).
``W_j`` is a trained adapter (``adapters=``) or the adapter training converges to on a frozen
student, fitted in the distiller's direction (``fit='adapter'``, :func:`fit_adapter`).

The older ``fit='lstsq'`` regresses each teacher map onto the student itself
(``t̃_j = t_j V_j``, ``V_j = argmin ‖t_j V − s‖``): then ``t̃_j − s`` is minus the residual of
``s`` on ``t_j``, and the residuals of every teacher layer share the part of ``s`` that none of
them explains, so the angles come out acute by construction (independent random teacher maps
give almost only acute angles, see :func:`random_direction_cosines` for the unbiased baseline).
It is kept for comparison only and warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "acute_fraction",
    "adapter_targets",
    "adapter_weight",
    "align_feature_maps",
    "feature_map_angle_matrix",
    "fit_adapter",
    "layer_angle_matrix",
    "lstsq_projection",
    "position_cosines",
    "random_direction_cosines",
]

Projection = Callable[[Tensor], Tensor]
Adapter = Tensor | nn.Module
FIT_MODES = (None, "adapter", "lstsq")
LSTSQ_WARNING = (
    "fit='lstsq' regresses each teacher map onto the student, which makes the angles acute by "
    "construction (the residuals of the student on different teacher maps share the part of "
    "the student none of them explains); use adapters= (trained adapters) or fit='adapter'"
)


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


def adapter_weight(adapter: Adapter, name: str = "adapter") -> Tensor:
    """The ``[C_t, C_s]`` matrix of a bias-free student → teacher adapter.

    Accepts a matrix ``[C_t, C_s]``, a 1×1 conv weight ``[C_t, C_s, 1, 1]``, or a module with such
    a ``weight`` (``kd_det.connectors.LinearProjector``, a bias-free ``nn.Conv2d``/``nn.Linear``;
    a ``ProjectNorm`` connector through its ``projector``).
    """
    if isinstance(adapter, nn.Module):
        inner = getattr(adapter, "projector", None)
        if isinstance(inner, nn.Module):
            adapter = inner
        if getattr(adapter, "bias", None) is not None:
            raise ValueError(f"{name}: {type(adapter).__name__} has a bias; adapters are bias-free")
        weight = getattr(adapter, "weight", None)
        if not isinstance(weight, Tensor):
            raise ValueError(
                f"{name}: {type(adapter).__name__} has no weight tensor; give a [C_t, C_s] matrix, "
                "a 1x1 conv or a LinearProjector"
            )
        adapter = weight
    if not isinstance(adapter, Tensor):
        raise ValueError(f"{name} must be a tensor or a module, got {type(adapter).__name__}")
    w = adapter.detach()
    if w.dim() == 4 and w.shape[2:] == (1, 1):
        w = w[:, :, 0, 0]
    if w.dim() != 2:
        raise ValueError(
            f"{name} must be a [C_t, C_s] matrix or a [C_t, C_s, 1, 1] 1x1 conv weight, got "
            f"shape {tuple(adapter.shape)}"
        )
    return w


def fit_adapter(student: Tensor, teacher: Tensor) -> Tensor:
    """The bias-free adapter training converges to on a frozen student.

    ``W = argmin_W Σ_n ‖W s_n − t_n‖²`` — the distiller's MSE through a student → teacher
    adapter, solved in closed form (:func:`lstsq_projection` of the teacher on the student).

    Args:
        student: ``[N, C_s]`` student positions.
        teacher: ``[N, C_t]`` teacher positions (aligned to the student's).

    Returns:
        ``[C_t, C_s]`` matrix (``W s`` approximates ``t``).
    """
    return lstsq_projection(student, teacher).T


def adapter_targets(student: Tensor, teacher: Tensor, adapter: Adapter) -> Tensor:
    """Teacher states in the student's space through a student → teacher adapter ``W``.

    ``t̃ = s + W⁺ (t − W s)``: the state nearest ``s`` that ``W`` maps closest to ``t``, so the
    direction ``t̃ − s = W⁺ (t − W s)`` is where matching this teacher layer pulls the student
    (the gradient ``−∇_s ‖W s − t‖² = 2 Wᵀ (t − W s)`` in the metric of ``W``). Computed in
    float64.

    Args:
        student: ``[N, C_s]`` student positions.
        teacher: ``[N, C_t]`` teacher positions.
        adapter: ``[C_t, C_s]`` matrix or a module holding one (see :func:`adapter_weight`).

    Returns:
        ``[N, C_s]`` in ``student``'s dtype.
    """
    w = adapter_weight(adapter)
    if student.dim() != 2 or teacher.dim() != 2 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"adapter_targets needs [N, C_s] and [N, C_t] with the same N, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if w.shape != (teacher.shape[1], student.shape[1]):
        raise ValueError(
            f"the adapter is {tuple(w.shape)}, expected [C_t, C_s] = "
            f"{(teacher.shape[1], student.shape[1])} (it maps the student to the teacher)"
        )
    s = student.detach().double()
    w64 = w.double().to(s.device)
    residual = teacher.detach().double().to(s.device) - s @ w64.T
    out = s + residual @ torch.linalg.pinv(w64).T
    return out.to(student.dtype)


def random_direction_cosines(
    num_positions: int,
    num_layers: int,
    dim: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Cosines between independent random directions: the baseline of the diagnostic.

    ``L`` directions per position drawn from an isotropic Gaussian in ``R^dim`` (the student's
    width): their pairwise cosines are symmetric around 0 with spread ``≈ 1/√dim``, so half the
    angles are acute whatever the width. Returns ``[N, L, L]`` like :func:`position_cosines`.
    """
    for name, value, low in (("num_positions", num_positions, 1), ("num_layers", num_layers, 2),
                             ("dim", dim, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"random_direction_cosines: {name} must be an int >= {low}, got {value!r}"
            )
    d = torch.randn(num_layers, num_positions, dim, generator=generator, dtype=torch.float64)
    u = d / d.norm(dim=-1, keepdim=True)
    return torch.einsum("jnd,knd->njk", u, u)


def align_feature_maps(
    student: Tensor,
    teachers: Sequence[Tensor],
    projections: Projection | Sequence[Projection | None] | None = None,
    fit: Literal["adapter", "lstsq"] | None = None,
    adapters: Sequence[Adapter | None] | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Turn feature maps into aligned ``[N, C]`` position matrices for the angle diagnostic.

    Every teacher map ``[B, C_t, H_t, W_t]`` is resized bilinearly (``align_corners=False``) to
    the student's ``H × W``, then brought to the student's width ``C``:

    * ``adapters[j]`` given: a bias-free student → teacher adapter ``W_j`` (``[C_t, C]``, a 1×1
      conv weight or a module holding one, e.g. the distiller's trained ``LinearProjector``);
      the teacher becomes ``t̃_j = s + W_j⁺ (t_j − W_j s)`` (:func:`adapter_targets`).
    * ``projections[j]`` given: applied to the resized map; it must map ``[B, C_t, H, W]`` to
      ``[B, C, H, W]`` (a teacher → student map). One callable applies to every teacher.
    * otherwise, with ``fit='adapter'``: the adapter training converges to on these positions
      (:func:`fit_adapter`), then as ``adapters``. Done for every teacher without an explicit
      adapter or projection, also those whose width already matches.
    * otherwise, with ``fit='lstsq'`` (biased, kept for comparison; warns): a linear map fitted
      from the teacher's positions onto the student's (:func:`lstsq_projection`).
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
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    if fit == "lstsq":
        warnings.warn(LSTSQ_WARNING, stacklevel=2)
    num = len(teachers)
    if adapters is None:
        per_adapter: list[Adapter | None] = [None] * num
    elif isinstance(adapters, Tensor) or len(adapters) != num:
        given = "a tensor" if isinstance(adapters, Tensor) else f"{len(adapters)} entries"
        raise ValueError(
            f"adapters has {given} for {num} teacher maps; give a list with one student -> "
            "teacher adapter per teacher (None where another rule applies)"
        )
    else:
        per_adapter = list(adapters)
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
        for j, (t, proj, adapter) in enumerate(zip(teachers, per_teacher, per_adapter)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[0] != batch:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(
                    f"teachers[{j}] must be a [B, C, H, W] map with B={batch} like the student, "
                    f"got {shape}"
                )
            t = t.to(dtype=student.dtype, device=student.device)
            if t.shape[-2:] != student.shape[-2:]:
                t = F.interpolate(t, size=(height, wid), mode="bilinear", align_corners=False)
            if adapter is not None or (proj is None and fit == "adapter"):
                rows = _flatten_positions(t)
                if adapter is None:
                    adapter = fit_adapter(s_rows, rows)
                try:
                    out.append(
                        adapter_targets(s_rows, rows, adapter_weight(adapter, f"adapters[{j}]"))
                    )
                except ValueError as err:
                    raise ValueError(f"teachers[{j}]: {err}") from None
            elif proj is not None:
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
                    "a 1x1 conv), adapters[j] (the student -> teacher adapter, e.g. the "
                    "distiller's trained projector) or fit='adapter' (not fit='lstsq', which is "
                    "biased towards acute angles)"
                )
            else:
                out.append(_flatten_positions(t))
    return s_rows, out


def feature_map_angle_matrix(
    student: Tensor,
    teachers: Sequence[Tensor],
    projections: Projection | Sequence[Projection | None] | None = None,
    fit: Literal["adapter", "lstsq"] | None = None,
    eps: float = 1e-12,
    adapters: Sequence[Adapter | None] | None = None,
) -> Tensor:
    """:func:`layer_angle_matrix` for feature maps, aligned by :func:`align_feature_maps`.

    ``A[j, k] = mean over all B·H·W positions of cos∠(t_j − s, t_k − s)`` with ``t_j`` the
    resized (and projected) teacher map ``j``.
    """
    if fit == "lstsq":
        warnings.warn(LSTSQ_WARNING, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s_rows, t_rows = align_feature_maps(student, teachers, projections, fit, adapters)
    else:
        s_rows, t_rows = align_feature_maps(student, teachers, projections, fit, adapters)
    return layer_angle_matrix(s_rows, t_rows, eps=eps)
