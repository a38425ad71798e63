"""Fused arithmetic of the distillation losses: value and gradient in few passes over a map.

Written as a chain of tensor operations, a loss reads and writes its whole input map once per
operation and keeps several intermediate maps alive for the backward pass: ``log Σ |s − t|^α``
as ``sub, abs, clamp, log, mul, logsumexp`` is about eight passes forward and as many
backward, holding four map-sized tensors. The :class:`torch.autograd.Function` classes here
compute the same value with an analytic gradient, in place where they own the buffer:

==================  =======================================  ===========================
loss                forward passes                           backward passes
==================  =======================================  ===========================
log-sum             ``d = s − t``, ``max |d|``, ``d /= m``,  ``x^(α−1)`` (sign kept), one
                    ``Σ x^α`` (one map saved: ``x``)         scale (two; four for odd α)
sigmoid KD          ``σ(t)``, ``softplus(z)``,               ``σ(z)``, ``− p``, one scale
                    ``− p·z`` in place, one sum (plus the
                    teacher's sum for ``teacher_sum``)
==================  =======================================  ===========================

Both equal the composed operations they replace up to float rounding (``tests/`` compares
values and gradients on random inputs). They take float tensors of any dtype and device.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["fused_log_sum_pow_diff", "fused_sigmoid_bce_sum"]

#: relative weight below which the ``eps`` clamp of the log-sum cannot change a float32 result
_CLAMP_NEGLIGIBLE = 1e-9


class _LogSumPowDiff(torch.autograd.Function):
    """``L = log Σ_i max(|s_i − t_i|, eps)^α``, gradient for ``s`` only.

    With ``d = s − t``, ``m = max(max_i |d_i|, eps)`` and ``x = d / m`` (so ``|x| ≤ 1`` and no
    power can overflow)::

        L = α · log m + log S,   S = Σ_i max(|x_i|, eps/m)^α
        ∂L/∂s_i = α · sign(x_i) · max(|x_i|, eps/m)^(α−1) / (m · S)   if |d_i| ≥ eps, else 0

    When ``n · (eps/m)^α`` is below ``1e-9`` (``S ≥ 1``, the largest element alone counts 1),
    the clamp changes neither ``S`` nor any gradient by a float32 rounding step and is skipped:
    ``S = ‖x‖_α^α`` and the gradient is ``α · x^(α−1)`` up to the sign, in one pass each. Only a
    map whose differences are all within a few ``eps`` takes the clamped path.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, alpha: float, eps: float) -> Tensor:
        x = torch.sub(s, t)
        n = x.numel()
        low, high = torch.aminmax(x)
        m = torch.maximum(high, low.neg()).clamp_min(eps)
        x.div_(m)
        floor = eps / m
        clamped = x.device.type != "cpu" or n * (eps / float(m)) ** alpha >= _CLAMP_NEGLIGIBLE
        if clamped:  # exact clamp (also where reading m back would stall an accelerator)
            a = x.abs().clamp_min_(floor)
            total = _power_sum(a, alpha)
        else:
            a = None
            total = _power_sum(x, alpha)
        ctx.alpha = alpha
        ctx.clamped = clamped
        ctx.save_for_backward(x, a, m, total, floor)
        return alpha * torch.log(m) + torch.log(total)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        x, a, m, total, floor = ctx.saved_tensors
        alpha = ctx.alpha
        scale = grad * alpha / (m * total)
        if ctx.clamped:
            out = a.pow(alpha - 1.0).copysign_(x)
            out.masked_fill_(x.abs() < floor, 0.0)  # |d| < eps: the clamp passes no gradient
        elif float(alpha).is_integer() and int(alpha) % 2 == 0:
            out = x.pow(alpha - 1.0)  # odd power: the sign comes with it
        else:
            out = x.abs().pow_(alpha - 1.0).copysign_(x)
        return out.mul_(scale), None, None, None


def _power_sum(x: Tensor, alpha: float) -> Tensor:
    """``Σ |x|^α``; for ``α = 4`` as ``‖x²‖₂²`` (vectorised squares, not a ``pow`` per element)."""
    if alpha == 4.0:
        return torch.linalg.vector_norm(x.square(), ord=2).square()
    if alpha == 2.0:
        return torch.linalg.vector_norm(x, ord=2).square()
    return torch.linalg.vector_norm(x, ord=alpha).pow(alpha)


def fused_log_sum_pow_diff(s: Tensor, t: Tensor, alpha: float, eps: float) -> Tensor:
    """``log Σ max(|s − t|, eps)^α`` (a scalar) with the gradient for ``s`` in one pass; see
    :class:`_LogSumPowDiff`. ``t`` is treated as a constant."""
    return _LogSumPowDiff.apply(s, t.detach(), float(alpha), float(eps))


class _SigmoidBCESum(torch.autograd.Function):
    """``Σ BCE(σ(z), σ(u))`` with ``z = s/τ``, ``u = t/τ``, gradient for ``s`` only.

    ``BCE(σ(z), p) = softplus(z) − p·z`` (the stable form of ``−p·log σ(z) −
    (1 − p)·log(1 − σ(z))``) and ``∂/∂s = (σ(z) − p) / τ``. Returns the sum and, as a second
    output without gradient, ``Σ σ(t)`` (the teacher's confidence at ``τ = 1``, the
    ``teacher_sum`` normaliser) when ``teacher_sum`` is set, else 0.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, tau: float, teacher_sum: bool) -> tuple:
        if tau == 1.0:
            z, p = s, torch.sigmoid(t)
            conf = p.sum() if teacher_sum else p.new_zeros(())
        else:
            z, p = s / tau, torch.sigmoid(t / tau)
            conf = torch.sigmoid(t).sum() if teacher_sum else p.new_zeros(())
        elementwise = F.softplus(z).addcmul_(p, z, value=-1.0)
        total = elementwise.sum()
        del elementwise
        ctx.tau = tau
        ctx.save_for_backward(z, p)
        ctx.mark_non_differentiable(conf)
        return total, conf

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _: Tensor | None) -> tuple[Tensor, None, None, None]:
        z, p = ctx.saved_tensors
        scale = grad / ctx.tau if ctx.tau != 1.0 else grad
        return torch.sigmoid(z).sub_(p).mul_(scale), None, None, None


def fused_sigmoid_bce_sum(
    s: Tensor, t: Tensor, tau: float, teacher_sum: bool = False
) -> tuple[Tensor, Tensor]:
    """``(Σ BCE(σ(s/τ), σ(t/τ)), Σ σ(t) or 0)``, gradient for ``s``; see
    :class:`_SigmoidBCESum`. ``t`` is treated as a constant."""
    return _SigmoidBCESum.apply(s, t.detach(), float(tau), bool(teacher_sum))
