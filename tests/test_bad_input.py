"""A catalogue of bad input: each case is one clear error at construction, before the first
iteration, naming the term or option, the bad value and what would be valid.

Every :class:`Case` builds what a user would write and says which error it must raise and
what its message must contain. Cases that an older test already checks carry ``tested_in``
and are not checked again here; they are still built by ``tools/bad_input_table.py``, which
writes docs/bad_input.md from the real messages of every case (the last test checks the
document is up to date). A case marked ``xfail`` needs a change in a file named in its reason.

Most cases are built on the toy nets of tests.distill_helpers (milliseconds each); the layer
and logit cases that depend on how mmdet and mmpretrain models run use the digits models of
configs/_base_/models/.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import pathlib
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.config import Config
from torch import Tensor, nn

from kd_det.cli import check_checkpoints, check_types, read_config
from kd_det.compat import CheckpointError, UntrustedCheckpointError
from kd_det.hooks import DistillWeightScheduler
from tests.conftest import CONFIGS, REPO
from tests.distill_helpers import ToyNet, toy_distiller

NAN, INF = float("nan"), float("inf")
LINEAR = dict(type="ProjectNorm", projector=dict(type="LinearProjector"))
FEAT = dict(
    student="blocks.*", teacher="blocks.*", connector=LINEAR, loss=dict(type="MSEFeatureLoss")
)
HEAD = dict(student="head", teacher="head", loss=dict(type="LogitKDLoss"))


# ------------------------------------------------------------------------------------------
# What the cases build
# ------------------------------------------------------------------------------------------


def feat(**changes: Any) -> nn.Module:
    """A distiller between ToyNets (widths 4 and 8) with one feature term ``feat`` changed."""
    return toy_distiller(dict(feat=dict(FEAT, **changes)))


def feat_loss(**loss: Any) -> nn.Module:
    """The feature term with ``loss=dict(**loss)``."""
    return feat(loss=loss)


def logits(**loss: Any) -> nn.Module:
    """A distiller with one logit term ``logits`` on the heads, ``loss=dict(**loss)``."""
    return toy_distiller(dict(logits=dict(HEAD, loss=loss)))


class SpareToyNet(ToyNet):
    """A ToyNet with a module its forward never calls (``spare``)."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.spare = nn.Conv2d(width, width, 1)


class _Stats(nn.Module):
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return dict(mean=x.mean(dim=(2, 3)), std=x.std(dim=(2, 3)))


class DictToyNet(ToyNet):
    """A ToyNet whose module ``stats`` returns a dict (no tensor to distil)."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.stats = _Stats()

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "tensor":
            self.stats(torch.relu(self.stem(inputs)))
        return super().forward(inputs, data_samples, mode)


def _save(path: Path, obj: Any) -> str:
    torch.save(obj, path)
    return str(path)


def teacher_ckpt(path: str) -> nn.Module:
    return toy_distiller(dict(feat=FEAT), teacher_ckpt=path)


def truncated_ckpt(tmp: Path) -> str:
    whole = Path(_save(tmp / "teacher.pth", {"state_dict": ToyNet(8).state_dict()}))
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return str(whole)


def text_file(tmp: Path) -> str:
    path = tmp / "teacher.pth"
    path.write_text("epoch 24, mAP 29.0\n")
    return str(path)


def empty_file(tmp: Path) -> str:
    path = tmp / "teacher.pth"
    path.write_bytes(b"")
    return str(path)


class _Payload:
    """Unpickling it calls ``function(*args)``: what a crafted checkpoint does."""

    def __init__(self, function: Callable, *args: Any) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def crafted_ckpt(tmp: Path) -> str:
    """Teacher weights with a payload that would create ``tmp/pwned`` when unpickled."""
    payload = _Payload(pathlib.Path.touch, pathlib.Path(tmp / "pwned"))
    return _save(
        tmp / "teacher.pth", {"meta": {"note": payload}, "state_dict": ToyNet(8).state_dict()}
    )


def crafted_refused(tmp: Path) -> None:
    try:
        teacher_ckpt(crafted_ckpt(tmp))
    finally:
        assert not (tmp / "pwned").exists(), "the crafted checkpoint ran its payload"


def distiller_ckpt(tmp: Path) -> str:
    """What a distillation run saves: the distiller's state, student and connectors."""
    return _save(tmp / "epoch_1.pth", {"state_dict": toy_distiller(dict(feat=FEAT)).state_dict()})


