"""IE-KD: the auto-encoder stage, the split, the coders, the loss, the connector in a distiller,
their Runner runs and configs, and the errors of bad input ("Revisiting Knowledge Distillation:
An Inheritance and Exploration Framework", arXiv:2107.00181)."""

from __future__ import annotations

import copy
import functools
import math
import socket
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.model import BaseModule
from mmengine.optim import build_optim_wrapper
from mmengine.runner import load_checkpoint
from torch import nn

import kd_det  # noqa: F401  (registers kd_det's modules)
from kd_det.apis import build_model_from_cfg, read_metrics
from kd_det.compat import load_local_checkpoint
from kd_det.distillers.models import build_model
from kd_det.distillers.single_teacher import SingleTeacherDistiller
from kd_det.inherit_explore import (
    ChannelSplit,
    FactorAutoEncoder,
    FactorCoder,
    FrozenModule,
    InheritExploreConnector,
    InheritExploreLoss,
    ReconstructionMetric,
    TeacherAutoEncoder,
    factor_distance,
)
from kd_det.inherit_explore.encoder import decode_info
from tests.conftest import CONFIGS, cls_data_overrides, short_schedule, write_config
from tests.distill_helpers import CLS_BASES, ToyNet, make_runner, toy_distiller

IEKD = CONFIGS / "iekd"
IEKD_CONFIGS = sorted(IEKD.glob("*.py"))
AE_CONFIGS = [p for p in IEKD_CONFIGS if p.stem.startswith("iekd-ae_")]
DISTILL_CONFIGS = [p for p in IEKD_CONFIGS if p not in AE_CONFIGS]
IE_TYPE = "InheritExploreConnector"


# -- the loss -----------------------------------------------------------------------------------


def _stack(inh: list[list[float]], exp: list[list[float]]) -> torch.Tensor:
    """``[B, 2, 1, 1, W]`` from per-sample rows of the inheritance and exploration factors."""
    return torch.stack([torch.tensor(inh), torch.tensor(exp)], dim=1)[:, :, None, None, :]


