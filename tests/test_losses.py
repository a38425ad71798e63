"""Tests for kd_det.losses: hand-computed values, loop references, gradients, shapes, safety.

Neither torchdistill nor MMRazor is installed in kd_det's environment (and neither is added for
the tests), so PKD and CWD are checked against their reference formulas written out here with
plain Python numbers or plain torch ops, transcribed from MMRazor's ``PKDLoss`` and
``ChannelWiseDivergence``, independently of kd_det's implementation.
"""

from __future__ import annotations

import math

import pytest
import torch

from kd_det.losses import (
    ChannelWiseDivergence,
    CorrelationLoss,
    CosineFeatureLoss,
    LogitKDLoss,
    LogSumLoss,
    MSEFeatureLoss,
    PKDLoss,
    SigmoidKDLoss,
)
from kd_det.registry import build_kd_module

ALL_LOSSES = [LogitKDLoss, SigmoidKDLoss, MSEFeatureLoss, LogSumLoss, CosineFeatureLoss,
              CorrelationLoss, PKDLoss, ChannelWiseDivergence]  # fmt: skip
MAPS_ONLY = (ChannelWiseDivergence,)  # a softmax over positions needs [B, C, H, W]


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


@pytest.mark.parametrize(
    "cls,shape",
    [
        (cls, shape)
        for cls in ALL_LOSSES
        for shape in [(4, 6), (2, 6, 3, 3)]
        if len(shape) == 4 or cls not in MAPS_ONLY
    ],
)
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
    s, t = _pair((3, 5, 2, 2), seed=3)
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


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _sigmoid_kd_loop(s, t, tau: float, normalize: str, beta: float = 0.0) -> float:
    """Σ BCE(σ(s/τ), σ(t/τ)) · |σ(s/τ) − σ(t/τ)|^β · τ² / Z with plain floats."""
    total = 0.0
    for vs, vt in zip(s.flatten().tolist(), t.flatten().tolist()):
        p, q = _sig(vt / tau), _sig(vs / tau)
        total += -(p * math.log(q) + (1 - p) * math.log(1 - q)) * abs(q - p) ** beta
    if normalize == "mean":
        z = s.numel()
    elif normalize == "num_images":
        z = s.shape[0]
    else:  # teacher_sum: the teacher's confidence at τ = 1, at least 1
        z = max(sum(_sig(v) for v in t.flatten().tolist()), 1.0)
    return tau**2 * total / z


def test_sigmoid_kd_mean_hand_values_unchanged() -> None:
    # 'mean' is the loss as it was before `normalize` existed: the mean BCE over all elements.
    s = torch.tensor([[math.log(3.0)]])  # σ = 3/4
    t = torch.tensor([[0.0]])  # σ = 1/2
    expected = -0.5 * math.log(0.75) - 0.5 * math.log(0.25)
    assert SigmoidKDLoss(normalize="mean")(s, t).item() == pytest.approx(expected, rel=1e-6)
    s2 = torch.tensor([[math.log(3.0), 0.0]])
    t2 = torch.zeros(1, 2)
    # second element: BCE(1/2, 1/2) = log 2; mean of the two
    expected2 = (expected + math.log(2.0)) / 2
    assert SigmoidKDLoss(normalize="mean")(s2, t2).item() == pytest.approx(expected2, rel=1e-6)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_sigmoid_kd_mean_matches_old_formula(tau: float) -> None:
    # The formula of the loss before `normalize`: w · τ² · mean(BCE(σ(s/τ), σ(t/τ))).
    s, t = _pair((2, 3, 2, 2), seed=5)
    got = SigmoidKDLoss(tau=tau, loss_weight=2.0, normalize="mean")(s, t).item()
    assert got == pytest.approx(2.0 * _sigmoid_kd_loop(s, t, tau, "mean"), rel=1e-5)


def test_sigmoid_kd_teacher_sum_hand_values() -> None:
    # Teacher σ = 3/4 on three elements: Z = 2.25; student σ = 1/2: BCE(1/2, 3/4) = log 2 each.
    t = torch.full((1, 3), math.log(3.0))
    s = torch.zeros(1, 3)
    assert SigmoidKDLoss()(s, t).item() == pytest.approx(3 * math.log(2.0) / 2.25, rel=1e-6)
    # Teacher σ = 1/4 on one element: Σσ = 0.25 is clamped to 1, so L = BCE(1/2, 1/4) = log 2.
    t1 = torch.tensor([[-math.log(3.0)]])
    assert SigmoidKDLoss()(torch.zeros(1, 1), t1).item() == pytest.approx(math.log(2.0))


