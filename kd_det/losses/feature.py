"""Feature-matching distillation losses and the helpers every kd_det loss shares.

Conventions (all losses in :mod:`kd_det.losses`):

* ``forward(student, teacher)`` takes two tensors of equal shape; the teacher is detached.
* Dimension 1 is the channel (feature or class) dimension; every other position is a sample:
  a ``[B, C]`` batch has ``B`` samples, a ``[B, C, H, W]`` map has ``B·H·W``.
* Everything is computed in float32 whatever the input dtype, and the returned scalar is already
  multiplied by ``loss_weight``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from kd_det.losses._fused import fused_log_sum_pow_diff, fused_squared_error_sum
from kd_det.registry import MODELS, check_number

__all__ = [
    "CorrelationLoss",
    "CosineFeatureLoss",
    "LogSumLoss",
    "MSEFeatureLoss",
    "check_pair",
    "log_sum_pow",
    "to_samples",
]


def check_pair(
    student: Tensor, teacher: Tensor, *, min_ndim: int = 1, name: str = "loss"
) -> tuple[Tensor, Tensor]:
    """Validate a student/teacher pair; return it as float32 with the teacher detached.

    Raises ``ValueError`` when the shapes differ, when a tensor is empty, or when it has fewer
    than ``min_ndim`` dimensions (losses that need a channel dimension ask for 2).
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"{name}: student and teacher must have the same shape, got student "
            f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}; use a projector "
            "(connector) or a resize to align them"
        )
    if student.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected at least {min_ndim} dimensions ([B, C] vectors or [B, C, H, W] "
            f"maps), got shape {tuple(student.shape)}"
        )
    if student.numel() == 0:
        raise ValueError(f"{name}: got empty tensors of shape {tuple(student.shape)}")
    return student.float(), teacher.detach().float()


def to_samples(x: Tensor) -> Tensor:
    """Reshape ``[B, C, *spatial]`` to ``[N, C]``: every (image, location) becomes a row."""
    if x.ndim == 2:
        return x
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def log_sum_pow(x: Tensor, alpha: float, eps: float, extra: float | None = None) -> Tensor:
    """Return ``log(Σ |x|^α [+ extra])`` computed as a log-sum-exp of ``α·log|x|``.

    ``|x|`` is clamped below at ``eps``, so zeros give a finite value and a zero gradient, and
    nothing overflows for large ``α`` or large ``|x|`` (no power is ever formed).
    """
    terms = alpha * x.abs().clamp_min(eps).log().reshape(-1)
    if extra is not None:
        terms = torch.cat([terms, terms.new_tensor([float(extra)]).log()])
    return torch.logsumexp(terms, dim=0)