def test_loss_matches_values_computed_by_hand() -> None:
    # sample 0: n(F_inh) = (0.6, 0.8), n(F_T) = (1, 0): mean |diff| = (0.4 + 0.8) / 2 = 0.6
    #           n(F_exp) = (0, 1):                       mean |diff| = (1 + 1) / 2 = 1.0
    # sample 1: n(F_inh) = (1, 1)/√2, n(F_T) = (0, 1): (1/√2 + 1 − 1/√2) / 2 = 0.5
    #           n(F_exp) = (1, 0):                    (1 + 1) / 2 = 1.0
    student = _stack(inh=[[3.0, 4.0], [1.0, 1.0]], exp=[[0.0, 2.0], [2.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    teacher = _stack(inh=t.tolist(), exp=t.tolist())
    l_inh, l_exp = 0.55, -1.0
    loss = InheritExploreLoss()
    assert loss.components(student, teacher)[0].item() == pytest.approx(l_inh)
    assert loss.components(student, teacher)[1].item() == pytest.approx(l_exp)
    # the paper's weighting: 50 each; the authors' code: 1 each
    assert loss(student, teacher).item() == pytest.approx(50 * l_inh + 50 * l_exp)
    code = InheritExploreLoss(weighting="code")
    assert code(student, teacher).item() == pytest.approx(l_inh + l_exp)
    # inheritance only, explicit weights and the common factor
    inh_only = InheritExploreLoss(weighting="code", inh_weight=10.0, exp_weight=0.0, loss_weight=2)
    assert inh_only(student, teacher).item() == pytest.approx(2 * 10 * l_inh)
    # per-sample distance, and the scale of a sample does not matter
    d = factor_distance(student[:, 0], teacher[:, 0])
    assert d.tolist() == pytest.approx([0.6, 0.5])
    assert factor_distance(7 * student[:, 0], teacher[:, 0]).tolist() == pytest.approx([0.6, 0.5])


def test_loss_gradient_reaches_the_student_only() -> None:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(3, 2, 4, 2, 2, generator=g, requires_grad=True)
    teacher = torch.randn(3, 4, 2, 2, generator=g, requires_grad=True)
    loss = InheritExploreLoss()(student, teacher.unsqueeze(1).expand(-1, 2, -1, -1, -1))
    loss.backward()
    assert student.grad is not None and student.grad[:, 0].abs().sum() > 0
    assert student.grad[:, 1].abs().sum() > 0
    assert teacher.grad is None
    # descending the loss pulls F_inh towards F_T and pushes F_exp away from it
    with torch.no_grad():
        moved = student - 0.1 * student.grad
    before = [factor_distance(student[:, k], teacher).mean() for k in (0, 1)]
    after = [factor_distance(moved[:, k], teacher).mean() for k in (0, 1)]
    assert after[0] < before[0] and after[1] > before[1]


def test_loss_refuses_bad_options_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"weighting must be one of \['paper', 'code'\]"):
        InheritExploreLoss(weighting="papr")
    with pytest.raises(ValueError, match="exp_weight must be a finite number >= 0, got -1"):
        InheritExploreLoss(exp_weight=-1)
    with pytest.raises(ValueError, match="loss_weight must be a finite number >= 0, got nan"):
        InheritExploreLoss(loss_weight=float("nan"))
    with pytest.raises(ValueError, match=r"\[B, 2, …\] stacks"):
        InheritExploreLoss()(torch.ones(2, 3, 4), torch.ones(2, 3, 4))


# -- the split ----------------------------------------------------------------------------------


def _numbered(channels: int) -> torch.Tensor:
    """``[1, C, 1, 1]`` whose channel ``c`` holds ``c``."""
    return torch.arange(channels, dtype=torch.float32).reshape(1, -1, 1, 1)


def test_natural_and_random_split() -> None:
    inh, exp = ChannelSplit(6)(_numbered(6))
    assert inh.flatten().tolist() == [0, 1, 2] and exp.flatten().tolist() == [3, 4, 5]
    inh, exp = ChannelSplit(8, ratio=0.25)(_numbered(8))
    assert inh.flatten().tolist() == [0, 1] and exp.flatten().tolist() == [2, 3, 4, 5, 6, 7]

    split = ChannelSplit(8, mode="random", seed=3)
    expected = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(split.index, expected)
    assert sorted(split.index.tolist()) == list(range(8))
    assert not torch.equal(split.index, torch.arange(8))
    inh, exp = split(_numbered(8))
    assert inh.flatten().tolist() == expected[:4].tolist()
    assert exp.flatten().tolist() == expected[4:].tolist()
    # fixed by the seed, whatever the global random state
    torch.manual_seed(123)
    assert torch.equal(ChannelSplit(8, mode="random", seed=3).index, expected)
    assert not torch.equal(ChannelSplit(8, mode="random", seed=4).index, expected)


def test_split_is_saved_restored_and_a_different_one_refused() -> None:
    split = ChannelSplit(8, mode="random", seed=3)
    state = split.state_dict()
    assert torch.equal(state["index"], split.index)
    ChannelSplit(8, mode="random", seed=3).load_state_dict(state)  # the same split loads
    for other in (dict(mode="random", seed=4), dict(mode="natural")):
        with pytest.raises(ValueError, match=r"index: the checkpoint was trained with the random"):
            ChannelSplit(8, **other).load_state_dict(state)
    with pytest.raises(ValueError, match="trained with the natural split of 8 channels"):
        ChannelSplit(8, mode="random").load_state_dict(ChannelSplit(8).state_dict())


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.25, float("nan"), True, "0.5"])
def test_split_ratio_outside_0_1_is_refused(ratio) -> None:
    with pytest.raises(ValueError, match=r"ratio must be a number in \(0, 1\)"):
        ChannelSplit(8, ratio=ratio)


def test_a_width_that_cannot_be_split_at_the_ratio_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"ratio 0.5 splits 7 channels into 3.5 and 3.5.*3/7 or 4/7"
    ):
        ChannelSplit(7)
    with pytest.raises(ValueError, match="a feature of one channel cannot be split"):
        ChannelSplit(1)
    with pytest.raises(ValueError, match=r"mode must be one of \['natural', 'random'\]"):
        ChannelSplit(8, mode="halves")
    # in a distiller: the term and its layers are named (a 3-channel student layer)
    with pytest.raises(ValueError, match=r"distill term 'ie', blocks.1 <- blocks.1: .*3 channels"):
        toy_distiller(_ie_term(), student_width=3, teacher_width=8)


# -- the coders ---------------------------------------------------------------------------------