def test_sigmoid_kd_teacher_sum_uses_confidence_at_tau_one() -> None:
    # τ = 2: the target is σ(t/2) but Z is Σσ(t) (the teacher's own confidence).
    t = torch.full((1, 4), 2.0 * math.log(3.0))  # σ(t/2) = 3/4, σ(t) = 9/10
    s = torch.zeros(1, 4)  # σ(s/2) = 1/2
    expected = 4.0 * (4 * math.log(2.0)) / (4 * 0.9)
    assert SigmoidKDLoss(tau=2.0)(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_sigmoid_kd_num_images_hand_value() -> None:
    # B = 2 images, 2 elements each, every element BCE(1/2, 1/2) = log 2: L = 4·log 2 / 2.
    s, t = torch.zeros(2, 2), torch.zeros(2, 2)
    got = SigmoidKDLoss(normalize="num_images")(s, t).item()
    assert got == pytest.approx(2 * math.log(2.0), rel=1e-6)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_sigmoid_kd_beta_hand_value(beta: float) -> None:
    # q = 1/2, p = 3/4: BCE = log 2, |q − p| = 1/4; one element, Σσ(t) = 3/4 → Z = 1.
    s, t = torch.zeros(1, 1), torch.tensor([[math.log(3.0)]])
    expected = math.log(2.0) * 0.25**beta
    assert SigmoidKDLoss(beta=beta)(s, t).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("normalize", ["teacher_sum", "num_images", "mean"])
@pytest.mark.parametrize("tau,beta", [(1.0, 0.0), (2.0, 0.0), (1.0, 1.0), (3.0, 2.0)])
def test_sigmoid_kd_matches_loop(normalize: str, tau: float, beta: float) -> None:
    s, t = _pair((2, 3, 2, 2), seed=6)
    t = t * 3.0  # a confident teacher: Σσ(t) well away from the clamp in both directions
    loss = SigmoidKDLoss(tau=tau, loss_weight=0.5, normalize=normalize, beta=beta)
    expected = 0.5 * _sigmoid_kd_loop(s, t, tau, normalize, beta)
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_sigmoid_kd_normalisers_relate_as_documented() -> None:
    # Same sum, different denominators: mean·numel = num_images·B = teacher_sum·Z.
    s, t = _pair((4, 9, 3, 3), seed=7)
    z = torch.sigmoid(t).sum().clamp_min(1.0)
    total = SigmoidKDLoss(normalize="mean")(s, t) * s.numel()
    torch.testing.assert_close(SigmoidKDLoss(normalize="num_images")(s, t) * 4, total)
    torch.testing.assert_close(SigmoidKDLoss(normalize="teacher_sum")(s, t) * z, total)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_sigmoid_kd_gradient_is_finite_where_student_matches_teacher(beta: float) -> None:
    t = torch.tensor([[-3.0, 0.0, 2.0, 5.0]])
    s = t.clone().requires_grad_(True)
    SigmoidKDLoss(beta=beta)(s, t).backward()
    assert torch.isfinite(s.grad).all()
    # at q = p the BCE's gradient (q − p)/Z and the focal factor's are both 0
    assert s.grad.abs().max().item() == pytest.approx(0.0, abs=1e-7)


def test_sigmoid_kd_beta_gradient_matches_autograd_of_hand_formula() -> None:
    s, t = _pair((2, 5), seed=8)
    s1 = s.clone().requires_grad_(True)
    SigmoidKDLoss(beta=2.0)(s1, t).backward()
    s2 = s.clone().requires_grad_(True)
    q, p = torch.sigmoid(s2), torch.sigmoid(t)
    bce = -(p * torch.log(q) + (1 - p) * torch.log(1 - q))
    ((bce * (q - p).abs() ** 2).sum() / p.sum().clamp_min(1.0)).backward()
    torch.testing.assert_close(s1.grad, s2.grad)


def test_sigmoid_kd_stable_for_saturated_logits() -> None:
    s = torch.tensor([[100.0, -100.0, 80.0]], requires_grad=True)
    t = torch.tensor([[-100.0, 100.0, 80.0]])
    loss = SigmoidKDLoss(normalize="mean")(s, t)
    loss.backward()
    # Two elements are wrong by 100 nats each; the third is right.
    assert loss.item() == pytest.approx(200.0 / 3, rel=1e-4)
    assert torch.isfinite(s.grad).all()
    # teacher_sum: Σσ(t) = 0 + 1 + 1 = 2
    assert SigmoidKDLoss()(s, t).item() == pytest.approx(200.0 / 2, rel=1e-4)


def test_sigmoid_kd_default_acts_on_a_dense_head() -> None:
    # A RetinaNet-like level: 9 anchors × 10 classes × 16 positions, a teacher confident on a
    # handful of elements. The default's gradient is the mean's times numel / Σσ(t).
    g = _gen(9)
    t = torch.full((2, 90, 4, 4), -6.0)
    t[0, 3, 1, 1] = t[1, 47, 2, 3] = 4.0
    s = (t + 0.5 * torch.randn(t.shape, generator=g)).requires_grad_(True)
    SigmoidKDLoss()(s, t).backward()
    g_default = s.grad.clone()
    s.grad = None
    SigmoidKDLoss(normalize="mean")(s, t).backward()
    ratio = s.numel() / torch.sigmoid(t).sum().clamp_min(1.0).item()
    torch.testing.assert_close(g_default, s.grad * ratio)
    assert ratio > 100


def test_sigmoid_kd_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match=r"SigmoidKDLoss: chi=0.5 < 1.*assigner.*chi=1"):
        SigmoidKDLoss(chi=0.5)
    with pytest.raises(ValueError, match=r"SigmoidKDLoss: chi=0.0 < 1"):
        SigmoidKDLoss(chi=0.0)
    with pytest.raises(ValueError, match=r"chi must be 1.*1.5"):
        SigmoidKDLoss(chi=1.5)
    with pytest.raises(ValueError, match=r"normalize must be one of.*'sum'"):
        SigmoidKDLoss(normalize="sum")
    for beta in (0.5, -1.0, float("nan")):
        with pytest.raises(
            ValueError, match=rf"beta must be 0 \(off\) or a number >= 1, got {beta}"
        ):
            SigmoidKDLoss(beta=beta)
    for tau in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"SigmoidKDLoss: tau must be .*> 0, got {tau}"):
            SigmoidKDLoss(tau=tau)
    for weight in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=rf"loss_weight must be .*>= 0, got {weight}"):
            SigmoidKDLoss(loss_weight=weight)
    assert SigmoidKDLoss(chi=1.0).chi == 1.0


