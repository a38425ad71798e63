"""Fused arithmetic of the distillation losses: value and gradient in one sweep over a map.

Written as a chain of tensor operations, a loss reads and writes its whole input map once per
operation, allocates a map-sized temporary for each, and keeps several of them alive for the
backward pass: ``log Σ |s − t|^α`` as ``sub, abs, clamp, log, mul, logsumexp`` is about eight
passes forward and as many backward, holding four map-sized tensors. The
:class:`torch.autograd.Function` classes here compute the value **and the gradient** in the
forward pass, over the flattened map in chunks of :data:`CHUNK` elements on the CPU (one chunk
on an accelerator): every operation of a chunk runs on data still in cache, the temporaries
are chunk-sized and reused, and the only map-sized tensor is the gradient itself, saved for the
backward pass, which multiplies it in place by the incoming scalar (one pass):

==================  ==========================================  =========================
loss                forward, per chunk                          backward
==================  ==========================================  =========================
squared error       ``d = s − t`` (into the gradient), ``d·d``  ``g ·= 2·grad``
log-sum             pass 1: ``d = s − t`` (into the gradient),  ``g ·= α·grad/(m·S)``
                    ``max |d|``; pass 2: ``x = d/m``, ``Σ x^α``,
                    ``x^(α−1)`` (sign kept)
sigmoid KD          ``p = σ(t)``, ``softplus(z) − p·z`` summed   ``g ·= grad/τ``
                    (softplus without ``log1p``, see
                    :func:`_softplus_sum`), ``σ(z) − p`` (into
                    the gradient)
==================  ==========================================  =========================

Where the input does not need a gradient (``no_grad``, a frozen input) the gradient is not
computed. A second backward through the same graph (``retain_graph=True``) gets a fresh tensor
rescaled from the saved one. Each function equals the composed operations it replaces up to
float rounding and summation order (``tests/test_fused_terms.py`` compares values and gradients
on random inputs and ``gradcheck``\\ s them in float64). They take float tensors of any dtype
and device; the second input is a constant target (no gradient).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["CHUNK", "fused_log_sum_pow_diff", "fused_sigmoid_bce_sum", "fused_squared_error_sum"]

#: elements per chunk on the CPU: 256 KiB of float32, so that a chunk's operations stay in cache
CHUNK = 1 << 16
#: relative weight below which the ``eps`` clamp of the log-sum cannot change a float32 result
_CLAMP_NEGLIGIBLE = 1e-9


def _flat(x: Tensor) -> Tensor:
    return x.detach().reshape(-1)


def _spans(x: Tensor) -> Iterator[slice]:
    """Slices of the flattened ``x``: :data:`CHUNK` elements each on the CPU, one elsewhere."""
    n = x.numel()
    step = CHUNK if x.device.type == "cpu" else max(n, 1)
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


class _GradientInForward(torch.autograd.Function):
    """The backward pass of the functions below: the gradient map ``g`` computed in the forward
    pass, scaled in place by ``grad · ctx.factor``. A second backward (``retain_graph=True``)
    returns a new tensor rescaled from the first one, so a gradient already handed on is never
    written again."""

    @staticmethod
    def _keep(ctx: Any, gradient: Tensor | None, shape: torch.Size, factor: Any) -> None:
        """Keep the flat ``gradient`` (None: no input needs one) for the backward pass, with the
        factor its scale carries beside the incoming ``grad``."""
        ctx.gradient = None if gradient is None else gradient.view(shape)
        ctx.factor, ctx.applied = factor, None

    @staticmethod
    def _scaled(ctx: Any, grad: Tensor) -> Tensor | None:
        if ctx.gradient is None:
            return None
        scale = grad * ctx.factor
        if ctx.applied is None:
            ctx.applied = scale
            return ctx.gradient.mul_(scale)
        if not bool(ctx.applied != 0):
            raise RuntimeError(
                "a second backward through a fused kd_det loss whose first backward was scaled "
                "by 0; recompute the loss instead of retain_graph=True"
            )
        return ctx.gradient * (scale / ctx.applied)


class _SquaredErrorSum(_GradientInForward):
    """``Σ (s − t)²``, gradient ``2 (s − t)`` for ``s`` only."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor) -> Tensor:
        sf, tf = _flat(s), _flat(t)
        needs_grad = ctx.needs_input_grad[0]
        out = torch.empty_like(sf) if needs_grad else None
        total = sf.new_zeros(())
        for span in _spans(sf):
            d = torch.sub(sf[span], tf[span], out=None if out is None else out[span])
            total += torch.dot(d, d)
        _SquaredErrorSum._keep(ctx, out, s.shape, 2.0)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        return _SquaredErrorSum._scaled(ctx, grad), None


