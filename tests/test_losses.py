"""Tests for kd_det.losses: hand-computed values, loop references, gradients, shapes, safety."""

from __future__ import annotations

import math

import pytest
import torch

from kd_det.losses import (
    CorrelationLoss,
    CosineFeatureLoss,
    LogitKDLoss,
    LogSumLoss,
    MSEFeatureLoss,
    SigmoidKDLoss,
)
from kd_det.registry import build_kd_module

ALL_LOSSES = [LogitKDLoss, SigmoidKDLoss, MSEFeatureLoss, LogSumLoss, CosineFeatureLoss,
              CorrelationLoss]  # fmt: skip


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _rows(x: torch.Tensor) -> list[list[float]]:
    """Samples as plain lists: rows of [B, C] or every (b, h, w) of [B, C, H, W]."""
    if x.ndim == 2:
        return x.tolist()
    b, c, h, w = x.shape
    return [[float(x[i, k, y, z]) for k in range(c)] for i in range(b) for y in range(h)
            for z in range(w)]  # fmt: skip


# ---------------------------------------------------------------- common contract


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_registered_with_input_kind(cls: type) -> None:
    loss = build_kd_module(dict(type=cls.__name__, loss_weight=1.5))
    assert type(loss) is cls
    assert loss.loss_weight == 1.5
    expected = "logits" if cls in (LogitKDLoss, SigmoidKDLoss) else "features"
    assert cls.input_kind == expected


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_shape_mismatch_names_both_shapes(cls: type) -> None:
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 5, 4, 4\)"):
        cls()(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4))


@pytest.mark.parametrize("cls", ALL_LOSSES)
@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 3, 3)])
def test_gradient_reaches_student_only(cls: type, shape: tuple[int, ...]) -> None:
    s, t = _pair(shape, seed=1)
    s.requires_grad_(True)
    t.requires_grad_(True)
    loss = cls()(s, t)
    assert loss.ndim == 0
    loss.backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", ALL_LOSSES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_computed_in_float32(cls: type, dtype: torch.dtype) -> None:
    s, t = _pair((2, 4, 3, 3), seed=2)
    s, t = s.to(dtype), t.to(dtype)
    low = cls()(s, t)
    assert low.dtype == torch.float32
    ref = cls()(s.float(), t.float())
    torch.testing.assert_close(low, ref)


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_loss_weight_scales_linearly(cls: type) -> None:
    s, t = _pair((3, 5), seed=3)
    torch.testing.assert_close(cls(loss_weight=3.0)(s, t), 3.0 * cls(loss_weight=1.0)(s, t))


# ---------------------------------------------------------------- LogitKDLoss


def test_logit_kd_hand_value() -> None:
    s = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    t = torch.zeros(1, 2)  # softmax = [1/2, 1/2]
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert LogitKDLoss()(s, t).item() == pytest.approx(expected, rel=1e-6)
    # τ = 2: student softmax(s/2) = [1, √3]/(1 + √3); multiplied by τ² = 4.
    r3 = math.sqrt(3.0)
    p_s = [1 / (1 + r3), r3 / (1 + r3)]
    expected_t2 = 4 * sum(0.5 * math.log(0.5 / q) for q in p_s)
    assert LogitKDLoss(tau=2.0)(s, t).item() == pytest.approx(expected_t2, rel=1e-6)


def _kl_loop(s: torch.Tensor, t: torch.Tensor, tau: float) -> float:
    total, rows = 0.0, list(zip(_rows(s), _rows(t)))
    for s_row, t_row in rows:
        zs = sum(math.exp(v / tau) for v in s_row)
        zt = sum(math.exp(v / tau) for v in t_row)
        for vs, vt in zip(s_row, t_row):
            ps, pt = math.exp(vs / tau) / zs, math.exp(vt / tau) / zt
            total += pt * math.log(pt / ps)
    return tau**2 * total / len(rows)


@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3, 2)])
@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_logit_kd_matches_loop(shape: tuple[int, ...], tau: float) -> None:
    s, t = _pair(shape, seed=4)
    got = LogitKDLoss(tau=tau, loss_weight=0.5)(s, t).item()
    assert got == pytest.approx(0.5 * _kl_loop(s, t, tau), rel=1e-5)


