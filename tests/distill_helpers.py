"""Config text for distiller tests on the digits set, and an in-process Runner."""

from __future__ import annotations

import itertools
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

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
FPN_TERM = """dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
         connector=dict(projector='linear', norm='batchnorm'),
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
    distill=[{terms}])
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
    distill=[{terms}])
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
    """Build only the distiller of a config, as the Runner would (kd_det.benchmark's builder)."""
    from kd_det.benchmark import build_distiller as build

    cfg = Config.fromfile(str(cfg_path))
    cfg.model.update(model_options)
    return build(cfg)
