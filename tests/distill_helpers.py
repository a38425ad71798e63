"""Config text for distiller tests on the digits set, an in-process Runner and toy models."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import Tensor, nn

from kd_det.apis import build_model_from_cfg
from tests.conftest import (
    cls_data_overrides,
    det_data_overrides,
    short_schedule,
    write_config,
)

DET_BASES = [
    "_base_/datasets/digits_detection.py",
    "_base_/schedules/digits_adamw.py",
    "_base_/digits_runtime.py",
]
CLS_BASES = [
    "_base_/models/digits_classifiers.py",
    "_base_/datasets/digits_classification.py",
    "_base_/schedules/digits_cls_adamw.py",
    "_base_/digits_cls_runtime.py",
]
# the connector of arXiv:2303.11098: linear projector, then affine-free BatchNorm
SRD_CONNECTOR = (
    "dict(type='ProjectNorm', projector=dict(type='LinearProjector'), "
    "norm=dict(type='AffineFreeBN'))"
)
LINEAR_CONNECTOR = "dict(type='ProjectNorm', projector=dict(type='LinearProjector'))"
FPN_TERM = f"""fpn=dict(student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
         connector={SRD_CONNECTOR},
         loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))"""
# the classification conv of each dense head (one call per FPN level)
CLS_LAYERS = {
    "retinanet": "bbox_head.retina_cls",
    "fcos": "bbox_head.conv_cls",
    "gfl": "bbox_head.gfl_cls",
}


def det_distill_config(
    path: Path,
    digits_root: Path,
    family: str = "retinanet",
    terms: str = FPN_TERM,
    epochs: int = 1,
    extra: str = "",
    model_extra: str = "",
    student: str | None = None,
) -> Path:
    student = student or f"{{{{_base_.{family}_student}}}}"
    body = (
        det_data_overrides(digits_root)
        + short_schedule(epochs)
        + f"""
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={student},
    teacher={{{{_base_.{family}_teacher}}}},
    teacher_ckpt=None,
    {model_extra}
    distill=dict({terms}))
{extra}
"""
    )
    return write_config(path, [f"_base_/models/digits_{family}.py", *DET_BASES], body)


def cls_distill_config(path: Path, digits_root: Path, terms: str, epochs: int = 1) -> Path:
    body = (
        cls_data_overrides(digits_root)
        + short_schedule(epochs)
        + f"""
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{{{_base_.resnet_student}}}},
    teacher={{{{_base_.resnet_teacher}}}},
    teacher_ckpt=None,
    probe_size=(32, 32),
    distill=dict({terms}))
"""
    )
    return write_config(path, CLS_BASES, body)


_runner_count = itertools.count()


def make_runner(cfg_path: Path, work_dir: Path, **options) -> Runner:
    cfg = Config.fromfile(str(cfg_path))
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    # names of its own: mmengine's logger, message hub and visualizer are singletons per name,
    # and mmdet's runtime names its visualizer 'visualizer' - a second Runner in the same
    # process would otherwise log into the first one's work dir
    cfg.experiment_name = f"{work_dir.parent.name}_{work_dir.name}_{next(_runner_count)}"
    cfg.visualizer.name = cfg.experiment_name
    return Runner.from_cfg(cfg)


def build_distiller(cfg_path: Path, **model_options):
    """Build only the distiller of a config, as the Runner would, with ``model`` overrides."""
    return build_model_from_cfg(cfg_path, {f"model.{k}": v for k, v in model_options.items()})


class ToyNet(BaseModel):
    """A tiny classifier with the (inputs, data_samples, mode) interface of mmengine models.

    ``stem`` (3 -> width, stride 1), ``blocks.0`` / ``blocks.1`` (stride 2 each), ``pool``
    (global average, ``[B, width]``) and ``head`` (``num_classes`` logits); ``loss`` is the mean
    squared logit, enough for a distiller to add its terms to.
    """

    def __init__(self, width: int, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        x = torch.relu(self.stem(inputs))
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.head(self.pool(x).flatten(1))

    def loss(self, inputs: Tensor, data_samples: list | None = None) -> dict[str, Tensor]:
        return {"loss_toy": self(inputs).pow(2).mean()}


def toy_distiller(distill, student_width: int = 4, teacher_width: int = 8, **kwargs):
    """A SingleTeacherDistiller between two :class:`ToyNet` s, probed on 16x16 images."""
    from kd_det.distillers import SingleTeacherDistiller

    torch.manual_seed(0)
    return SingleTeacherDistiller(
        student=kwargs.pop("student", ToyNet(student_width)),
        teacher=kwargs.pop("teacher", ToyNet(teacher_width)),
        distill=distill,
        probe_size=(16, 16),
        **kwargs,
    )