@functools.cache
def _digits_models() -> dict[str, dict]:
    cls = Config.fromfile(str(CONFIGS / "_base_/models/digits_classifiers.py"))
    det = Config.fromfile(str(CONFIGS / "_base_/models/digits_retinanet.py"))
    return dict(
        classifier=dict(cls.resnet_student.to_dict(), _scope_="mmpretrain"),
        detector=dict(det.retinanet_student.to_dict(), _scope_="mmdet"),
    )


def digits(student: str, teacher: str, distill: dict, **kwargs: Any) -> nn.Module:
    """A distiller between the digits models ``'classifier'`` / ``'detector'`` (untrained)."""
    from kd_det.distillers import SingleTeacherDistiller

    models = _digits_models()
    kwargs.setdefault("probe_size", (64, 64))
    return SingleTeacherDistiller(
        student=kwargs.pop("student_spec", copy.deepcopy(models[student])),
        teacher=copy.deepcopy(models[teacher]),
        distill=distill,
        **kwargs,
    )


def nested_typo() -> nn.Module:
    student = copy.deepcopy(_digits_models()["detector"])
    student["backbone"]["type"] = "ResNett"
    return digits("detector", "detector", dict(), student_spec=student)


def schedule(**options: Any) -> DistillWeightScheduler:
    return DistillWeightScheduler(dict(fpn=options))


# ------------------------------------------------------------------------------------------
# The catalogue
# ------------------------------------------------------------------------------------------

TERM_PY = "kd_det/distillers/term.py"
SINGLE_TEACHER_PY = "kd_det/distillers/single_teacher.py"
HOOKS_PY = "kd_det/hooks.py"
ERRORS = "tests/test_distiller_errors.py"
LOSSES = "tests/test_losses.py"


@dataclass(frozen=True)
class Case:
    """One bad input.

    Args:
        id: short name (the pytest id).
        group: the table section.
        example: what the user wrote.
        build: builds it (gets a temporary folder for files) and must raise.
        error: the exception type it must raise.
        expect: what the message must contain: the term or option, the bad value, the valid.
        xfail: the change (and the file) it needs, where the error is not yet what it must be.
        tested_in: the older test that checks it (then not checked again here).
    """

    id: str
    group: str
    example: str
    build: Callable[[Path], Any]
    error: type[BaseException]
    expect: tuple[str, ...]
    xfail: str | None = None
    tested_in: str | None = None


def _case(id: str, group: str, example: str, build: Callable[[Path], Any], error, *expect: str,
          xfail: str | None = None, tested_in: str | None = None) -> Case:  # fmt: skip
    return Case(id, group, example, build, error, expect, xfail, tested_in)


FILES, NAMES, NUMBERS, LAYERS, INPUTS, MODES, LOGITS = (
    "Files",
    "Registry names",
    "Numeric options",
    "Layer paths",
    "Inputs a loss needs",
    "Dtype and mode names",
    "Logits of a classifier and a detector",
)