# ---------------------------------------------------------------- PKDLoss


def _pkd_loop(s: torch.Tensor, t: torch.Tensor, eps: float = 1e-6) -> float:
    """MMRazor's PKD with plain floats: per channel (x − mean)/(unbiased std + eps), MSE / 2."""

    def standardise(x: torch.Tensor) -> list[list[float]]:
        rows = _rows(x)  # samples × channels
        out = []
        for c in range(x.shape[1]):
            vals = [r[c] for r in rows]
            n = len(vals)
            mean = sum(vals) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
            out.append([(v - mean) / (std + eps) for v in vals])
        return out

    hs, ht = standardise(s), standardise(t)
    sq = [(a - b) ** 2 for cs, ct in zip(hs, ht) for a, b in zip(cs, ct)]
    return sum(sq) / len(sq) / 2


def test_pkd_hand_value() -> None:
    # One channel, values over 3 positions: s = [1, 2, 3] → mean 2, unbiased std 1 → [−1, 0, 1];
    # t = [1, 3, 2] → [−1, 1, 0]. Differences [0, −1, 1]: MSE 2/3, halved 1/3.
    s = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    t = torch.tensor([1.0, 3.0, 2.0]).reshape(1, 1, 1, 3)
    assert PKDLoss(loss_weight=1.0)(s, t).item() == pytest.approx(1 / 3, rel=1e-5)
    assert PKDLoss()(s, t).item() == pytest.approx(10 / 3, rel=1e-5)  # default weight 10