def test_coder_is_three_bias_free_3x3_convs_with_batchnorm_and_leaky_relu() -> None:
    coder = FactorCoder(8, 4)
    layers = list(coder.layers)
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["LeakyReLU"] + ["Conv2d", "BatchNorm2d", "LeakyReLU"] * 3
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(8, 8), (8, 4), (4, 4)]
    assert all(c.bias is None and c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert all(c.stride == (1, 1) for c in convs)
    assert [m.num_features for m in layers if isinstance(m, nn.BatchNorm2d)] == [8, 4, 4]
    assert all(m.negative_slope == 0.1 for m in layers if isinstance(m, nn.LeakyReLU))
    assert coder(torch.randn(2, 8, 5, 3)).shape == (2, 4, 5, 3)

    ae = FactorAutoEncoder(8, 4)
    factor, recon = ae(torch.randn(2, 8, 3, 3))
    assert factor.shape == (2, 4, 3, 3) and recon.shape == (2, 8, 3, 3)
    assert (ae.encoder.in_channels, ae.encoder.out_channels) == (8, 4)
    assert (ae.decoder.in_channels, ae.decoder.out_channels) == (4, 8)
    with pytest.raises(ValueError, match="factor_channels 16 is larger than the feature"):
        FactorAutoEncoder(8, 16)
    # its description travels in the state dict as a tensor (DDP broadcasts every entry)
    ae.layers = ["neck.fpn_convs.0", "neck.fpn_convs.1"]
    state = ae.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert decode_info(state["info"]) == dict(
        in_channels=8,
        factor_channels=4,
        encoder=dict(type="FactorCoder"),
        decoder=dict(type="FactorCoder"),
        layers=["neck.fpn_convs.0", "neck.fpn_convs.1"],
    )
    again = FactorAutoEncoder(8, 4)
    again.load_state_dict(state)
    assert again.layers == ["neck.fpn_convs.0", "neck.fpn_convs.1"]
    with pytest.raises(ValueError, match="maps 8 -> 4 channels, this one 8 -> 2"):
        FactorAutoEncoder(8, 2).load_state_dict(state)


def test_frozen_module_holds_buffers_in_eval_mode() -> None:
    coder = FactorCoder(4, 2)
    weight = coder.layers[1].weight.detach().clone()
    frozen = FrozenModule(coder)
    assert list(frozen.parameters()) == []
    assert torch.equal(frozen.state_dict()["module.layers.1.weight"], weight)
    frozen.train()
    assert not any(m.training for m in frozen.modules())
    stats = frozen.module.layers[2].running_mean.clone()
    out = frozen(torch.randn(4, 4, 3, 3, requires_grad=True))
    assert not out.requires_grad
    assert torch.equal(frozen.module.layers[2].running_mean, stats)


# -- the connector in a distiller ----------------------------------------------------------------


def _ie_term(checkpoint: str | None = None, **connector) -> dict:
    return dict(
        ie=dict(
            student="blocks.1",
            teacher="blocks.1",
            connector=dict(type=IE_TYPE, teacher_encoder=dict(checkpoint=checkpoint), **connector),
            loss=dict(type="InheritExploreLoss"),
        )
    )


def test_connector_shapes_and_the_frozen_teacher_encoder_stays_out_of_training() -> None:
    distiller = toy_distiller(_ie_term(factor_channels=3, split="random", seed=1))
    conn = distiller.terms["ie"].connectors[0]
    assert isinstance(conn, InheritExploreConnector)
    assert (conn.split.inherit_channels, conn.split.explore_channels) == (2, 2)
    s, t = conn(torch.randn(2, 4, 4, 4), torch.randn(2, 8, 4, 4))
    assert s.shape == t.shape == (2, 2, 3, 4, 4)
    assert torch.equal(t[:, 0], t[:, 1]) and not t.requires_grad

    frozen = [b for b in conn.teacher_encoder.buffers() if b.is_floating_point()]
    frozen_ids = {id(b) for b in frozen}
    assert frozen and not any(b.requires_grad for b in frozen)
    names = [n for n, _ in distiller.named_parameters()]
    assert not any("teacher_encoder" in n for n in names)
    assert any(".inherit_encoder." in n for n in names)
    assert any(".explore_encoder." in n for n in names)
    # the optimizer the Runner would build holds the student and both student encoders only
    wrapper = build_optim_wrapper(distiller, dict(optimizer=dict(type="SGD", lr=0.1)))
    held = [p for group in wrapper.optimizer.param_groups for p in group["params"]]
    assert len(held) == len(list(distiller.parameters()))
    assert not any(id(p) in frozen_ids for p in held)
    # saved with the distiller, under the names the auto-encoder's encoder has
    assert "terms.ie.connectors.0.teacher_encoder.module.layers.1.weight" in distiller.state_dict()

    # train(): the student encoders train, the teacher encoder stays in eval mode
    distiller.train()
    assert conn.inherit_encoder.training and conn.explore_encoder.training
    assert not any(m.training for m in conn.teacher_encoder.modules())
    before = {k: v.clone() for k, v in conn.teacher_encoder.state_dict().items()}
    losses = distiller.loss(torch.randn(4, 3, 16, 16), None)
    losses["distill.ie.loss"].backward()
    for key, value in conn.teacher_encoder.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics included
    assert all(p.grad is not None for p in conn.inherit_encoder.parameters())
    assert all(p.grad is not None for p in conn.explore_encoder.parameters())
    assert distiller.student.blocks[1].weight.grad.abs().sum() > 0


def test_factor_width_larger_than_the_feature_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"factor_channels 9 is larger than the teacher feature \(8"
    ):
        toy_distiller(_ie_term(factor_channels=9))
    with pytest.raises(ValueError, match="needs feature maps"):
        InheritExploreConnector(8, 8, spatial=False)
    with pytest.raises(ValueError, match=r"teacher_encoder has unknown keys \['ckpt'\]"):
        InheritExploreConnector(8, 8, True, teacher_encoder=dict(ckpt="x.pth"))
    # the auto-encoder stage: factor wider than the teacher layer
    with pytest.raises(ValueError, match=r"auto-encoder 'feat': factor_channels 16 is larger than"):
        TeacherAutoEncoder(
            ToyNet(8), dict(feat=dict(layers="blocks.1", factor_channels=16)), probe_size=(16, 16)
        )