def test_logit_kd_zero_when_equal_and_rejects_bad_input() -> None:
    x = torch.randn(3, 7)
    assert LogitKDLoss()(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        LogitKDLoss()(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="tau"):
        LogitKDLoss(tau=0.0)


# ---------------------------------------------------------------- SigmoidKDLoss


def test_sigmoid_kd_hand_values() -> None:
    s = torch.tensor([[math.log(3.0)]])  # σ = 3/4
    t = torch.tensor([[0.0]])  # σ = 1/2
    expected = -0.5 * math.log(0.75) - 0.5 * math.log(0.25)
    assert SigmoidKDLoss()(s, t).item() == pytest.approx(expected, rel=1e-6)
    # χ = 0.5, y = 1: target 0.75 = σ(s), so BCE is the entropy of 0.75.
    y = torch.ones(1, 1)
    expected_mixed = -0.75 * math.log(0.75) - 0.25 * math.log(0.25)
    got = SigmoidKDLoss(chi=0.5)(s, t, labels=y).item()
    assert got == pytest.approx(expected_mixed, rel=1e-6)


def _sigmoid_kd_loop(s, t, y, tau: float, chi: float) -> float:
    def sig(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-v))

    vals = []
    for vs, vt, vy in zip(s.flatten().tolist(), t.flatten().tolist(), y.flatten().tolist()):
        p = (1 - chi) * vy + chi * sig(vt / tau)
        q = sig(vs / tau)
        vals.append(-(p * math.log(q) + (1 - p) * math.log(1 - q)))
    return tau**2 * sum(vals) / len(vals)


@pytest.mark.parametrize("tau,chi", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.3), (4.0, 0.0)])
def test_sigmoid_kd_matches_loop(tau: float, chi: float) -> None:
    s, t = _pair((2, 3, 2, 2), seed=5)
    y = (torch.rand(s.shape, generator=_gen(6)) > 0.7).float()
    got = SigmoidKDLoss(tau=tau, chi=chi, loss_weight=2.0)(s, t, labels=y).item()
    assert got == pytest.approx(2.0 * _sigmoid_kd_loop(s, t, y, tau, chi), rel=1e-5)


def test_sigmoid_kd_needs_labels_below_chi_one() -> None:
    s, t = _pair((2, 5), seed=7)
    with pytest.raises(ValueError, match="task loss.*chi=1"):
        SigmoidKDLoss(chi=0.5)(s, t)
    with pytest.raises(ValueError, match="labels must have"):
        SigmoidKDLoss(chi=0.5)(s, t, labels=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SigmoidKDLoss(chi=0.5)(s, t, labels=torch.full((2, 5), 2.0))
    with pytest.raises(ValueError, match="chi"):
        SigmoidKDLoss(chi=1.5)


def test_sigmoid_kd_stable_for_saturated_logits() -> None:
    s = torch.tensor([[100.0, -100.0, 80.0]], requires_grad=True)
    t = torch.tensor([[-100.0, 100.0, 80.0]])
    loss = SigmoidKDLoss()(s, t)
    loss.backward()
    # Two elements are wrong by 100 nats each; the third is right.
    assert loss.item() == pytest.approx(200.0 / 3, rel=1e-4)
    assert torch.isfinite(s.grad).all()


# ---------------------------------------------------------------- MSEFeatureLoss


def test_mse_hand_value() -> None:
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert MSEFeatureLoss()(s, t).item() == pytest.approx((1 + 0 + 4 + 9) / 4)


# ---------------------------------------------------------------- LogSumLoss


def test_log_sum_hand_values() -> None:
    s = torch.tensor([[1.0, -2.0]])
    t = torch.zeros(1, 2)
    assert LogSumLoss()(s, t).item() == pytest.approx(2 * math.log(1 + 16), rel=1e-6)
    assert LogSumLoss(alpha=2.0, loss_weight=1.0)(s, t).item() == pytest.approx(math.log(5))


def test_log_sum_is_one_log_over_the_whole_batch() -> None:
    s, t = _pair((3, 4, 2, 2), seed=8)
    expected = 2.0 * math.log(sum(abs(a - b) ** 4 for a, b in
                                  zip(s.flatten().tolist(), t.flatten().tolist())))  # fmt: skip
    assert LogSumLoss()(s, t).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [4.0, 8.0])