def test_pkd_statistics_run_over_batch_and_positions() -> None:
    # The channel is [0, 0] in image 0 and [6, 6] in image 1: over the batch it is [0, 0, 6, 6]
    # (mean 3, deviations ±3, unbiased variance 36/3 = 12), so ŝ = ±3/√12 and ŝ² = 3/4 — not
    # two constant maps (per-image statistics would give ŝ = 0 and a loss of 0). The teacher
    # has the pattern reversed, so t̂ = −ŝ and (ŝ − t̂)² = 4·3/4 = 3 per element: MSE 3, halved
    # 1.5.
    s = torch.tensor([0.0, 0.0, 6.0, 6.0]).reshape(2, 1, 1, 2)
    t = torch.tensor([6.0, 6.0, 0.0, 0.0]).reshape(2, 1, 1, 2)
    assert PKDLoss(loss_weight=1.0)(s, t).item() == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize("shape", [(6, 4), (2, 5, 3, 2)])
def test_pkd_matches_loop(shape: tuple[int, ...]) -> None:
    s, t = _pair(shape, seed=10)
    s = s * torch.arange(1, shape[1] + 1).reshape(1, -1, *([1] * (len(shape) - 2))) + 3.0
    assert PKDLoss(loss_weight=2.0)(s, t).item() == pytest.approx(2 * _pkd_loop(s, t), rel=1e-5)


def test_pkd_is_one_minus_pearson_correlation() -> None:
    # L = w · (N − 1)/N · (1 − mean_c r_c), r_c the Pearson correlation of channel c.
    s, t = _pair((3, 4, 5, 5), seed=11)
    s = s + 0.7 * t  # correlated
    n = 3 * 5 * 5
    rows_s = s.transpose(0, 1).reshape(4, -1)
    rows_t = t.transpose(0, 1).reshape(4, -1)
    r = torch.stack([torch.corrcoef(torch.stack([a, b]))[0, 1] for a, b in zip(rows_s, rows_t)])
    expected = (n - 1) / n * (1 - r.mean().item())
    assert PKDLoss(loss_weight=1.0)(s, t).item() == pytest.approx(expected, rel=1e-4)