class _LogSumPowDiff(_GradientInForward):
    """``L = log Σ_i max(|s_i − t_i|, eps)^α``, gradient for ``s`` only.

    With ``d = s − t``, ``m = max(max_i |d_i|, eps)`` and ``x = d / m`` (so ``|x| ≤ 1`` and no
    power can overflow)::

        L = α · log m + log S,   S = Σ_i max(|x_i|, eps/m)^α
        ∂L/∂s_i = α · sign(x_i) · max(|x_i|, eps/m)^(α−1) / (m · S)   if |d_i| ≥ eps, else 0

    When ``n · (eps/m)^α`` is below ``1e-9`` (``S ≥ 1``, the largest element alone counts 1),
    the clamp changes neither ``S`` nor any gradient by a float32 rounding step and is skipped:
    ``S = ‖x‖_α^α`` and the gradient is ``α · x^(α−1)`` up to the sign. Only a map whose
    differences are all within a few ``eps`` takes the clamped path.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, alpha: float, eps: float) -> Tensor:
        sf, tf = _flat(s), _flat(t)
        d = torch.empty_like(sf)  # s − t, then the gradient
        high = sf.new_zeros(())
        for span in _spans(sf):  # pass 1: the differences and their largest magnitude
            lo, hi = torch.aminmax(torch.sub(sf[span], tf[span], out=d[span]))
            high = torch.maximum(high, torch.maximum(hi, lo.neg()))
        m = high.clamp_min(eps)
        floor = eps / m
        n = sf.numel()
        clamped = sf.device.type != "cpu" or n * (eps / float(m)) ** alpha >= _CLAMP_NEGLIGIBLE
        needs_grad = ctx.needs_input_grad[0]
        total = sf.new_zeros(())
        for span in _spans(sf):  # pass 2: x = d/m, Σ x^α and x^(α−1) in place
            x = d[span].div_(m)
            if clamped:  # exact clamp (also where reading m back would stall an accelerator)
                a = x.abs().clamp_min_(floor)
                total += _power_sum(a, alpha)
                if needs_grad:
                    g = a.pow_(alpha - 1.0).copysign_(x)
                    g.masked_fill_(x.abs() < floor, 0.0)  # |d| < eps: no gradient
                    x.copy_(g)
            else:
                total += _power_sum(x, alpha)
                if needs_grad:
                    _signed_power_(x, alpha - 1.0)
        _LogSumPowDiff._keep(ctx, d if needs_grad else None, s.shape, alpha / (m * total))
        return alpha * torch.log(m) + torch.log(total)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        return _LogSumPowDiff._scaled(ctx, grad), None, None, None


def _power_sum(x: Tensor, alpha: float) -> Tensor:
    """``Σ |x|^α``; for ``α = 4`` as ``‖x²‖₂²`` (vectorised squares, not a ``pow`` per element)."""
    if alpha == 4.0:
        return torch.linalg.vector_norm(x.square(), ord=2).square()
    if alpha == 2.0:
        return torch.linalg.vector_norm(x, ord=2).square()
    return torch.linalg.vector_norm(x, ord=alpha).pow(alpha)


def _signed_power_(x: Tensor, power: float) -> Tensor:
    """``sign(x) · |x|^power`` in place."""
    if float(power).is_integer() and int(power) % 2 == 1:
        return x.pow_(power)  # odd power: the sign comes with it
    return x.copy_(x.abs().pow_(power).copysign_(x))


def _softplus_sum(z: Tensor) -> Tensor:
    """``Σ softplus(z)`` as ``Σ max(z, 0) − Σ log σ(|z|)``.

    ``σ(|z|)`` lies in ``[1/2, 1]``: its log cannot overflow, and each element is off by at
    most the rounding of ``σ(|z|)``, half a float step of 1 (≈ 6e-8 absolute in float32). The
    form needs only ``sigmoid`` and ``log``, which torch's AVX2 and AVX-512 kernels both
    vectorise. ``F.softplus`` goes through ``log1p``, which costs 10 ns an element on torch
    2.14's AVX-512 kernels against 1.4 ns on its AVX2 ones.
    """
    return torch.relu(z).sum() - z.abs().sigmoid_().log_().sum()


class _SigmoidBCESum(_GradientInForward):
    """``Σ BCE(σ(z), σ(u))`` with ``z = s/τ``, ``u = t/τ``, gradient for ``s`` only.

    ``BCE(σ(z), p) = softplus(z) − p·z`` (the stable form of ``−p·log σ(z) −
    (1 − p)·log(1 − σ(z))``) and ``∂/∂s = (σ(z) − p) / τ``. Returns the sum and, as a second
    output without gradient, ``Σ σ(t)`` (the teacher's confidence at ``τ = 1``, the
    ``teacher_sum`` normaliser) when ``teacher_sum`` is set, else 0.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, tau: float, teacher_sum: bool) -> tuple:
        sf, tf = _flat(s), _flat(t)
        needs_grad = ctx.needs_input_grad[0]
        out = torch.empty_like(sf) if needs_grad else None
        total, conf = sf.new_zeros(()), sf.new_zeros(())
        for span in _spans(sf):
            z, u = sf[span], tf[span]
            if tau != 1.0:
                z, u = z / tau, u / tau
            p = torch.sigmoid(u)
            if teacher_sum:
                conf += (p if tau == 1.0 else torch.sigmoid(tf[span])).sum()
            total += _softplus_sum(z) - torch.dot(p, z)
            if out is not None:
                torch.sigmoid(z, out=out[span]).sub_(p)
        _SigmoidBCESum._keep(ctx, out, s.shape, 1.0 / tau)
        ctx.mark_non_differentiable(conf)
        return total, conf

    @staticmethod
    def backward(
        ctx: Any, grad: Tensor, _: Tensor | None
    ) -> tuple[Tensor | None, None, None, None]:
        return _SigmoidBCESum._scaled(ctx, grad), None, None, None


def fused_squared_error_sum(s: Tensor, t: Tensor) -> Tensor:
    """``Σ (s − t)²`` (a scalar) with the gradient for ``s`` computed in the same sweep; see
    :class:`_SquaredErrorSum`. ``t`` is treated as a constant."""
    return _SquaredErrorSum.apply(s, t.detach())


def fused_log_sum_pow_diff(s: Tensor, t: Tensor, alpha: float, eps: float) -> Tensor:
    """``log Σ max(|s − t|, eps)^α`` (a scalar) with the gradient for ``s`` computed in the
    same sweeps; see :class:`_LogSumPowDiff`. ``t`` is treated as a constant."""
    return _LogSumPowDiff.apply(s, t.detach(), float(alpha), float(eps))


def fused_sigmoid_bce_sum(
    s: Tensor, t: Tensor, tau: float, teacher_sum: bool = False
) -> tuple[Tensor, Tensor]:
    """``(Σ BCE(σ(s/τ), σ(t/τ)), Σ σ(t) or 0)``, gradient for ``s`` computed in the same
    sweep; see :class:`_SigmoidBCESum`. ``t`` is treated as a constant."""
    return _SigmoidBCESum.apply(s, t.detach(), float(tau), bool(teacher_sum))