@pytest.mark.parametrize("diff", [0.0, 1e-9, 1e-4, 1e3, 1e6])
def test_log_sum_numerically_safe(alpha: float, diff: float) -> None:
    t = torch.randn(2, 8, 4, 4, generator=_gen(9))
    s = (t + diff).requires_grad_(True)
    loss = LogSumLoss(alpha=alpha)(s, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    if diff >= 1e-4:  # above the clamp: the exact value, 2·(log N + α·log|d|).
        expected = 2.0 * (math.log(t.numel()) + alpha * math.log(diff))
        assert loss.item() == pytest.approx(expected, rel=1e-4)
        assert s.grad.abs().sum() > 0
    else:  # below the clamp: finite constant, no gradient.
        assert s.grad.abs().max() == 0


def test_log_sum_gradient_scale_free_of_size() -> None:
    # d/dx log Σ|d|^α: doubling the number of equal elements halves each gradient, so the
    # summed gradient magnitude does not grow with the feature size.
    def total_grad(n: int) -> float:
        s = torch.ones(1, n, requires_grad=True)
        LogSumLoss()(s, torch.zeros(1, n)).backward()
        return s.grad.sum().item()

    assert total_grad(8) == pytest.approx(total_grad(64), rel=1e-5) == pytest.approx(2 * 4.0)


# ---------------------------------------------------------------- CosineFeatureLoss


def test_cosine_hand_value() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    expected = ((1 - 1 / math.sqrt(2)) + 2.0) / 2
    assert CosineFeatureLoss()(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_cosine_matches_loop_on_maps() -> None:
    s, t = _pair((2, 5, 3, 3), seed=10)
    vals = []
    for a, b in zip(_rows(s), _rows(t)):
        dot = sum(x * y for x, y in zip(a, b))
        vals.append(1 - dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)))
    assert CosineFeatureLoss()(s, t).item() == pytest.approx(sum(vals) / len(vals), rel=1e-5)


def test_cosine_zero_vector_is_safe() -> None:
    s = torch.zeros(2, 3, requires_grad=True)
    loss = CosineFeatureLoss()(s, torch.randn(2, 3))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.equal(s.grad, torch.zeros_like(s))


# ---------------------------------------------------------------- CorrelationLoss


def test_correlation_hand_value() -> None:
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    # c = [(1 + 3)/2, (2 − 4)/2] = [2, −1];  |c − 1| = [1, 2];  1 + 16 = 17.
    assert CorrelationLoss()(s, t).item() == pytest.approx(2 * math.log(17 + 1e-5), rel=1e-6)


def test_correlation_matches_loop_on_maps() -> None:
    s, t = _pair((2, 4, 3, 2), seed=11)
    rows_s, rows_t = _rows(s), _rows(t)
    n = len(rows_s)  # B·H·W samples
    c = [sum(rs[d] * rt[d] for rs, rt in zip(rows_s, rows_t)) / n for d in range(4)]
    expected = 2.0 * math.log(sum(abs(v - 1) ** 4 for v in c) + 1e-5)
    assert CorrelationLoss()(s, t).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_correlation_numerically_safe(scale: float) -> None:
    # scale 1 with s = t = ±1: c = 1 exactly, loss = w·log(1e-5); scale 1e3 with α = 8 would
    # overflow float32 if the powers were formed.
    t = torch.sign(torch.randn(6, 5, generator=_gen(12))) * scale
    s = t.clone().requires_grad_(True)
    loss = CorrelationLoss(alpha=8.0)(s, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    if scale == 1.0:
        assert loss.item() == pytest.approx(2 * math.log(1e-5), rel=1e-5)
    else:
        expected = 2 * math.log(5 * (scale**2 - 1) ** 8 + 1e-5)
        assert loss.item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("cls", [LogSumLoss, CorrelationLoss])
def test_alpha_must_be_positive(cls: type) -> None:
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha=0.0)
