"""Tests for kd_det.connectors: projectors, parameter-free norms and FeatureConnector."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kd_det.connectors import NORM_KINDS, FeatureConnector, build_norm, build_projector
from kd_det.losses import LogSumLoss
from kd_det.registry import build_kd_module


def _x(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3.0 + 1.5


SPATIAL_CASES = [(True, (2, 6, 5, 4)), (False, (8, 6))]


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
@pytest.mark.parametrize("projector", ["linear", "mlp"])
@pytest.mark.parametrize("norm", NORM_KINDS)
def test_output_shapes(spatial: bool, shape: tuple[int, ...], projector: str, norm: str) -> None:
    conn = FeatureConnector(6, 10, spatial, projector=projector, norm=norm, hidden_channels=7)
    out = conn(_x(shape))
    assert out.shape == (shape[0], 10, *shape[2:])
    assert torch.isfinite(out).all()


def test_linear_projector_is_bias_free_1x1_or_linear() -> None:
    conv = build_projector("linear", 6, 10, spatial=True)
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.bias is None
    lin = build_projector("linear", 6, 10, spatial=False)
    assert isinstance(lin, nn.Linear) and lin.bias is None
    # A 1×1 conv is the same linear map applied at every location.
    x = _x((2, 6, 3, 3))
    expected = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)
    torch.testing.assert_close(conv(x), expected)


def test_mlp_projector_layers_and_hidden_required() -> None:
    mlp = build_projector("mlp", 6, 10, spatial=True, hidden_channels=16)
    kinds = [type(m) for m in mlp]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert mlp[0].out_channels == 16 and mlp[3].out_channels == 10
    mlp1d = build_projector("mlp", 6, 10, spatial=False, hidden_channels=16)
    assert [type(m) for m in mlp1d] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    with pytest.raises(ValueError, match="hidden_channels"):
        build_projector("mlp", 6, 10, spatial=True)


def test_identity_projector_width_mismatch_errors() -> None:
    assert isinstance(build_projector("identity", 6, 6, spatial=True), nn.Identity)
    with pytest.raises(ValueError, match=r"differ.*6 -> 10.*'linear'"):
        build_projector("identity", 6, 10, spatial=True)
    with pytest.raises(ValueError, match="differ"):
        FeatureConnector(6, 10, spatial=False)


def test_unknown_kinds_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="conv1x1.*identity, linear, mlp"):
        build_projector("conv1x1", 6, 10, spatial=True)
    with pytest.raises(ValueError, match="groupnorm.*batchnorm, layernorm, l2, none"):
        build_norm("groupnorm", 6, spatial=True)
    with pytest.raises(ValueError, match="valid kinds"):
        FeatureConnector(6, 6, True, norm="bn")
    with pytest.raises(ValueError, match="positive int"):
        build_projector("linear", 0, 10, spatial=True)


@pytest.mark.parametrize("kind", NORM_KINDS)
@pytest.mark.parametrize("spatial", [True, False])
def test_norms_have_no_learnable_parameters_or_state(kind: str, spatial: bool) -> None:
    norm = build_norm(kind, 6, spatial)
    assert list(norm.parameters()) == []
    assert list(norm.buffers()) == []


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_uses_batch_statistics(
    spatial: bool, shape: tuple[int, ...], train: bool
) -> None:
    norm = build_norm("batchnorm", 6, spatial).train(train)
    x = _x(shape, seed=1)
    dims = [0, 2, 3] if spatial else [0]
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-4)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    # Calling it again on shifted data in eval mode still normalises with the new batch.
    torch.testing.assert_close(norm(x + 100.0), expected, rtol=1e-4, atol=1e-4)


def test_layernorm_normalises_each_location_over_channels() -> None:
    norm = build_norm("layernorm", 6, spatial=True)
    x = _x((2, 6, 3, 4), seed=2)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + 1e-5))
    v = _x((5, 6), seed=3)
    ref = (v - v.mean(1, keepdim=True)) / torch.sqrt(v.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(build_norm("layernorm", 6, spatial=False)(v), ref)


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
def test_l2_and_none(spatial: bool, shape: tuple[int, ...]) -> None:
    x = _x(shape, seed=4)
    y = build_norm("l2", 6, spatial)(x)
    torch.testing.assert_close(y.norm(dim=1), torch.ones_like(y.norm(dim=1)))
    torch.testing.assert_close(y * x.norm(dim=1, keepdim=True), x)
    assert build_norm("none", 6, spatial)(x) is x


def test_connector_is_norm_of_projector() -> None:
    conn = FeatureConnector(6, 10, True, projector="linear", norm="batchnorm")
    x = _x((2, 6, 3, 3), seed=5)
    torch.testing.assert_close(conn(x), conn.norm(conn.projector(x)))
    assert list(conn.norm.parameters()) == []
    assert [p.shape for p in conn.parameters()] == [torch.Size([10, 6, 1, 1])]


def test_connector_rejects_wrong_input() -> None:
    conn = FeatureConnector(6, 10, True, projector="linear")
    with pytest.raises(ValueError, match=r"C=6.*\(2, 5, 3, 3\)"):
        conn(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        conn(torch.randn(2, 6))


@pytest.mark.parametrize("spatial,s_shape,t_shape", [
    (True, (2, 6, 4, 4), (2, 10, 4, 4)),
    (False, (8, 6), (8, 10)),
])  # fmt: skip
def test_projector_trained_through_log_sum_loss(spatial, s_shape, t_shape) -> None:
    student_conn = FeatureConnector(6, 10, spatial, projector="linear", norm="batchnorm")
    teacher_conn = FeatureConnector(10, 10, spatial, projector="identity", norm="batchnorm")
    s = _x(s_shape, seed=6).requires_grad_(True)
    t = _x(t_shape, seed=7).requires_grad_(True)
    loss = LogSumLoss()(student_conn(s), teacher_conn(t))
    loss.backward()
    grad = student_conn.projector.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert s.grad is not None and t.grad is None
    # A few SGD steps on the projector alone lower the loss.
    opt = torch.optim.SGD(student_conn.parameters(), lr=0.05)
    first = loss.item()
    for _ in range(20):
        opt.zero_grad()
        loss = LogSumLoss()(student_conn(s.detach()), teacher_conn(t))
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_registered_connector() -> None:
    conn = build_kd_module(
        dict(
            type="FeatureConnector",
            in_channels=4,
            out_channels=8,
            spatial=False,
            projector="mlp",
            norm="l2",
            hidden_channels=5,
        )  # fmt: skip
    )
    assert isinstance(conn, FeatureConnector)
    assert conn(torch.randn(3, 4)).shape == (3, 8)