def test_pkd_equals_mse_after_affine_free_batchnorm() -> None:
    # BatchNorm without affine parameters standardises with the biased (1/N) variance, PKD with
    # the unbiased (1/(N − 1)) one: ŝ_PKD = ŝ_BN · √((N − 1)/N), so
    # PKD = (N − 1)/N · MSE(BN(s), BN(t)) / 2 (eps negligible on both sides).
    s, t = _pair((4, 3, 4, 4), seed=12)
    s = 5.0 * s - 2.0
    bn = torch.nn.BatchNorm2d(3, affine=False, track_running_stats=False, eps=1e-12)
    n = 4 * 4 * 4
    expected = (n - 1) / n * torch.mean((bn(s) - bn(t)) ** 2).item() / 2
    assert PKDLoss(loss_weight=1.0)(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_pkd_ignores_channel_scale_and_offset() -> None:
    s, t = _pair((2, 3, 4, 4), seed=13)
    scale = torch.tensor([0.1, 10.0, 3.0]).reshape(1, 3, 1, 1)
    shift = torch.tensor([-5.0, 2.0, 100.0]).reshape(1, 3, 1, 1)
    base = PKDLoss()(s, t)
    torch.testing.assert_close(PKDLoss()(s * scale + shift, t), base, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(PKDLoss()(s, t * scale + shift), base, rtol=1e-4, atol=1e-5)
    x = torch.randn(2, 3, 4, 4, generator=_gen(14))
    assert PKDLoss()(x * scale + shift, x).item() == pytest.approx(0.0, abs=1e-4)


def test_pkd_rejects_bad_input() -> None:
    for weight in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=rf"PKDLoss: loss_weight must be .*>= 0, got {weight}"):
            PKDLoss(loss_weight=weight)
    with pytest.raises(ValueError, match=r"PKDLoss: eps must be .*> 0, got 0.0"):
        PKDLoss(eps=0.0)
    with pytest.raises(ValueError, match=r"PKDLoss: .*at least 2 values per channel"):
        PKDLoss()(torch.randn(1, 4, 1, 1), torch.randn(1, 4, 1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        PKDLoss()(torch.randn(4), torch.randn(4))


# ---------------------------------------------------------------- ChannelWiseDivergence


def _cwd_loop(s: torch.Tensor, t: torch.Tensor, tau: float) -> float:
    """τ² / (C·B) · Σ_{b,c} KL(softmax_positions(t_bc/τ) ‖ softmax_positions(s_bc/τ))."""
    b, c = s.shape[:2]
    total = 0.0
    for i in range(b):
        for k in range(c):
            vs, vt = s[i, k].flatten().tolist(), t[i, k].flatten().tolist()
            zs = sum(math.exp(v / tau) for v in vs)
            zt = sum(math.exp(v / tau) for v in vt)
            for a, bb in zip(vs, vt):
                ps, pt = math.exp(a / tau) / zs, math.exp(bb / tau) / zt
                total += pt * math.log(pt / ps)
    return tau**2 * total / (b * c)


def test_cwd_hand_value() -> None:
    # Channel 0: teacher positions [0, 0] → [1/2, 1/2]; student [0, log 3] → [1/4, 3/4].
    # Channel 1 identical (KL 0). Mean over B·C = 2 maps.
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    s = torch.tensor([[[[0.0, math.log(3.0)]], [[1.0, 2.0]]]])  # [1, 2, 1, 2]
    t = torch.tensor([[[[0.0, 0.0]], [[1.0, 2.0]]]])
    cwd = ChannelWiseDivergence(tau=1.0, loss_weight=1.0)
    assert cwd(s, t).item() == pytest.approx(kl / 2, rel=1e-6)
    assert ChannelWiseDivergence()(s, t).item() == pytest.approx(10 * kl / 2, rel=1e-6)
    # τ = 2: student distribution [1, √3]/(1 + √3), times τ² = 4.
    r3 = math.sqrt(3.0)
    kl2 = sum(0.5 * math.log(0.5 / q) for q in (1 / (1 + r3), r3 / (1 + r3)))
    got = ChannelWiseDivergence(tau=2.0, loss_weight=1.0)(s, t).item()
    assert got == pytest.approx(4 * kl2 / 2, rel=1e-6)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_cwd_matches_loop(tau: float) -> None:
    s, t = _pair((2, 3, 4, 3), seed=15)
    got = ChannelWiseDivergence(tau=tau, loss_weight=0.5)(s, t).item()
    assert got == pytest.approx(0.5 * _cwd_loop(s, t, tau), rel=1e-5)


def test_cwd_matches_mmrazor_formula() -> None:
    # MMRazor's ChannelWiseDivergence, transcribed: softmax over view(-1, W·H), then
    # Σ(p_T·log p_T − p_T·log p_S)·τ², times loss_weight, divided by C·N.
    s, t = _pair((3, 4, 5, 6), seed=16)
    tau, weight = 2.0, 5.0
    n, c, h, w = s.shape
    p_t = torch.softmax(t.reshape(-1, h * w) / tau, dim=1)
    log_t = torch.log_softmax(t.reshape(-1, h * w) / tau, dim=1)
    log_s = torch.log_softmax(s.reshape(-1, h * w) / tau, dim=1)
    expected = weight * torch.sum(p_t * log_t - p_t * log_s) * tau**2 / (c * n)
    torch.testing.assert_close(ChannelWiseDivergence(tau=tau, loss_weight=weight)(s, t), expected)


def test_cwd_zero_when_equal_and_invariant_to_channel_shift() -> None:
    s, t = _pair((2, 3, 4, 4), seed=17)
    assert ChannelWiseDivergence()(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    shift = torch.randn(2, 3, 1, 1, generator=_gen(18)) * 10  # one constant per (image, channel)
    base = ChannelWiseDivergence()(s, t)
    torch.testing.assert_close(ChannelWiseDivergence()(s + shift, t), base, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ChannelWiseDivergence()(s, t - shift), base, rtol=1e-5, atol=1e-5)
    # a scale is not a shift: it sharpens the distribution
    assert ChannelWiseDivergence()(3 * t, t).item() > 1e-3


def test_cwd_rejects_bad_input() -> None:
    for tau in (0.0, -2.0, float("nan")):
        with pytest.raises(
            ValueError, match=rf"ChannelWiseDivergence: tau must be .*> 0, got {tau}"
        ):
            ChannelWiseDivergence(tau=tau)
    for weight in (-1.0, float("nan")):
        with pytest.raises(
            ValueError, match=rf"ChannelWiseDivergence: loss_weight must be .*>= 0, got {weight}"
        ):
            ChannelWiseDivergence(loss_weight=weight)
    with pytest.raises(ValueError, match=r"needs maps \[B, C, H, W\].*\(4, 6\)"):
        ChannelWiseDivergence()(torch.randn(4, 6), torch.randn(4, 6))


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