CASES: list[Case] = [
    # -- files ---------------------------------------------------------------------------------
    _case("teacher-ckpt-missing", FILES, "teacher_ckpt='work_dirs/teacher/epoch_24.pth' (no such file)",
          lambda tmp: teacher_ckpt(str(tmp / "epoch_24.pth")), FileNotFoundError,
          "teacher_ckpt", "epoch_24.pth", "does not exist", "python tools/train.py"),
    _case("teacher-ckpt-truncated", FILES, "teacher_ckpt: the first half of a checkpoint",
          lambda tmp: teacher_ckpt(truncated_ckpt(tmp)), CheckpointError,
          "teacher_ckpt", "teacher.pth", "corrupt or truncated"),
    _case("teacher-ckpt-text", FILES, "teacher_ckpt: a text file",
          lambda tmp: teacher_ckpt(text_file(tmp)), CheckpointError,
          "teacher_ckpt", "teacher.pth", "is not a PyTorch checkpoint (a file written by torch.save)"),
    _case("teacher-ckpt-empty", FILES, "teacher_ckpt: an empty file",
          lambda tmp: teacher_ckpt(empty_file(tmp)), CheckpointError,
          "teacher_ckpt", "teacher.pth", "is an empty file"),
    _case("teacher-ckpt-no-weights", FILES, "teacher_ckpt: torch.save({'epoch': 24, 'lr': 0.01})",
          lambda tmp: teacher_ckpt(_save(tmp / "teacher.pth", {"epoch": 24, "lr": 0.01})),
          ValueError, "teacher_ckpt", "'epoch' (int)", "a dict of tensors by parameter name"),
    _case("teacher-ckpt-other-architecture", FILES, "teacher_ckpt: the weights of an nn.Linear",
          lambda tmp: teacher_ckpt(_save(tmp / "teacher.pth", nn.Linear(3, 3).state_dict())),
          ValueError, "teacher_ckpt", "does not fit the teacher ToyNet", "another model"),
    _case("teacher-ckpt-student-weights", FILES, "teacher_ckpt: the student's checkpoint (other widths)",
          lambda tmp: teacher_ckpt(_save(tmp / "student.pth", {"state_dict": ToyNet(4).state_dict()})),
          ValueError, "does not fit the teacher", "shape mismatches",
          tested_in=f"{ERRORS}::test_teacher_checkpoint_that_does_not_fit"),
    _case("teacher-ckpt-distillation-run", FILES, "teacher_ckpt: a checkpoint a distillation run saved",
          lambda tmp: teacher_ckpt(distiller_ckpt(tmp)), ValueError,
          "teacher_ckpt", "'student'", "python tools/export_student.py"),
    _case("teacher-ckpt-crafted", FILES, "teacher_ckpt: a checkpoint whose unpickling creates a file",
          crafted_refused, UntrustedCheckpointError,
          "teacher_ckpt", "pathlib", "KD_DET_TRUST_CHECKPOINTS"),
    _case("cfg-path-missing-file", FILES, "student=dict(cfg_path='configs/baselines/retinanet_r18-w4.py')",
          lambda tmp: toy_distiller(dict(feat=FEAT), student=dict(cfg_path="configs/baselines/retinanet_r18-w4.py")),
          ValueError, "student cfg_path", "retinanet_r18-w4.py", "'package::path' nor an existing file"),
    _case("cfg-path-package-typo", FILES, "teacher=dict(cfg_path='mmdet::retinanet/retinanet_r5_fpn_1x_coco.py')",
          lambda tmp: toy_distiller(dict(feat=FEAT), teacher=dict(cfg_path="mmdet::retinanet/retinanet_r5_fpn_1x_coco.py")),
          ValueError, "teacher cfg_path", "'retinanet/retinanet_r5_fpn_1x_coco.py'",
          "did you mean 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'?"),
    _case("cfg-path-package-not-installed", FILES, "teacher=dict(cfg_path='mmyolo::rtmdet/rtmdet_s_syncbn_fast_8xb32-300e_coco.py')",
          lambda tmp: toy_distiller(dict(feat=FEAT), teacher=dict(cfg_path="mmyolo::rtmdet/rtmdet_s_syncbn_fast_8xb32-300e_coco.py")),
          ValueError, "teacher cfg_path", "'mmyolo' is not installed", "pip install mmyolo"),
    _case("config-missing", FILES, "python tools/train.py configs/srd/nope.py",
          lambda tmp: read_config(str(tmp / "nope.py")), SystemExit, "config file", "nope.py",
          tested_in="tests/test_tool_errors.py::test_missing_config"),
    _case("load-from-missing", FILES, "load_from='work_dirs/run/epoch_3.pth' (no such file)",
          lambda tmp: check_checkpoints(Config(dict(load_from=str(tmp / "epoch_3.pth")))),
          SystemExit, "checkpoint", "epoch_3.pth", "does not exist"),
    # -- registry names ------------------------------------------------------------------------
    _case("loss-type-typo", NAMES, "loss=dict(type='MSEFeatureLos')",
          lambda tmp: feat_loss(type="MSEFeatureLos"), ValueError,
          "unknown loss type 'MSEFeatureLos'", "did you mean 'MSEFeatureLoss'?", "registered losses: ["),
    _case("loss-type-names-the-term", NAMES, "distill=dict(feat=dict(..., loss=dict(type='LogSumLos')))",
          lambda tmp: feat_loss(type="LogSumLos"), ValueError,
          "distill term 'feat'", "'LogSumLos'", "did you mean 'LogSumLoss'?"),
    _case("loss-without-type", NAMES, "loss=dict(loss_weight=2.0)",
          lambda tmp: feat_loss(loss_weight=2.0), ValueError,
          "a config dict with a 'type'", "{'loss_weight': 2.0}"),
    _case("loss-as-string", NAMES, "loss='LogSumLoss'",
          lambda tmp: feat(loss="LogSumLoss"), ValueError,
          "such as dict(type='LogSumLoss')", "got 'LogSumLoss'"),
    _case("loss-unknown-option", NAMES, "loss=dict(type='LogSumLoss', weight=2.0)",
          lambda tmp: feat_loss(type="LogSumLoss", weight=2.0), ValueError,
          "LogSumLoss: unknown option 'weight'", "did you mean 'loss_weight'?",
          "valid options: ['alpha', 'loss_weight', 'eps']"),
    _case("mapper-type-typo", NAMES, "mapper=dict(type='ForwardMaper')",
          lambda tmp: feat(mapper=dict(type="ForwardMaper")), ValueError,
          "unknown mapper type 'ForwardMaper'", "did you mean 'ForwardMapper'?", "registered mappers: ["),
    _case("mapper-unknown-option", NAMES, "mapper=dict(type='RandomMapper', sed=1)",
          lambda tmp: feat(mapper=dict(type="RandomMapper", sed=1)), ValueError,
          "RandomMapper: unknown option 'sed'", "did you mean 'seed'?", "valid options: ['seed']"),
    _case("connector-type-typo", NAMES, "connector=dict(type='ProjectNrm')",
          lambda tmp: feat(connector=dict(type="ProjectNrm")), ValueError,
          "unknown connector type 'ProjectNrm'", "did you mean 'ProjectNorm'?",
          tested_in=f"{ERRORS}::test_unknown_connector_projector_and_norm_types_list_the_registered_ones"),
    _case("projector-type-typo", NAMES, "projector=dict(type='ConvProjector')",
          lambda tmp: feat(connector=dict(type="ProjectNorm", projector=dict(type="ConvProjector"))),
          ValueError, "unknown projector type 'ConvProjector'",
          tested_in=f"{ERRORS}::test_unknown_connector_projector_and_norm_types_list_the_registered_ones"),
    _case("norm-type-typo", NAMES, "norm=dict(type='BatchNorm')",
          lambda tmp: feat(connector=dict(LINEAR, norm=dict(type="BatchNorm"))),
          ValueError, "unknown norm type 'BatchNorm'",
          tested_in=f"{ERRORS}::test_unknown_connector_projector_and_norm_types_list_the_registered_ones"),
    _case("projector-missing-option", NAMES, "projector=dict(type='MLPProjector')",
          lambda tmp: feat(connector=dict(type="ProjectNorm", projector=dict(type="MLPProjector"))),
          ValueError, "distill term 'feat'", "MLPProjector", "['hidden_channels']"),
    _case("hook-type-typo", NAMES, "custom_hooks=[dict(type='kd_det.DistillWeightScheduller', ...)]",
          lambda tmp: check_types(Config(dict(default_scope="mmdet", custom_hooks=[
              dict(type="kd_det.DistillWeightScheduller", schedules={})]))),
          SystemExit, "custom_hooks[0]", "'kd_det.DistillWeightScheduller'",
          "did you mean 'kd_det.DistillWeightScheduler'?"),
    _case("hook-without-scope", NAMES, "custom_hooks=[dict(type='DistillWeightScheduler', ...)] in an mmdet config",
          lambda tmp: check_types(Config(dict(default_scope="mmdet", custom_hooks=[
              dict(type="DistillWeightScheduler", schedules={})]))),
          SystemExit, "'DistillWeightScheduler'", "in scope 'mmdet'",
          "did you mean 'kd_det.DistillWeightScheduler'?"),
    _case("distiller-type-typo", NAMES, "model=dict(type='kd_det.SingleTeacherDistiler', ...)",
          lambda tmp: check_types(Config(dict(default_scope="mmdet", model=dict(
              type="kd_det.SingleTeacherDistiler")))),
          SystemExit, "model", "'kd_det.SingleTeacherDistiler'",
          "did you mean 'kd_det.SingleTeacherDistiller'?"),
    _case("student-type-typo", NAMES, "student=dict(type='RetinaNett', _scope_='mmdet', ...)",
          lambda tmp: toy_distiller(dict(feat=FEAT), student=dict(type="RetinaNett", _scope_="mmdet")),
          ValueError, "student model", "'RetinaNett'", "did you mean 'RetinaNet'?"),
    _case("student-part-type-typo", NAMES, "student=dict(type='RetinaNet', backbone=dict(type='ResNett', ...))",
          lambda tmp: nested_typo(), ValueError,
          "student model 'RetinaNet'", "'ResNett'", "did you mean 'ResNet'?"),
    # -- numeric options -----------------------------------------------------------------------
    _case("loss-weight-nan", NUMBERS, "loss=dict(type='MSEFeatureLoss', loss_weight=float('nan'))",
          lambda tmp: feat_loss(type="MSEFeatureLoss", loss_weight=NAN), ValueError,
          "MSEFeatureLoss: loss_weight", "got nan", "a finite number >= 0"),
    _case("loss-weight-negative", NUMBERS, "loss=dict(type='LogSumLoss', loss_weight=-2.0)",
          lambda tmp: feat_loss(type="LogSumLoss", loss_weight=-2.0), ValueError,
          "LogSumLoss: loss_weight", "got -2.0", "a finite number >= 0"),
    _case("loss-weight-string", NUMBERS, "loss=dict(type='PKDLoss', loss_weight='6')",
          lambda tmp: feat_loss(type="PKDLoss", loss_weight="6"), ValueError,
          "PKDLoss: loss_weight", "got '6'", "a finite number >= 0"),
    _case("alpha-inf", NUMBERS, "loss=dict(type='LogSumLoss', alpha=float('inf'))",
          lambda tmp: feat_loss(type="LogSumLoss", alpha=INF), ValueError,
          "LogSumLoss: alpha", "got inf", "a finite number > 0"),
    _case("alpha-zero", NUMBERS, "loss=dict(type='CorrelationLoss', alpha=0.0)",
          lambda tmp: feat_loss(type="CorrelationLoss", alpha=0.0), ValueError, "alpha",
          tested_in=f"{LOSSES}::test_alpha_must_be_positive"),
    _case("eps-negative", NUMBERS, "loss=dict(type='CosineFeatureLoss', eps=-1e-6)",
          lambda tmp: feat_loss(type="CosineFeatureLoss", eps=-1e-6), ValueError,
          "CosineFeatureLoss: eps", "got -1e-06", "a finite number > 0"),
    _case("tau-zero", NUMBERS, "loss=dict(type='LogitKDLoss', tau=0)",
          lambda tmp: logits(type="LogitKDLoss", tau=0), ValueError,
          "LogitKDLoss: tau", "got 0", "a finite number > 0"),
    _case("tau-nan", NUMBERS, "loss=dict(type='ChannelWiseDivergence', tau=float('nan'))",
          lambda tmp: feat_loss(type="ChannelWiseDivergence", tau=NAN), ValueError,
          "ChannelWiseDivergence: tau", "got nan",
          tested_in=f"{LOSSES}::test_cwd_rejects_bad_input"),
    _case("chi-nan", NUMBERS, "loss=dict(type='SigmoidKDLoss', chi=float('nan'))",
          lambda tmp: logits(type="SigmoidKDLoss", chi=NAN), ValueError,
          "SigmoidKDLoss: chi", "got nan", "must be 1"),
    _case("beta-between-0-and-1", NUMBERS, "loss=dict(type='SigmoidKDLoss', beta=0.5)",
          lambda tmp: logits(type="SigmoidKDLoss", beta=0.5), ValueError,
          "SigmoidKDLoss: beta", "got 0.5", "0 (off) or a number >= 1",
          tested_in=f"{LOSSES}::test_sigmoid_kd_rejects_bad_options"),
    _case("norm-eps-negative", NUMBERS, "norm=dict(type='AffineFreeBN', eps=-1e-4)",
          lambda tmp: feat(connector=dict(LINEAR, norm=dict(type="AffineFreeBN", eps=-1e-4))),
          ValueError, "distill term 'feat'", "AffineFreeBN: eps", "got -0.0001", "a finite number > 0"),
    _case("norm-eps-nan", NUMBERS, "norm=dict(type='ChannelLayerNorm', eps=float('nan'))",
          lambda tmp: feat(connector=dict(LINEAR, norm=dict(type="ChannelLayerNorm", eps=NAN))),
          ValueError, "distill term 'feat'", "ChannelLayerNorm: eps", "got nan", "a finite number > 0"),
    _case("hidden-channels-zero", NUMBERS, "projector=dict(type='MLPProjector', hidden_channels=0)",
          lambda tmp: feat(connector=dict(type="ProjectNorm", projector=dict(type="MLPProjector", hidden_channels=0))),
          ValueError, "MLPProjector: hidden_channels must be a positive int, got 0",
          tested_in="tests/test_connectors.py::test_mlp_projector_layers"),
    _case("mapper-seed-nan", NUMBERS, "mapper=dict(type='RandomMapper', seed=float('nan'))",
          lambda tmp: feat(mapper=dict(type="RandomMapper", seed=NAN)), ValueError,
          "RandomMapper: seed must be an int", "nan"),
    _case("mapper-index-out-of-range", NUMBERS, "mapper=dict(type='AllToOneMapper', teacher_index=3) with 2 teacher layers",
          lambda tmp: feat(mapper=dict(type="AllToOneMapper", teacher_index=3)), ValueError,
          "distill term 'feat'", "teacher_index=3", "valid: -2 … 1"),
    _case("schedule-warmup-nan", NUMBERS, "DistillWeightScheduler(schedules=dict(fpn=dict(warmup_iters=float('nan'))))",
          lambda tmp: schedule(warmup_iters=NAN), ValueError,
          "schedule of term 'fpn'", "warmup_iters", "got nan", ">= 0"),
    _case("schedule-stop-negative", NUMBERS, "DistillWeightScheduler(schedules=dict(fpn=dict(stop_iter=-1)))",
          lambda tmp: schedule(stop_iter=-1), ValueError,
          "schedule of term 'fpn'", "stop_iter", "got -1", ">= 0"),
    _case("probe-size-zero", NUMBERS, "probe_size=(0, 0)",
          lambda tmp: digits("detector", "detector", dict(fpn=dict(student="neck", teacher="neck",
                             loss=dict(type="MSEFeatureLoss"))), probe_size=(0, 0)),
          ValueError, "probe_size", "(0, 0)", "positive"),
    # -- layer paths ---------------------------------------------------------------------------
    _case("student-layer-never-runs", LAYERS, "student='spare' (a module the forward never calls)",
          lambda tmp: toy_distiller(dict(feat=dict(FEAT, student="spare")), student=SpareToyNet(4)),
          ValueError, "distill term 'feat'", "student", "'spare'", "did not run"),
    _case("teacher-layer-never-runs", LAYERS, "teacher='spare' (a module the forward never calls)",
          lambda tmp: toy_distiller(dict(feat=dict(FEAT, teacher="spare")), teacher=SpareToyNet(8)),
          ValueError, "distill term 'feat'", "teacher", "'spare'", "did not run"),
    _case("detector-head-called-by-forward", LAYERS, "student='bbox_head', teacher='bbox_head' (RetinaNet calls bbox_head.forward(x): no hook fires)",
          lambda tmp: digits("detector", "detector", dict(head=dict(student="bbox_head", teacher="bbox_head",
                             loss=dict(type="SigmoidKDLoss")))),
          ValueError, "distill term 'head'", "'bbox_head'", "did not run"),
    _case("empty-layer-list", LAYERS, "student=[]",
          lambda tmp: feat(student=[]), ValueError,
          "distill term 'feat'", "no student layers given"),
    _case("layer-typo", LAYERS, "student='block.*'",
          lambda tmp: feat(student="block.*"), ValueError,
          "student layer 'block.*' does not exist in ToyNet",
          tested_in=f"{ERRORS}::test_unknown_layer_names_the_closest_valid_paths"),
    _case("layer-without-tensor", LAYERS, "student='stats' (returns a dict)",
          lambda tmp: toy_distiller(dict(feat=dict(FEAT, student="stats")), student=DictToyNet(4)),
          ValueError, "layer 'stats' produced dict", "only a tensor or a tuple/list of tensors"),
    # -- inputs a loss needs -------------------------------------------------------------------
    _case("maps-loss-on-vectors", INPUTS, "student='head', teacher='head' ([B, 10] vectors), loss=dict(type='ChannelWiseDivergence')",
          lambda tmp: toy_distiller(dict(feat=dict(HEAD, loss=dict(type="ChannelWiseDivergence")))),
          ValueError, "distill term 'feat'", "ChannelWiseDivergence", "needs maps [B, C, H, W]"),
    _case("labels-the-term-cannot-supply", INPUTS, "loss=dict(type='SigmoidKDLoss', chi=0.5)",
          lambda tmp: logits(type="SigmoidKDLoss", chi=0.5), ValueError,
          "SigmoidKDLoss: chi=0.5 < 1", "assigner", "use chi=1",
          tested_in=f"{LOSSES}::test_sigmoid_kd_rejects_bad_options"),
    _case("logit-loss-with-projector", INPUTS, "student='head', teacher='head', connector=<LinearProjector>, loss=dict(type='LogitKDLoss')",
          lambda tmp: toy_distiller(dict(logits=dict(HEAD, connector=LINEAR))), ValueError,
          "LogitKDLoss compares logits", "take no projector",
          tested_in=f"{ERRORS}::test_logit_losses_take_no_projector_and_need_the_same_classes"),
    _case("logit-classes-differ", INPUTS, "LogitKDLoss between heads of 10 and 11 classes",
          lambda tmp: toy_distiller(dict(logits=HEAD), teacher=ToyNet(8, num_classes=11)), ValueError,
          "student head has 10 classes and the teacher head 11",
          tested_in=f"{ERRORS}::test_logit_losses_take_no_projector_and_need_the_same_classes"),
    # -- dtype and mode names ------------------------------------------------------------------
    _case("teacher-dtype", MODES, "teacher_dtype='bfloat16'",
          lambda tmp: toy_distiller(dict(feat=FEAT), teacher_dtype="bfloat16"), ValueError,
          "teacher_dtype", "got 'bfloat16'", "did you mean 'bf16'?"),
    _case("predict-with", MODES, "predict_with='both'",
          lambda tmp: toy_distiller(dict(feat=FEAT), predict_with="both"), ValueError,
          "predict_with must be 'student' or 'teacher'", "got 'both'"),
    _case("nonfinite", MODES, "nonfinite='ignore'",
          lambda tmp: toy_distiller(dict(feat=FEAT), nonfinite="ignore"), ValueError,
          "nonfinite must be one of ['raise', 'skip']", "got 'ignore'"),
    _case("align", MODES, "align='bilinear'",
          lambda tmp: feat(align="bilinear"), ValueError,
          "distill term 'feat'", "align must be one of ('resize', 'none')", "got 'bilinear'"),
    _case("capture", MODES, "capture='inputs'",
          lambda tmp: feat(capture="inputs"), ValueError,
          "distill term 'feat'", "got 'inputs'", "did you mean 'input'?"),
    _case("normalize", MODES, "loss=dict(type='SigmoidKDLoss', normalize='teacher-sum')",
          lambda tmp: logits(type="SigmoidKDLoss", normalize="teacher-sum"), ValueError,
          "SigmoidKDLoss: normalize must be one of ('teacher_sum', 'num_images', 'mean')",
          "got 'teacher-sum'", "did you mean 'teacher_sum'?"),
    _case("schedule-decay", MODES, "DistillWeightScheduler(schedules=dict(fpn=dict(decay='cos')))",
          lambda tmp: schedule(decay="cos"), ValueError,
          "schedule of term 'fpn'", "got 'cos'", "did you mean 'cosine'?"),
    _case("schedule-key", MODES, "DistillWeightScheduler(schedules=dict(fpn=dict(warmup=100)))",
          lambda tmp: schedule(warmup=100), ValueError,
          "schedule of term 'fpn'", "unknown keys ['warmup']", "did you mean 'warmup_iters'?"),
    # -- logits of a classifier and a detector -------------------------------------------------
    _case("classifier-from-detector", LOGITS, "classifier student 'head.fc' <- RetinaNet teacher 'bbox_head.retina_cls', LogitKDLoss",
          lambda tmp: digits("classifier", "detector", dict(logits=dict(
              student="head.fc", teacher="bbox_head.retina_cls", loss=dict(type="LogitKDLoss"))),
              probe_size=(32, 32)),
          ValueError, "distill term 'logits'", "(2, 10)", "both must be vectors [B, C] or both maps"),
    _case("detector-from-classifier", LOGITS, "RetinaNet student 'bbox_head.retina_cls' <- classifier teacher 'head.fc', SigmoidKDLoss",
          lambda tmp: digits("detector", "classifier", dict(logits=dict(
              student="bbox_head.retina_cls", teacher="head.fc", loss=dict(type="SigmoidKDLoss"))),
              probe_size=(32, 32)),
          ValueError, "distill term 'logits'", "(2, 10)", "both must be vectors [B, C] or both maps"),
]  # fmt: skip