# -- the auto-encoder stage and its checkpoint --------------------------------------------------


def _toy_autoencoder_ckpt(path: Path, teacher_width: int = 8, **autoencoders) -> Path:
    torch.manual_seed(0)
    autoencoders = autoencoders or dict(feat=dict(layers="blocks.1", factor_channels=4))
    stage = TeacherAutoEncoder(ToyNet(teacher_width), autoencoders, probe_size=(16, 16))
    torch.save({"state_dict": stage.state_dict()}, path)
    return path


def test_autoencoder_stage_modes_and_state() -> None:
    torch.manual_seed(0)
    teacher = ToyNet(8)
    stage = TeacherAutoEncoder(
        teacher,
        dict(feat=dict(layers="blocks.1", factor_channels=4), stem=dict(layers="stem"), skip=None),
        loss="l2",
        probe_size=(16, 16),
    )
    assert list(stage.autoencoders) == ["feat", "stem"]
    assert stage.autoencoders["stem"].factor_channels == 4  # C // 2 by default
    assert all(k.startswith("autoencoders.") for k in stage.state_dict())
    assert not any(p is q for p in stage.parameters() for q in teacher.parameters())
    stage.train()
    assert not teacher.training
    x = torch.randn(3, 3, 16, 16)
    losses = stage(x, mode="loss")
    assert sorted(losses) == ["recon.feat.loss", "recon.stem.loss"]
    with torch.no_grad():
        f = teacher.blocks[1](teacher.blocks[0](torch.relu(teacher.stem(x))).relu())  # its output
    stage.eval()
    preds = stage(x, mode="predict")
    assert len(preds) == 3 and set(preds[0]["l1"]) == {"feat/blocks.1", "stem/stem"}
    with torch.no_grad():
        diff = stage.autoencoders["feat"](f)[1] - f
    assert [p["l1"]["feat/blocks.1"] for p in preds] == pytest.approx(
        diff.abs().flatten(1).mean(1).tolist(), rel=1e-5
    )
    assert [p["l2"]["feat/blocks.1"] for p in preds] == pytest.approx(
        diff.square().flatten(1).mean(1).tolist(), rel=1e-5
    )
    factors = stage(x, mode="tensor")
    assert factors["feat"][0].shape == (3, 4, 4, 4)

    metric = ReconstructionMetric()
    metric.process({}, preds)
    result = metric.evaluate(3)
    expected_l1 = (
        sum(p["l1"]["feat/blocks.1"] for p in preds) / 3
        + sum(p["l1"]["stem/stem"] for p in preds) / 3
    ) / 2
    assert result["recon/l1"] == pytest.approx(expected_l1)
    assert {"recon/l2", "recon/feat/l1", "recon/stem/l1"} <= set(result)


