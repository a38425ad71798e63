"""Every shipped config parses, and every distiller config builds its model.

Building runs the distiller's construction-time checks (layer names, shapes through a probe
batch, projector widths) on the real student/teacher models, COCO R-101/R-50 and ImageNet
ones included, with ``teacher_ckpt=None``. ``init_weights`` of the student is never called
at construction. The distiller does initialise a teacher without a checkpoint, and the mmdet
R-101 configs would fetch ImageNet weights (``init_cfg=Pretrained``) for it, so the COCO configs
give the teacher ``init_cfg=None`` (its weights come from ``teacher_ckpt``). A socket guard
makes any download attempt fail the test instead of hanging.
"""

from __future__ import annotations

import copy
import functools
import socket
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.model import BaseModule
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import kd_det  # noqa: F401  (registers kd_det's modules)
from kd_det.distillers.single_teacher import SingleTeacherDistiller

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(p for p in CONFIGS.rglob("*.py") if "_base_" not in p.parts)


def _rel(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


@functools.cache
def _parsed(path: Path) -> Config:
    return Config.fromfile(path)


def _load(path: Path) -> Config:
    """A fresh copy of the parsed config (parsing is cached: it costs ~0.3 s a file)."""
    return copy.deepcopy(_parsed(path))


def _is_distiller(cfg: Config) -> bool:
    model = cfg.get("model")
    return isinstance(model, dict) and "Distiller" in str(model.get("type", ""))


DISTILLERS = [p for p in ALL if _is_distiller(_parsed(p))]
# Built student/teacher pairs, by their model config: the digits variants share one pair and
# differ only in their distill terms, so each further variant builds just its terms (and runs
# the shape probe) on the pair already built.
_BUILT: dict[str, SingleTeacherDistiller] = {}


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if building a model tries to reach the network (a weight download)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted while building a model: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_the_expected_configs_exist() -> None:
    names = {_rel(p) for p in DISTILLERS}
    expected = {
        "distill/retinanet/pkd-logsum_retinanet_r101-r50_fpn_1x_coco.py",
        "distill/gfl/pkd-logsum_gfl_r101-r50_fpn_1x_coco.py",
        "distill/fcos/pkd-logsum_fcos_r101-r50-caffe_fpn_gn-head_1x_coco.py",
        "distill/faster_rcnn/pkd-logsum_faster-rcnn_r101-r50_fpn_1x_coco.py",
        "classification/pkd-logsum_resnet34-resnet18_8xb32_in1k.py",
        "classification/pkd-logsum_resnet34-resnet18_8xb16_cifar100.py",
        "demo/resnet_pkd-logsum_digits_cls.py",
        "demo/retinanet_pkd-logsum_digits.py",
    }
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_config_parses(path: Path) -> None:
    cfg = _load(path)
    assert "model" in cfg, f"{_rel(path)} defines no model"
    if _is_distiller(cfg):
        assert cfg.get("custom_imports", {}).get("imports") == ["kd_det"]
        # the Runner would put a top-level preprocessor into the distiller, which refuses it
        assert cfg.get("data_preprocessor") is None, _rel(path)


@pytest.mark.parametrize("path", DISTILLERS, ids=_rel)
def test_distiller_config_builds(path: Path, no_network, monkeypatch) -> None:
    # With teacher_ckpt=None the distiller initialises the teacher; that random init says nothing
    # about the config and is most of the build time (mmengine logs a statistic of every
    # parameter), so it is skipped here. The Runner test below keeps it (and the network guard).
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = _load(path)
    cfg.model.teacher_ckpt = None
    key = repr((cfg.get("default_scope"), cfg.model.student, cfg.model.teacher))
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope")):
        if key in _BUILT:
            shared = cfg.model.to_dict()
            shared.update(type=SingleTeacherDistiller, student=_BUILT[key].student)
            shared.update(teacher=_BUILT[key].teacher)
            model = MODELS.build(shared)
        else:
            model = _BUILT[key] = MODELS.build(cfg.model)
    assert isinstance(model, SingleTeacherDistiller)
    assert len(model.terms) == len(cfg.model.distill)
    # every projector maps to the teacher's width and is trained with the student
    names = {name for name, _ in model.named_parameters()}
    assert not any(n.startswith("teacher.") for n in names)
    for term in model.terms:
        for s_conn, t_conn in zip(term.student_connectors, term.teacher_connectors, strict=True):
            assert s_conn.out_channels == t_conn.in_channels


COCO_EXPECTED = {
    # config -> (student backbone depth, teacher backbone depth, distill term names)
    "distill/retinanet/pkd-logsum_retinanet_r101-r50_fpn_1x_coco.py": (50, 101, ["fpn", "cls"]),
    "distill/gfl/pkd-logsum_gfl_r101-r50_fpn_1x_coco.py": (50, 101, ["fpn", "cls"]),
    "distill/fcos/pkd-logsum_fcos_r101-r50-caffe_fpn_gn-head_1x_coco.py": (50, 101, ["fpn"]),
    "distill/faster_rcnn/pkd-logsum_faster-rcnn_r101-r50_fpn_1x_coco.py": (50, 101, ["fpn"]),
}


@pytest.mark.parametrize("rel", sorted(COCO_EXPECTED))
def test_coco_configs_are_complete(rel: str) -> None:
    cfg = _load(CONFIGS / rel)
    s_depth, t_depth, terms = COCO_EXPECTED[rel]
    assert cfg.default_scope == "mmdet"
    assert cfg.train_dataloader.dataset.data_root == "data/coco/"
    assert cfg.train_dataloader.dataset.ann_file == "annotations/instances_train2017.json"
    assert cfg.val_evaluator.ann_file == "data/coco/annotations/instances_val2017.json"
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.model.student.cfg_path.startswith("mmdet::")
    assert cfg.model.teacher.cfg_path.startswith("mmdet::")
    assert f"r{s_depth}" in cfg.model.student.cfg_path
    assert f"r{t_depth}" in cfg.model.teacher.cfg_path
    assert cfg.model.teacher_ckpt.startswith("checkpoints/")
    assert [t["name"] for t in cfg.model.distill] == terms
    fpn = cfg.model.distill[0]
    assert fpn.connector == dict(projector="linear", norm="batchnorm")
    assert fpn.loss == dict(type="LogSumLoss", alpha=4.0, loss_weight=2.0)


def test_mmpretrain_config_builds_through_the_runner(tmp_path: Path, no_network) -> None:
    """The path a user takes: the Runner, which puts a top-level ``data_preprocessor`` into the
    model dict. The CIFAR-100 config moves mmpretrain's into the student."""
    cfg = _load(CONFIGS / "classification/pkd-logsum_resnet34-resnet18_8xb16_cifar100.py")
    cfg.model.teacher_ckpt = None
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert isinstance(model, SingleTeacherDistiller)
    assert model.student.head.fc.out_features == 100
    assert model.teacher.head.fc.out_features == 100
    assert model.teacher.backbone.depth == 34 and model.student.backbone.depth == 18
    # CIFAR-100's statistics, not the ClsDataPreprocessor default (no normalisation)
    assert model.data_preprocessor is model.student.data_preprocessor
    mean = model.data_preprocessor.mean.flatten().tolist()
    assert mean == pytest.approx([129.304, 124.070, 112.434])

    # the same config with mmpretrain's top-level preprocessor left in place is refused
    bad = _load(CONFIGS / "classification/pkd-logsum_resnet34-resnet18_8xb16_cifar100.py")
    bad.model.teacher_ckpt = None
    bad.data_preprocessor = dict(num_classes=100, mean=[0.0] * 3, std=[1.0] * 3)
    bad.work_dir = str(tmp_path / "bad")
    with pytest.raises(ValueError, match="student's data_preprocessor"):
        Runner.from_cfg(bad)