# ------------------------------------------------------------------------------------------
# Running a case: the real error, normalised for the document
# ------------------------------------------------------------------------------------------

SITE_PACKAGES = sysconfig.get_paths()["purelib"]


@dataclass(frozen=True)
class Outcome:
    error: str  # the exception's class name
    message: str  # its message, temporary folder and install paths replaced
    where: str  # file:function of the frame that raised it


SHARED_CHECKS = ("check_number", "check_type", "check_options", "_tensors")


def _frame(frame: traceback.FrameSummary) -> str:
    path = frame.filename
    for root in (SITE_PACKAGES + os.sep, str(REPO) + os.sep):
        path = path.removeprefix(root)
    return f"{path}:{frame.name}"


def _where(err: BaseException) -> str:
    """``file:function`` that raised ``err``; a shared check is shown after its caller."""
    frames = traceback.extract_tb(err.__traceback__)
    where = _frame(frames[-1])
    if frames[-1].name in SHARED_CHECKS and len(frames) > 1:
        where = f"{_frame(frames[-2])} → {where}"
    return where


def normalise(message: str, tmp: Path) -> str:
    """``message`` with the temporary folder shown as ``/path/to`` and installed packages
    as ``<site-packages>``, so the document does not change from run to run."""
    message = message.replace(str(tmp), "/path/to").replace(SITE_PACKAGES, "<site-packages>")
    return message.replace(str(REPO) + os.sep, "")


