"""The fused loss arithmetic equals the composed tensor operations it replaced.

Each reference below is the loss as it was computed before :mod:`kd_det.losses._fused` (a
chain of elementwise operations); values and gradients of the fused paths must match it within
float32 rounding on random inputs, including the clamped and saturated corners. The fused
functions are also checked against finite differences in float64 (``gradcheck``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.connectors import AffineFreeBN, ProjectNorm
from kd_det.distillers.term import DistillTerm
from kd_det.losses import LogSumLoss, MSEFeatureLoss, SigmoidKDLoss, _fused
from kd_det.losses._fused import (
    fused_log_sum_pow_diff,
    fused_sigmoid_bce_sum,
    fused_squared_error_sum,
)
from kd_det.losses.feature import log_sum_pow
from tools import bench_losses

REPO = Path(__file__).resolve().parents[1]

# -- the composed references ----------------------------------------------------------------


def reference_mse(s: Tensor, t: Tensor, w: float) -> Tensor:
    return w * (s - t.detach()).pow(2).mean()


def reference_log_sum(s: Tensor, t: Tensor, alpha: float, w: float, eps: float) -> Tensor:
    return w * log_sum_pow(s - t.detach(), alpha, eps)


def reference_sigmoid_kd(s: Tensor, t: Tensor, tau: float, w: float, normalize: str) -> Tensor:
    z = s / tau if tau != 1.0 else s
    with torch.no_grad():
        target = torch.sigmoid(t / tau if tau != 1.0 else t)
        if normalize == "teacher_sum":
            denom = (target if tau == 1.0 else torch.sigmoid(t)).sum().clamp_min(1.0)
        elif normalize == "num_images":
            denom = torch.tensor(float(s.shape[0]) if s.ndim > 1 else 1.0)
        else:
            denom = torch.tensor(float(s.numel()))
    total = F.binary_cross_entropy_with_logits(z, target, reduction="sum")
    return w * tau**2 * total / denom


def value_and_grad(fn, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    leaf = s.detach().clone().requires_grad_(True)
    value = fn(leaf, t)
    (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad


def assert_same(fused, reference, s: Tensor, t: Tensor, rtol: float = 1e-5) -> None:
    v1, g1 = value_and_grad(fused, s, t)
    v2, g2 = value_and_grad(reference, s, t)
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=1e-6)
    scale = g2.abs().max().clamp_min(1e-30)
    torch.testing.assert_close(g1 / scale, g2 / scale, rtol=rtol, atol=1e-5)


def maps(*shape: int, seed: int = 0, spread: float = 1.0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*shape, generator=gen) * spread,
        torch.randn(*shape, generator=gen) * spread,
    )


# -- MSE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 8, 5, 7), (6, 16)])
def test_mse_equals_the_composed_form(shape: tuple[int, ...]) -> None:
    s, t = maps(*shape)
    loss = MSEFeatureLoss(loss_weight=2.0)
    assert_same(loss, lambda a, b: reference_mse(a, b, 2.0), s, t)


# -- log-sum ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [4.0, 5.0, 2.5, 1.0])
@pytest.mark.parametrize("shape", [(2, 8, 6, 5), (5, 12)])
def test_log_sum_equals_the_composed_form(alpha: float, shape: tuple[int, ...]) -> None:
    s, t = maps(*shape, seed=int(alpha * 10))
    loss = LogSumLoss(alpha=alpha, loss_weight=2.0)
    assert_same(loss, lambda a, b: reference_log_sum(a, b, alpha, 2.0, 1e-6), s, t)


def test_log_sum_large_differences_and_exponent_do_not_overflow() -> None:
    s, t = maps(2, 4, 3, 3, spread=1e6)
    loss = LogSumLoss(alpha=9.0, loss_weight=1.0)
    assert_same(loss, lambda a, b: reference_log_sum(a, b, 9.0, 1.0, 1e-6), s, t)
    assert torch.isfinite(loss(s, t))


@pytest.mark.parametrize("alpha", [4.0, 3.0])
def test_log_sum_clamp_below_eps(alpha: float) -> None:
    """Differences within a few eps take the clamped path: zeros and sub-eps differences count
    as eps and pass no gradient, exactly as ``clamp_min`` did."""
    eps = 1e-3
    s, t = maps(3, 4, 5, 5, seed=3, spread=2e-3)
    s[0, 0] = t[0, 0]  # exact zeros
    loss = LogSumLoss(alpha=alpha, loss_weight=2.0, eps=eps)
    v1, g1 = value_and_grad(loss, s, t)
    v2, g2 = value_and_grad(lambda a, b: reference_log_sum(a, b, alpha, 2.0, eps), s, t)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    below = (s - t).abs() < eps
    assert below.any() and (~below).any()
    assert torch.all(g1[below] == 0)
    # all differences below eps: the value is log(n · eps^α), no gradient anywhere
    v, g = value_and_grad(loss, t + 1e-5, t)
    torch.testing.assert_close(v, 2.0 * torch.log(torch.tensor(t.numel() * eps**alpha)))
    assert torch.all(g == 0)


def test_log_sum_clamped_path_equals_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact clamp (taken on accelerators, and on CPU where the clamp can matter) and the
    CPU fast path agree where the clamp cannot matter."""
    s, t = maps(2, 6, 7, 4, seed=5)
    fast = value_and_grad(lambda a, b: fused_log_sum_pow_diff(a, b, 4.0, 1e-6), s, t)
    monkeypatch.setattr(_fused, "_CLAMP_NEGLIGIBLE", 0.0)
    exact = value_and_grad(lambda a, b: fused_log_sum_pow_diff(a, b, 4.0, 1e-6), s, t)
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("clamp_always", [False, True])
@pytest.mark.parametrize("alpha", [4.0, 3.0, 2.5])
def test_log_sum_gradcheck(
    alpha: float, clamp_always: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if clamp_always:
        monkeypatch.setattr(_fused, "_CLAMP_NEGLIGIBLE", 0.0)
    s, t = maps(2, 3, 2, 2, seed=7)
    s, t = s.double().requires_grad_(True), t.double()
    assert torch.autograd.gradcheck(lambda a: fused_log_sum_pow_diff(a, t, alpha, 1e-6), (s,))


# -- sigmoid KD -------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", ["teacher_sum", "num_images", "mean"])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_sigmoid_kd_equals_the_composed_form(tau: float, normalize: str) -> None:
    s, t = maps(2, 18, 5, 6, seed=11, spread=3.0)
    s[0, 0, 0] = 40.0  # saturated logits on both sides
    t[0, 0, 1] = -40.0
    loss = SigmoidKDLoss(tau=tau, loss_weight=1.5, normalize=normalize)
    assert_same(loss, lambda a, b: reference_sigmoid_kd(a, b, tau, 1.5, normalize), s, t)


def test_sigmoid_bce_sum_is_accurate_on_background_and_saturated_logits() -> None:
    # a dense head's logits: mostly background (σ ≈ 0.01), a few saturated both ways
    gen = torch.Generator().manual_seed(3)
    extreme = torch.tensor([-200.0, -40.0, -17.0, 0.0, 17.0, 40.0, 200.0])
    s = torch.cat([torch.randn(200_000, generator=gen) * 2 - 4.6, extreme])
    t = torch.cat([torch.randn(200_000, generator=gen) * 2 - 4.6, extreme.flip(0)])
    total, _ = fused_sigmoid_bce_sum(s, t, 1.0)
    s64, p64 = s.double(), torch.sigmoid(t.double())
    exact = (F.softplus(s64) - p64 * s64).sum()  # float64, through log1p
    assert torch.isfinite(total)
    assert abs(float(total) - float(exact)) <= 1e-6 * float(exact)
    # element by element, the largest rounding error is half a float32 step of 1
    for z in extreme.tolist():
        one, _ = fused_sigmoid_bce_sum(torch.tensor([z]), torch.tensor([-1e4]), 1.0)
        assert abs(
            float(one) - float(F.softplus(torch.tensor(z, dtype=torch.float64)))
        ) <= 6e-8 * max(1, abs(z))


def test_sigmoid_kd_gradient_is_exact_at_zero_logits() -> None:
    s, t = torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    _, grad = value_and_grad(SigmoidKDLoss(normalize="mean"), s, t)
    assert torch.all(grad == 0)


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_sigmoid_bce_gradcheck(tau: float) -> None:
    s, t = maps(2, 4, 3, 2, seed=13, spread=2.0)
    s, t = s.double().requires_grad_(True), t.double()
    assert torch.autograd.gradcheck(lambda a: fused_sigmoid_bce_sum(a, t, tau, True)[0], (s,))
    _, conf = fused_sigmoid_bce_sum(s, t, tau, True)
    torch.testing.assert_close(conf, torch.sigmoid(t).sum())


def test_beta_path_is_unchanged() -> None:
    """``beta > 0`` keeps the composed form (its weighting is not fused)."""
    s, t = maps(2, 6, 3, 3, seed=17)
    loss = SigmoidKDLoss(beta=2.0, normalize="mean")
    z, p = s, torch.sigmoid(t)
    ref = F.binary_cross_entropy_with_logits(z, p, reduction="none") * (z.sigmoid() - p).abs() ** 2
    torch.testing.assert_close(loss(s, t), ref.sum() / s.numel())


# -- chunks, repeated backward, no gradient ---------------------------------------------------

LOSSES = {
    "mse": (lambda: MSEFeatureLoss(loss_weight=2.0), lambda a, b: reference_mse(a, b, 2.0)),
    "log-sum": (lambda: LogSumLoss(alpha=4.0), lambda a, b: reference_log_sum(a, b, 4.0, 2.0, 1e-6)),
    "log-sum-clamped": (
        lambda: LogSumLoss(alpha=3.0, eps=0.3),
        lambda a, b: reference_log_sum(a, b, 3.0, 2.0, 0.3),
    ),
    "sigmoid-kd": (
        lambda: SigmoidKDLoss(tau=2.0, normalize="teacher_sum"),
        lambda a, b: reference_sigmoid_kd(a, b, 2.0, 1.0, "teacher_sum"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_chunked_sweeps_equal_the_composed_form(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Maps of several chunks with a remainder (the CPU path at full size), and a
    non-contiguous input, give the composed values and gradients."""
    monkeypatch.setattr(_fused, "CHUNK", 37)
    make, reference = LOSSES[name]
    s, t = maps(3, 5, 7, 6, seed=23, spread=2.0)  # 630 elements: 17 chunks, the last of 1
    assert_same(make(), reference, s, t)
    s_nc, t_nc = s.transpose(2, 3), t.transpose(2, 3)
    assert not s_nc.is_contiguous()
    assert_same(make(), reference, s_nc, t_nc)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_second_backward_gets_the_same_gradient(name: str) -> None:
    """The gradient is scaled in place by the first backward; a second one through the same
    graph (``retain_graph=True``) gets the same values in a new tensor and leaves the first
    gradient alone."""
    make, _ = LOSSES[name]
    s, t = maps(2, 6, 4, 4, seed=29)
    leaf = s.clone().requires_grad_(True)
    value = 3.0 * make()(leaf * 1.0, t)  # a non-leaf input, as in a network
    (first,) = torch.autograd.grad(value, leaf, retain_graph=True)
    kept = first.clone()
    (second,) = torch.autograd.grad(value, leaf, grad_outputs=torch.tensor(0.5))
    torch.testing.assert_close(second, 0.5 * kept)
    torch.testing.assert_close(first, kept)


def test_no_gradient_is_computed_without_grad() -> None:
    s, t = maps(2, 6, 4, 4, seed=31)
    with torch.no_grad():
        value = fused_squared_error_sum(s.requires_grad_(True), t)
    assert value.grad_fn is None
    torch.testing.assert_close(value, (s.detach() - t).pow(2).sum())
    frozen, _ = fused_sigmoid_bce_sum(s.detach(), t, 1.0)  # an input without requires_grad
    assert frozen.grad_fn is None


def test_squared_error_gradcheck() -> None:
    s, t = maps(2, 3, 2, 2, seed=37)
    s, t = s.double().requires_grad_(True), t.double()
    assert torch.autograd.gradcheck(lambda a: fused_squared_error_sum(a, t), (s,))


# -- a whole term -----------------------------------------------------------------------------


def test_srd_term_equals_the_composed_form() -> None:
    """An SRD term (1x1 projector, affine-free BN, log-sum) on three levels: the loss and the
    gradients of the student features and of the projectors match the composed loss."""
    shapes_s = [(4, 8, 8, 8), (4, 8, 4, 4), (4, 8, 2, 2)]
    shapes_t = [(4, 24, 8, 8), (4, 24, 4, 4), (4, 24, 2, 2)]
    labels = ["p3", "p4", "p5"]
    term = DistillTerm(
        "fpn", labels, labels, shapes_s, shapes_t,
        loss=dict(type="LogSumLoss", alpha=4.0, loss_weight=2.0),
        connector=dict(
            type="ProjectNorm", projector=dict(type="LinearProjector"),
            norm=dict(type="AffineFreeBN"),
        ),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    feats_s = [torch.randn(*sh, generator=gen).requires_grad_(True) for sh in shapes_s]
    feats_t = [torch.randn(*sh, generator=gen) for sh in shapes_t]

    def run(loss_fn) -> tuple[Tensor, list[Tensor]]:
        total = sum(loss_fn(*conn(s, t)) for conn, s, t in zip(term.connectors, feats_s, feats_t))
        params = list(term.parameters()) + feats_s
        return total.detach(), list(torch.autograd.grad(total, params))

    fused = run(term.loss)
    reference = run(lambda a, b: reference_log_sum(a, b, 4.0, 2.0, 1e-6))
    torch.testing.assert_close(term(feats_s, feats_t).detach(), fused[0])
    torch.testing.assert_close(fused[0], reference[0], rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(fused[1], reference[1], strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


# -- connectors -------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial, shape", [(True, (4, 6, 5, 3)), (False, (7, 6))])
def test_affine_free_bn_equals_batchnorm(spatial: bool, shape: tuple[int, ...]) -> None:
    norm = AffineFreeBN(6, spatial)
    reference = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(
        6, eps=1e-4, affine=False, track_running_stats=False
    )
    x, _ = maps(*shape, seed=19)
    assert_same(
        lambda a, _b: norm(a).pow(2).mul(x).sum(),
        lambda a, _b: reference(a).pow(2).mul(x).sum(),
        x,
        x,
    )
    with pytest.raises(ValueError, match="expected 4D input"):
        AffineFreeBN(6, True)(torch.zeros(2, 6, 3))


def test_project_norm_identity_parts_pass_features_through() -> None:
    conn = ProjectNorm(5, 5, True)
    s, t = maps(2, 5, 3, 3)
    out_s, out_t = conn(s, t)
    assert out_s is s and out_t is t
    conn = ProjectNorm(5, 7, True, projector=dict(type="LinearProjector"))
    t7 = torch.randn(2, 7, 3, 3)
    out_s, out_t = conn(s, t7)
    torch.testing.assert_close(out_s, F.conv2d(s, conn.projector.weight))
    assert out_t is t7


# -- tools/bench_losses.py --------------------------------------------------------------------


@pytest.mark.slow  # three torch.compile runs: about 20 s of compiling on 2 cores
def test_bench_losses_compiles_the_composed_chain_and_times_the_compile_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_losses.main(["--size", "digits", "--reps", "1", "--compile"]) == 0
    out = capsys.readouterr().out
    head = (
        "| loss | composed ms | compiled ms | kd_det ms | kd_det / composed | kd_det / compiled |"
    )
    assert f"{head} first compiled call, s |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms" not in line]
    assert len(rows) == 3
    for row in rows:
        cells = [float(c) for c in row.strip("| ").split(" | ")[1:]]
        assert len(cells) == 6 and all(c > 0 for c in cells)


def test_bench_losses_times_every_form(capsys: pytest.CaptureFixture[str]) -> None:
    previous = REPO / "kd_det" / "losses" / "_fused.py"
    assert bench_losses.main(["--size", "digits", "--reps", "1", "--previous", str(previous)]) == 0
    out = capsys.readouterr().out
    assert (
        "| loss | composed ms | previous ms | kd_det ms | kd_det / composed | kd_det / previous |"
        in out
    )
    for name in ("MSE", "log-sum, α 4", "sigmoid KD, teacher_sum"):
        assert f"| {name} |" in out
    with pytest.raises(SystemExit, match="--previous: no file"):
        bench_losses.main(["--size", "digits", "--previous", str(REPO / "missing.py")])
    with pytest.raises(SystemExit):
        bench_losses.main(["--step", "configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py"])
    assert "--step compares with --previous" in capsys.readouterr().err
    for option, message in (("--reps", "--reps must be >= 1, got 0"),
                            ("--threads", "--threads must be >= 1, got 0")):  # fmt: skip
        with pytest.raises(SystemExit):
            bench_losses.main(["--size", "digits", option, "0"])
        assert message in capsys.readouterr().err