def test_autoencoder_stage_refuses_bad_specs() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['factor'\] \('factor': did you mean"):
        TeacherAutoEncoder(ToyNet(8), dict(feat=dict(layers="stem", factor=4)), probe_size=(16, 16))
    with pytest.raises(ValueError, match="missing key 'layers'"):
        TeacherAutoEncoder(ToyNet(8), dict(feat=dict(factor_channels=4)), probe_size=(16, 16))
    with pytest.raises(ValueError, match=r"loss must be one of \['l1', 'l2'\]"):
        TeacherAutoEncoder(ToyNet(8), dict(feat=dict(layers="stem")), loss="l3")
    with pytest.raises(ValueError, match="teacher layers .*head.* are not maps"):
        TeacherAutoEncoder(ToyNet(8), dict(feat=dict(layers="head")), probe_size=(16, 16))
    with pytest.raises(ValueError, match="shared by teacher layers of different widths"):
        TeacherAutoEncoder(TwoWidths(), dict(feat=dict(layers="blocks.*")), probe_size=(16, 16))


class TwoWidths(ToyNet):
    """A :class:`ToyNet` whose ``blocks.1`` is 6 wide where ``blocks.0`` is 8."""

    def __init__(self) -> None:
        super().__init__(8)
        self.blocks[1] = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.head = nn.Linear(6, 10)


def test_autoencoder_checkpoint_feeds_the_connector(tmp_path: Path) -> None:
    ckpt = _toy_autoencoder_ckpt(tmp_path / "ae.pth")
    saved = load_local_checkpoint(str(ckpt))["state_dict"]
    distiller = toy_distiller(_ie_term(str(ckpt)))
    conn = distiller.terms["ie"].connectors[0]
    assert conn.factor_channels == 4 and conn.autoencoder_info["layers"] == ["blocks.1"]
    frozen = conn.teacher_encoder.module.state_dict()
    assert frozen.keys() == {
        k[len("autoencoders.feat.encoder.") :] for k in saved if ".encoder." in k
    }
    for key, value in frozen.items():
        assert torch.equal(value, saved[f"autoencoders.feat.encoder.{key}"]), key


def test_autoencoder_checkpoint_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    ckpt = _toy_autoencoder_ckpt(tmp_path / "ae.pth")
    # channel count: trained on an 8-wide teacher layer, the term's teacher is 16 wide
    with pytest.raises(
        ValueError,
        match=r"distill term 'ie', blocks.1 <- blocks.1: .*auto-encoder 'feat' of '.*ae.pth' was "
        r"trained on teacher layer\(s\) \['blocks.1'\] of 8 channels; this term's teacher layer "
        r"has 16 channels",
    ):
        toy_distiller(_ie_term(str(ckpt)), teacher_width=16)
    # a factor width other than the checkpoint's
    with pytest.raises(ValueError, match="encodes to 4 channels, the config asks for .*=2"):
        toy_distiller(_ie_term(str(ckpt), factor_channels=2))
    # missing keys
    state = load_local_checkpoint(str(ckpt))["state_dict"]
    del state["autoencoders.feat.encoder.layers.4.weight"]
    torch.save({"state_dict": state}, tmp_path / "cut.pth")
    with pytest.raises(
        ValueError, match=r"cut.pth' does not fit .*1 missing keys \(e.g. autoencoders.feat.encoder"
    ):
        toy_distiller(_ie_term(str(tmp_path / "cut.pth")))
    del state["autoencoders.feat.info"]
    torch.save({"state_dict": state}, tmp_path / "noextra.pth")
    with pytest.raises(ValueError, match=r"misses the key 'autoencoders.feat.info'"):
        toy_distiller(_ie_term(str(tmp_path / "noextra.pth")))
    # wrong files: a teacher's checkpoint, no file, not a checkpoint
    torch.save({"state_dict": ToyNet(8).state_dict()}, tmp_path / "teacher.pth")
    with pytest.raises(ValueError, match=r"teacher.pth' is not a checkpoint of kd_det.TeacherAuto"):
        toy_distiller(_ie_term(str(tmp_path / "teacher.pth")))
    with pytest.raises(ValueError, match=r"missing.pth' does not exist; train the teacher's auto"):
        toy_distiller(_ie_term(str(tmp_path / "missing.pth")))
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes.pth' cannot be read"):
        toy_distiller(_ie_term(str(tmp_path / "notes.pth")))
    # several auto-encoders: the name chooses one
    two = _toy_autoencoder_ckpt(
        tmp_path / "two.pth",
        a=dict(layers="blocks.1", factor_channels=4),
        b=dict(layers="blocks.1", factor_channels=2),
    )
    with pytest.raises(ValueError, match=r"holds 2 auto-encoders \['a', 'b'\]; choose one"):
        toy_distiller(_ie_term(str(two)))
    with pytest.raises(ValueError, match=r"has no auto-encoder 'c'; it holds \['a', 'b'\]"):
        InheritExploreConnector(4, 8, True, teacher_encoder=dict(checkpoint=str(two), name="c"))
    conn = InheritExploreConnector(4, 8, True, teacher_encoder=dict(checkpoint=str(two), name="b"))
    assert conn.factor_channels == 2


# -- through mmengine's Runner -------------------------------------------------------------------


def _tiny_classifier(width: int) -> dict:
    return dict(
        type="ImageClassifier",
        _scope_="mmpretrain",
        data_preprocessor=dict(
            type="ClsDataPreprocessor",
            num_classes=10,
            mean=[127.5] * 3,
            std=[64.0] * 3,
            to_rgb=True,
        ),
        backbone=dict(
            type="ResNet_CIFAR",
            depth=18,
            stem_channels=width,
            base_channels=width,
            num_stages=4,
            out_indices=(3,),
            style="pytorch",
        ),
        neck=dict(type="GlobalAveragePooling"),
        head=dict(
            type="LinearClsHead",
            num_classes=10,
            in_channels=8 * width,
            loss=dict(type="CrossEntropyLoss"),
            topk=(1,),
        ),
    )


TINY = dict(  # 2 training iterations an epoch, 2 validation batches
    train_dataloader=dict(batch_size=8, dataset=dict(indices=16)),
    val_dataloader=dict(batch_size=8, dataset=dict(indices=16)),
)


def test_autoencoder_stage_trains_in_the_runner_and_feeds_an_iekd_run(
    tmp_path: Path, digits_root: Path
) -> None:
    teacher, student = _tiny_classifier(8), _tiny_classifier(4)
    torch.manual_seed(0)
    teacher_ckpt = tmp_path / "teacher.pth"
    torch.save({"state_dict": build_model(teacher, "teacher").state_dict()}, teacher_ckpt)
    base = cls_data_overrides(digits_root) + short_schedule(1)

    # stage 1: the auto-encoder on the teacher's last stage (64 -> 8 channels)
    ae_cfg = write_config(
        tmp_path / "ae.py",
        CLS_BASES,
        base
        + f"""
model = dict(
    type='kd_det.TeacherAutoEncoder',
    teacher={teacher!r},
    teacher_ckpt={str(teacher_ckpt)!r},
    autoencoders=dict(feat=dict(layers='backbone.layer4', factor_channels=8)),
    probe_size=(32, 32))
val_evaluator = dict(_delete_=True, type='kd_det.ReconstructionMetric')
test_evaluator = val_evaluator
""",
    )
    ae_work = tmp_path / "ae"
    make_runner(ae_cfg, ae_work, **TINY).train()
    metrics = read_metrics(ae_work)
    assert metrics["recon/l1"] > 0 and math.isfinite(metrics["recon/l2"])
    ae_state = load_local_checkpoint(str(ae_work / "epoch_1.pth"))["state_dict"]
    assert ae_state and all(k.startswith("autoencoders.feat.") for k in ae_state)
    assert decode_info(ae_state["autoencoders.feat.info"])["layers"] == ["backbone.layer4"]
    assert all(isinstance(v, torch.Tensor) for v in ae_state.values())  # DDP broadcasts them

    # stage 2: IE-KD (random split) composed with logit KD in one config
    terms = f"""
    logits=dict(student='head.fc', teacher='head.fc',
                loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
    ie=dict(student='backbone.layer4', teacher='backbone.layer4',
            connector=dict(type='InheritExploreConnector', split='random', seed=3,
                           teacher_encoder=dict(checkpoint={str(ae_work / "epoch_1.pth")!r})),
            loss=dict(type='InheritExploreLoss', weighting='paper'))"""
    kd_cfg = write_config(
        tmp_path / "iekd.py",
        CLS_BASES,
        base
        + f"""
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={student!r},
    teacher={teacher!r},
    teacher_ckpt={str(teacher_ckpt)!r},
    probe_size=(32, 32),
    distill=dict({terms}))
""",
    )
    work = tmp_path / "iekd"
    runner = make_runner(kd_cfg, work, **TINY)
    runner.train()
    assert runner.iter == 2
    logged = [s for s in _scalars(work) if "distill.ie.loss" in s]
    assert len(logged) == 2 and all(math.isfinite(s["distill.ie.loss"]) for s in logged)
    assert all(math.isfinite(s["distill.logits.loss"]) for s in logged)
    state = load_local_checkpoint(str(work / "epoch_1.pth"))["state_dict"]
    prefix = "terms.ie.connectors.0."
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(state[prefix + "split.index"], perm)
    # the frozen encoder trained along nothing: still the auto-encoder's (BatchNorm statistics too)
    encoder_keys = [k for k in ae_state if k.startswith("autoencoders.feat.encoder.")]
    for key in encoder_keys:
        own = prefix + "teacher_encoder.module." + key.removeprefix("autoencoders.feat.encoder.")
        assert torch.equal(state[own], ae_state[key]), key
    assert not any("teacher_encoder" in n for n, _ in runner.model.named_parameters())

    # resume: the permutation comes back; another split is refused
    again = make_runner(kd_cfg, work, resume=True, load_from=str(work / "epoch_1.pth"), **TINY)
    again.train()
    conn = again.model.terms["ie"].connectors[0]
    assert torch.equal(conn.split.index, perm)
    # the Runner's resume with another split: refused when the checkpoint is loaded
    other = build_model_from_cfg(kd_cfg, {"model.distill.ie.connector.seed": 4})
    with pytest.raises(ValueError, match="trained with the random .*seed=4"):
        load_checkpoint(other, str(work / "epoch_1.pth"))


def _scalars(work: Path) -> list[dict]:
    from kd_det.apis import read_scalars

    return read_scalars(work)


# -- configs -------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted while building a model: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@functools.cache
def _parsed(path: Path) -> Config:
    return Config.fromfile(path)


def _load(path: Path) -> Config:
    """A fresh copy of the parsed config (parsing is cached)."""
    return copy.deepcopy(_parsed(path))


def _without_checkpoints(path: Path) -> Config:
    """The config with ``teacher_ckpt=None`` and every IE-KD term's auto-encoder checkpoint
    ``None``: its construction checks without the files the earlier stages write."""
    cfg = _load(path)
    cfg.model.teacher_ckpt = None
    for term in (cfg.model.get("distill") or {}).values():
        if term is not None and term.get("connector", {}).get("type") == IE_TYPE:
            term.connector.teacher_encoder.checkpoint = None
    return cfg


def test_the_configs_exist() -> None:
    names = {p.name for p in IEKD_CONFIGS}
    for variant in ("iekd", "iekd-inh", "iekd-random"):
        assert f"{variant}_resnet18-w32-w8_30e_digits-cls.py" in names
        assert f"{variant}_retinanet-w32-w8_fpn_24e_digits.py" in names
    assert {
        "iekd-ae_resnet18-w32_10e_digits-cls.py",
        "iekd-ae_retinanet-w32_fpn_5e_digits.py",
        "iekd-ae_retinanet-r101_fpn_2e_coco.py",
        "iekd_retinanet-r101-r50_fpn_1x_coco.py",
        "iekd-ae_resnet34_30e_cifar100.py",
        "iekd_resnet34-resnet18_8xb16_cifar100.py",
    } <= names


@pytest.mark.parametrize("path", AE_CONFIGS, ids=lambda p: p.name)
def test_autoencoder_config_builds(path: Path, no_network, monkeypatch) -> None:
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = _without_checkpoints(path)
    assert cfg.custom_imports.imports == ["kd_det"] and cfg.get("data_preprocessor") is None
    assert cfg.val_evaluator == dict(type="kd_det.ReconstructionMetric")
    model = build_model_from_cfg(cfg)
    assert isinstance(model, TeacherAutoEncoder)
    assert all(k.startswith("autoencoders.") for k in model.state_dict())
    ((name, spec),) = cfg.model.autoencoders.items()
    ae = model.autoencoders[name]
    assert ae.factor_channels == spec.factor_channels
    widths = {"digits-cls": 256, "digits": 96, "coco": 256, "cifar100": 512}
    assert ae.in_channels == widths[path.stem.rsplit("_", 1)[1]]


@pytest.mark.parametrize("path", DISTILL_CONFIGS, ids=lambda p: p.name)
def test_iekd_config_builds(path: Path, no_network, monkeypatch) -> None:
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = _without_checkpoints(path)
    model = build_model_from_cfg(cfg)
    assert isinstance(model, SingleTeacherDistiller)
    logit_term = "cls" if "retinanet" in path.stem else "logits"
    assert sorted(model.terms) == sorted(["ie", logit_term])
    term = model.terms["ie"]
    spec = cfg.model.distill.ie
    variant = path.stem.split("_")[0]
    assert spec.connector.split == ("random" if variant == "iekd-random" else "natural")
    assert term.loss.exp_weight == (0.0 if variant == "iekd-inh" else 50.0)
    assert term.loss.inh_weight == 50.0
    for conn in term.connectors:
        assert conn.split.inherit_channels == conn.split.explore_channels
        assert conn.split.mode == spec.connector.split
    levels = {"digits-cls": 1, "digits": 3, "coco": 5, "cifar100": 1}
    assert len(term.connectors) == levels[path.stem.rsplit("_", 1)[1]]


def test_digits_configs_read_what_the_earlier_stages_write() -> None:
    for task, ae_name in (
        ("resnet18-w32-w8_30e_digits-cls", "iekd-ae_resnet18-w32_10e_digits-cls"),
        ("retinanet-w32-w8_fpn_24e_digits", "iekd-ae_retinanet-w32_fpn_5e_digits"),
    ):
        ae = _load(IEKD / f"{ae_name}.py")
        natural = _load(IEKD / f"iekd_{task}.py")
        checkpoint = natural.model.distill.ie.connector.teacher_encoder.checkpoint
        assert checkpoint == f"work_dirs/{ae_name}/epoch_{ae.train_cfg.max_epochs}.pth"
        assert ae.model.teacher_ckpt == natural.model.teacher_ckpt
        assert ae.model.teacher == natural.model.teacher
        (spec,) = ae.model.autoencoders.values()
        assert spec.layers == natural.model.distill.ie.teacher
        # the variants change the split or the exploration weight only, and keep the logit term
        kd = "kd" if "cls" in task else "sigmoidkd"
        kd_cfg = _load(CONFIGS / "kd" / f"{kd}_{task}.py")
        for variant, change in (
            ("iekd-random", dict(connector=dict(split="random", seed=0))),
            ("iekd-inh", dict(loss=dict(exp_weight=0.0))),
        ):
            cfg = _load(IEKD / f"{variant}_{task}.py")
            expected = copy.deepcopy(natural.model.distill.ie.to_dict())
            for key, value in change.items():
                expected[key].update(value)
            assert cfg.model.distill.ie.to_dict() == expected, variant
        for other in [k for k in kd_cfg.model.distill if k != "ie"]:
            assert natural.model.distill[other] == kd_cfg.model.distill[other], other


def test_readme_and_metafile_list_every_config() -> None:
    readme = (IEKD / "README.md").read_text()
    meta = yaml.safe_load((IEKD / "metafile.yml").read_text())
    assert {c["README"] for c in meta["Collections"]} == {"configs/iekd/README.md"}
    listed = set()
    for model in meta["Models"]:
        path = CONFIGS.parent / model["Config"]
        assert path.is_file() and model["Name"] == path.stem, model["Name"]
        assert model["Metadata"]["Epochs"] == _load(path).train_cfg.max_epochs
        listed.add(path)
    assert listed == set(IEKD_CONFIGS)
    for path in IEKD_CONFIGS:
        assert path.name in readme, path.name