def run_case(case: Case, tmp: Path) -> Outcome | None:
    """Build ``case``; the error it raised (``None`` if it built)."""
    try:
        case.build(tmp)
    except (Exception, SystemExit) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return Outcome(type(err).__name__, normalise(message, tmp), _where(err))
    return None


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


def _params() -> list:
    marks = lambda c: [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []  # noqa: E731
    return [pytest.param(c, id=c.id, marks=marks(c)) for c in CASES if c.tested_in is None]


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_one_clear_error(case: Case, tmp_path: Path) -> None:
    with pytest.raises(case.error) as info:
        case.build(tmp_path)
    message = str(info.value)
    missing = [part for part in case.expect if part not in message]
    assert not missing, f"{case.id}: {missing} not in the message:\n{message}"


def test_the_catalogue() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert sum(c.tested_in is None for c in CASES) >= 30
    for case in CASES:
        assert case.expect, case.id
        if case.tested_in:  # the older test exists and is collected under that name
            path, name = case.tested_in.split("::")
            assert f"def {name}(" in (REPO / path).read_text(), case.tested_in


def test_every_loss_refuses_nan_negative_and_infinite_weights() -> None:
    from kd_det.registry import MODELS, registered

    losses = registered("loss", MODELS)
    assert len(losses) >= 8
    for name in losses:
        cls = MODELS.get(name)
        for bad in (NAN, -1.0, INF, "1"):
            with pytest.raises(
                ValueError, match=rf"{name}: loss_weight must be a finite number >= 0, got {bad!r}"
            ):
                cls(loss_weight=bad)
        assert cls(loss_weight=0.0).loss_weight == 0.0  # a switched-off term is allowed
        assert math.isfinite(cls(loss_weight=3).loss_weight)


def test_doc_table_is_up_to_date(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bad_input_table", REPO / "tools/bad_input_table.py"
    )
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    written = (REPO / "docs/bad_input.md").read_text()
    assert written == tool.render(tmp_path), (
        "docs/bad_input.md is out of date: run python tools/bad_input_table.py"
    )
