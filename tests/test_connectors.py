"""kd_det.connectors: registered projectors, parameter-free norms, ProjectNorm, and a user's own
connector registered in a project of its own and loaded through ``custom_imports``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from kd_det.apis import build_model_from_cfg
from kd_det.connectors import (
    AffineFreeBN,
    BaseConnector,
    BaseNorm,
    ChannelL2Norm,
    ChannelLayerNorm,
    LinearProjector,
    MLPProjector,
    ProjectNorm,
    registered,
)
from kd_det.losses import LogSumLoss
from kd_det.registry import build_kd_module
from tests.conftest import CONFIGS


def _x(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3.0 + 1.5


SPATIAL_CASES = [(True, (2, 6, 5, 4)), (False, (8, 6))]
NORMS = ["AffineFreeBN", "ChannelLayerNorm", "ChannelL2Norm"]


def _build(cfg: dict, **default_args) -> nn.Module:
    return build_kd_module(cfg, **default_args)


def test_registered_parts() -> None:
    connectors = registered(BaseConnector)  # a test below registers a user's connector
    assert "ProjectNorm" in connectors and not {"LinearProjector", *NORMS} & set(connectors)
    assert registered(BaseNorm) == sorted(NORMS)
    proj = _build(dict(type="LinearProjector"), in_channels=6, out_channels=10, spatial=True)
    assert isinstance(proj, LinearProjector)
    mlp = _build(dict(type="MLPProjector", hidden_channels=5), in_channels=6, out_channels=10,
                 spatial=False)  # fmt: skip
    assert isinstance(mlp, MLPProjector)
    for name, cls in zip(NORMS, (AffineFreeBN, ChannelLayerNorm, ChannelL2Norm), strict=True):
        assert isinstance(_build(dict(type=name), channels=6, spatial=True), cls)


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
@pytest.mark.parametrize(
    "projector", [dict(type="LinearProjector"), dict(type="MLPProjector", hidden_channels=7)]
)
@pytest.mark.parametrize("norm", [None, *NORMS])
def test_project_norm_output_shapes(spatial, shape, projector, norm) -> None:
    conn = ProjectNorm(6, 10, spatial, projector=projector, norm=norm and dict(type=norm))
    teacher_shape = (shape[0], 10, *shape[2:])
    s, t = conn(_x(shape), _x(teacher_shape, seed=1))
    assert s.shape == teacher_shape and t.shape == teacher_shape
    assert torch.isfinite(s).all() and torch.isfinite(t).all()


def test_linear_projector_is_a_bias_free_1x1_conv_or_linear_map() -> None:
    conv = LinearProjector(6, 10, spatial=True)
    assert [p.shape for p in conv.parameters()] == [torch.Size([10, 6, 1, 1])]
    x = _x((2, 6, 3, 3))
    expected = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)
    torch.testing.assert_close(conv(x), expected)
    lin = LinearProjector(6, 10, spatial=False)
    v = _x((5, 6), seed=1)
    assert [p.shape for p in lin.parameters()] == [torch.Size([10, 6])]
    torch.testing.assert_close(lin(v), v @ lin.weight.T)
    with pytest.raises(ValueError, match="LinearProjector: in_channels must be a positive int"):
        LinearProjector(0, 10, spatial=True)


def test_mlp_projector_layers() -> None:
    mlp = MLPProjector(6, 10, spatial=True, hidden_channels=16)
    assert [type(m) for m in mlp.layers] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert mlp.layers[0].bias is None and mlp.layers[3].bias is None
    assert (mlp.layers[0].out_channels, mlp.layers[3].out_channels) == (16, 10)
    mlp1d = MLPProjector(6, 10, spatial=False, hidden_channels=16)
    assert [type(m) for m in mlp1d.layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    with pytest.raises(ValueError, match="MLPProjector: hidden_channels must be a positive int"):
        MLPProjector(6, 10, spatial=True, hidden_channels=0)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("spatial", [True, False])
def test_norms_have_no_learnable_parameters_or_state(norm: str, spatial: bool) -> None:
    module = _build(dict(type=norm), channels=6, spatial=spatial)
    assert list(module.parameters()) == []
    assert list(module.buffers()) == []


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
@pytest.mark.parametrize("train", [True, False])
def test_affine_free_bn_uses_batch_statistics(spatial: bool, shape, train: bool) -> None:
    norm = AffineFreeBN(6, spatial).train(train)
    x = _x(shape, seed=1)
    dims = [0, 2, 3] if spatial else [0]
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-4)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    # shifted data is normalised with its own batch statistics, in eval mode too
    torch.testing.assert_close(norm(x + 100.0), expected, rtol=1e-4, atol=1e-4)


def test_channel_layer_norm_normalises_each_location_over_channels() -> None:
    x = _x((2, 6, 3, 4), seed=2)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(ChannelLayerNorm(6)(x), (x - mean) / torch.sqrt(var + 1e-5))
    v = _x((5, 6), seed=3)
    ref = (v - v.mean(1, keepdim=True)) / torch.sqrt(v.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(ChannelLayerNorm(6, spatial=False)(v), ref)


@pytest.mark.parametrize("spatial,shape", SPATIAL_CASES)
def test_channel_l2_norm(spatial: bool, shape) -> None:
    x = _x(shape, seed=4)
    y = ChannelL2Norm(6, spatial)(x)
    torch.testing.assert_close(y.norm(dim=1), torch.ones_like(y.norm(dim=1)))
    torch.testing.assert_close(y * x.norm(dim=1, keepdim=True), x)


def test_project_norm_is_the_norm_of_the_projection_and_the_norm_of_the_teacher() -> None:
    conn = ProjectNorm(6, 10, True, projector=dict(type="LinearProjector"),
                       norm=dict(type="AffineFreeBN"))  # fmt: skip
    x, t = _x((2, 6, 3, 3), seed=5), _x((2, 10, 3, 3), seed=6)
    s_out, t_out = conn(x, t)
    torch.testing.assert_close(s_out, conn.norm(conn.projector(x)))
    torch.testing.assert_close(t_out, conn.norm(t))
    assert [p.shape for p in conn.parameters()] == [torch.Size([10, 6, 1, 1])]
    # without projector and norm it is the identity, for equal widths only
    same = ProjectNorm(6, 6, True)
    s_out, t_out = same(x, x + 1)
    assert torch.equal(s_out, x) and torch.equal(t_out, x + 1)
    with pytest.raises(
        ValueError,
        match=r"student width 6 and teacher width 10 cannot be matched without a projector; "
        r"set connector=dict\(type='ProjectNorm', projector=dict\(type='LinearProjector'\)\)",
    ):
        ProjectNorm(6, 10, True)


def test_project_norm_rejects_inputs_of_other_shapes() -> None:
    conn = ProjectNorm(6, 10, True, projector=dict(type="LinearProjector"))
    with pytest.raises(
        ValueError, match=r"student features \[B, C, H, W\] with C=6.*\(2, 5, 3, 3\)"
    ):
        conn(torch.randn(2, 5, 3, 3), torch.randn(2, 10, 3, 3))
    with pytest.raises(ValueError, match=r"teacher features \[B, C, H, W\] with C=10.*\(2, 10\)"):
        conn(torch.randn(2, 6, 3, 3), torch.randn(2, 10))


@pytest.mark.parametrize("spatial,s_shape,t_shape", [
    (True, (2, 6, 4, 4), (2, 10, 4, 4)),
    (False, (8, 6), (8, 10)),
])  # fmt: skip
def test_projector_trained_through_log_sum_loss(spatial, s_shape, t_shape) -> None:
    conn = ProjectNorm(6, 10, spatial, projector=dict(type="LinearProjector"),
                       norm=dict(type="AffineFreeBN"))  # fmt: skip
    s = _x(s_shape, seed=6).requires_grad_(True)
    t = _x(t_shape, seed=7).requires_grad_(True)
    loss = LogSumLoss()(*conn(s, t))
    loss.backward()
    grad = conn.projector.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert s.grad is not None and t.grad is None  # the teacher side runs under no_grad
    # a few SGD steps on the projector alone lower the loss
    opt = torch.optim.SGD(conn.parameters(), lr=0.05)
    first = loss.item()
    for _ in range(20):
        opt.zero_grad()
        loss = LogSumLoss()(*conn(s.detach(), t))
        loss.backward()
        opt.step()
    assert loss.item() < first


USER_PROJECT = '''
"""A user's project: its own connector, registered in kd_det's registry."""
import torch
from torch import nn

from kd_det.connectors import BaseConnector
from kd_det.registry import MODELS


@MODELS.register_module()
class ToyGateConnector(BaseConnector):
    """s = gate * W f_S, t = gate * f_T."""

    def __init__(self, in_channels, out_channels, spatial, gate=0.5):
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels, bias=False)
        self.gate = gate

    def forward(self, student, teacher):
        with torch.no_grad():
            teacher = teacher * self.gate
        return self.proj(student) * self.gate, teacher
'''


def test_a_users_connector_registered_in_their_project_and_loaded_by_custom_imports(
    tmp_path: Path, monkeypatch
) -> None:
    package = tmp_path / "toy_user_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "connectors.py").write_text(USER_PROJECT)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "cfg.py"
    bases = [str(CONFIGS / "_base_/models/digits_classifiers.py"),
             str(CONFIGS / "_base_/digits_cls_runtime.py")]  # fmt: skip
    cfg.write_text(
        f"_base_ = {bases!r}\n"
        + textwrap.dedent(
            """
            custom_imports = dict(imports=['kd_det', 'toy_user_project.connectors'],
                                  allow_failed_imports=False)
            model = dict(
                type='kd_det.SingleTeacherDistiller',
                student={{_base_.resnet_student}},
                teacher={{_base_.resnet_teacher}},
                probe_size=(32, 32),
                distill=dict(feat=dict(student='neck', teacher='neck',
                                       connector=dict(type='ToyGateConnector', gate=0.3),
                                       loss=dict(type='MSEFeatureLoss'))))
            """
        )
    )
    model = build_model_from_cfg(cfg)
    assert "ToyGateConnector" in registered(BaseConnector)
    conn = model.term("feat").connectors[0]
    assert type(conn).__name__ == "ToyGateConnector" and conn.gate == 0.3
    assert conn.proj.weight.shape == (256, 64)  # built with the pair's widths
    seen: list = []  # what the term is given (the teacher's maps are dropped after it)
    model.term("feat").register_forward_pre_hook(lambda _m, args: seen.extend(args))
    losses = model.loss(torch.randn(4, 3, 32, 32), _cls_samples(4))
    s, t = seen[0][0], seen[1][0]
    expected = ((0.3 * conn.proj(s) - 0.3 * t) ** 2).mean()
    torch.testing.assert_close(losses["distill.feat.loss"], expected)


def _cls_samples(n: int) -> list:
    from mmpretrain.structures import DataSample

    return [DataSample().set_gt_label(i % 10) for i in range(n)]