@MODELS.register_module()
class MSEFeatureLoss(nn.Module):
    """Feature imitation (hint) loss of "FitNets: Hints for Thin Deep Nets" (Romero et al., ICLR
    2015, arXiv:1412.6550).

    ``L = w · mean((s − t)²)`` over all elements, the target a constant (detached). The value
    and the gradient ``2 · w · (s − t) / n`` come from one sweep over the map
    (:func:`kd_det.losses._fused.fused_squared_error_sum`).
    """

    input_kind: ClassVar[str] = "features"

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_number(type(self).__name__, "loss_weight", loss_weight)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return the weighted mean squared difference."""
        s, t = check_pair(student, teacher, name=type(self).__name__)
        return self.loss_weight * fused_squared_error_sum(s, t) / s.numel()


@MODELS.register_module()
class LogSumLoss(nn.Module):
    """Soft-maximum distance of SRD: "Understanding the Role of the Projector in Knowledge
    Distillation" (Miles & Mikolajczyk, AAAI 2024, arXiv:2303.11098).

    ``L = w · log( Σ_{all elements of the batch} |s − t|^α )`` — one log over the whole sum.

    Computed as ``w · logsumexp(α · log max(|s − t|, eps))``: the value and gradient stay finite
    for all-zero or tiny differences and for large ``α`` with large differences. Differences
    below ``eps`` count as ``eps`` and receive no gradient. The gradient of ``log Σ`` is
    normalised by ``Σ``, so its scale does not depend on the feature size.

    The value and its gradient ``w · α · sign(d) · |d|^(α−1) / Σ`` (``d = s − t``) are
    computed together in a few passes over the map, scaled by ``max |d|`` so that no power can
    overflow (:func:`kd_det.losses._fused.fused_log_sum_pow_diff`).

    Args:
        alpha: exponent ``α`` (the paper's best range is 4–5).
        loss_weight: ``w`` (the paper uses 2).
        eps: clamp on ``|s − t|`` before the logarithm.
    """

    input_kind: ClassVar[str] = "features"

    def __init__(self, alpha: float = 4.0, loss_weight: float = 2.0, eps: float = 1e-6) -> None:
        super().__init__()
        name = type(self).__name__
        self.alpha = check_number(name, "alpha", alpha, strict=True)
        self.loss_weight = check_number(name, "loss_weight", loss_weight)
        self.eps = check_number(name, "eps", eps, strict=True)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return ``w · log Σ |s − t|^α``."""
        s, t = check_pair(student, teacher, name=type(self).__name__)
        return self.loss_weight * fused_log_sum_pow_diff(s, t, self.alpha, self.eps)


@MODELS.register_module()
class CosineFeatureLoss(nn.Module):
    """Cosine feature loss along the channel dimension.

    ``L = w · mean_samples(1 − cos(s_n, t_n))`` where ``n`` runs over the rows of ``[B, C]`` or
    over every location of every image of ``[B, C, H, W]``. A sample whose student or teacher
    vector has norm ``≤ eps`` counts as cosine 0 and passes no gradient.
    """

    input_kind: ClassVar[str] = "features"

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        name = type(self).__name__
        self.loss_weight = check_number(name, "loss_weight", loss_weight)
        self.eps = check_number(name, "eps", eps, strict=True)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return the weighted mean of ``1 − cos`` over samples."""
        s, t = check_pair(student, teacher, min_ndim=2, name=type(self).__name__)
        s_norm, t_norm = s.norm(dim=1), t.norm(dim=1)
        valid = (s_norm > self.eps) & (t_norm > self.eps)
        # Masking (rather than clamping the norm) keeps the gradient at a zero vector at 0
        # instead of the ~1/eps a clamped denominator would give.
        denom = torch.where(valid, s_norm * t_norm, torch.ones_like(s_norm))
        cos = torch.where(valid, (s * t).sum(dim=1) / denom, torch.zeros_like(s_norm))
        return self.loss_weight * (1.0 - cos).mean()


@MODELS.register_module()
class CorrelationLoss(nn.Module):
    """Correlation form of SRD's loss (arXiv:2303.11098).

    ``c_d = (1/N) · Σ_n s_nd · t_nd`` over the ``N`` samples (rows of ``[B, C]``, or every
    location of every image of ``[B, C, H, W]``), then
    ``L = w · log( Σ_d |c_d − 1|^α + 1e-5 )``. Intended for normalised (e.g. BatchNorm) features,
    where ``c_d = 1`` means channel ``d`` of student and teacher are perfectly correlated.

    Args:
        alpha: exponent ``α``.
        loss_weight: ``w``.
        eps: clamp on ``|c_d − 1|`` before the logarithm (the ``1e-5`` term dominates there).
    """

    input_kind: ClassVar[str] = "features"
    offset: ClassVar[float] = 1e-5

    def __init__(self, alpha: float = 4.0, loss_weight: float = 2.0, eps: float = 1e-12) -> None:
        super().__init__()
        name = type(self).__name__
        self.alpha = check_number(name, "alpha", alpha, strict=True)
        self.loss_weight = check_number(name, "loss_weight", loss_weight)
        self.eps = check_number(name, "eps", eps, strict=True)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return ``w · log(Σ_d |c_d − 1|^α + 1e-5)``."""
        s, t = check_pair(student, teacher, min_ndim=2, name=type(self).__name__)
        corr = (to_samples(s) * to_samples(t)).mean(dim=0)
        return self.loss_weight * log_sum_pow(corr - 1.0, self.alpha, self.eps, extra=self.offset)
