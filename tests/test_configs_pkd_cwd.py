"""The PKD and CWD configs: every one parses and states the recipe it documents; the digits ones
build as distillers and give a finite, differentiable distill loss on a probe batch.

The COCO configs are checked as configs (models, checkpoints, terms, losses and weights); they
are not built here (building an R-101/R-50 pair takes several seconds each on a CPU).
"""

from __future__ import annotations

import copy
import functools
import socket
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.model import BaseModule

from kd_det.apis import build_model_from_cfg
from kd_det.distillers.single_teacher import SingleTeacherDistiller

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PKD_CWD = sorted([*(CONFIGS / "pkd").glob("*.py"), *(CONFIGS / "cwd").glob("*.py")])
DIGITS = [p for p in PKD_CWD if p.stem.endswith("_digits")]

FOUR_LEVELS = [[0, 0], [1, 1], [2, 2], [3, 3]]
COCO_EXPECTED = {
    # config -> (mmdet student config, teacher checkpoint stem, term, (loss type, weight, tau))
    "pkd/pkd_retinanet-r101-r50_fpn_1x_coco.py": (
        "retinanet/retinanet_r50_fpn_1x_coco.py", "retinanet_r101_fpn_1x_coco",
        "fpn", ("PKDLoss", 10.0, None)),
    "pkd/pkd_gfl-r101-r50_fpn_1x_coco.py": (
        "gfl/gfl_r50_fpn_1x_coco.py", "gfl_r101_fpn_mstrain_2x_coco",
        "fpn", ("PKDLoss", 10.0, None)),
    "pkd/pkd_fcos-r101-r50-caffe_fpn_gn-head_1x_coco.py": (
        "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py", "fcos_r101_caffe_fpn_gn-head_1x_coco",
        "fpn", ("PKDLoss", 10.0, None)),
    "pkd/pkd_faster-rcnn-r101-r50_fpn_1x_coco.py": (
        "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "faster_rcnn_r101_fpn_1x_coco",
        "fpn", ("PKDLoss", 6.0, None)),
    "cwd/cwd_retinanet-r101-r50_fpn_1x_coco.py": (
        "retinanet/retinanet_r50_fpn_1x_coco.py", "retinanet_r101_fpn_1x_coco",
        "fpn", ("ChannelWiseDivergence", 10.0, 1.0)),
    "cwd/cwd_gfl-r101-r50_fpn_1x_coco.py": (
        "gfl/gfl_r50_fpn_1x_coco.py", "gfl_r101_fpn_mstrain_2x_coco",
        "fpn", ("ChannelWiseDivergence", 10.0, 1.0)),
    "cwd/cwd-cls_gfl-r101-r50_fpn_1x_coco.py": (
        "gfl/gfl_r50_fpn_1x_coco.py", "gfl_r101_fpn_mstrain_2x_coco",
        "cls", ("ChannelWiseDivergence", 5.0, 1.0)),
    "cwd/cwd_fcos-r101-r50-caffe_fpn_gn-head_1x_coco.py": (
        "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py", "fcos_r101_caffe_fpn_gn-head_1x_coco",
        "fpn", ("ChannelWiseDivergence", 10.0, 1.0)),
    "cwd/cwd_faster-rcnn-r101-r50_fpn_1x_coco.py": (
        "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "faster_rcnn_r101_fpn_1x_coco",
        "fpn", ("ChannelWiseDivergence", 10.0, 1.0)),
}  # fmt: skip


def _rel(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


@functools.cache
def _parsed(path: Path) -> Config:
    return Config.fromfile(path)


def _load(path: Path) -> Config:
    return copy.deepcopy(_parsed(path))


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if building a model tries to reach the network (a weight download)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted while building a model: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_every_family_has_both_methods() -> None:
    names = {_rel(p) for p in PKD_CWD}
    digits = {
        "pkd/pkd_retinanet-w32-w8_fpn_24e_digits.py",
        "cwd/cwd_retinanet-w32-w8_fpn_24e_digits.py",
    }
    assert names == set(COCO_EXPECTED) | digits


@pytest.mark.parametrize("path", PKD_CWD, ids=_rel)
def test_config_parses_as_a_distiller(path: Path) -> None:
    cfg = _load(path)
    assert cfg.model.type == "kd_det.SingleTeacherDistiller"
    assert cfg.get("custom_imports", {}).get("imports") == ["kd_det"]
    # the Runner would put a top-level preprocessor into the distiller, which refuses it
    assert cfg.get("data_preprocessor") is None
    assert isinstance(cfg.model.distill, dict) and cfg.model.distill
    method = path.parent.name
    loss_type = {"pkd": "PKDLoss", "cwd": "ChannelWiseDivergence"}[method]
    for name, term in cfg.model.distill.items():
        if term is None:
            continue
        assert "name" not in term, f"{_rel(path)}: term {name!r} names itself; the key is its name"
        assert term.loss.type == loss_type


@pytest.mark.parametrize("rel", sorted(COCO_EXPECTED))
def test_coco_config_states_its_recipe(rel: str) -> None:
    cfg = _load(CONFIGS / rel)
    student_cfg, ckpt, term_name, (loss_type, weight, tau) = COCO_EXPECTED[rel]
    assert cfg.default_scope == "mmdet"
    assert cfg.train_dataloader.dataset.data_root == "data/coco/"
    assert cfg.train_dataloader.dataset.ann_file == "annotations/instances_train2017.json"
    assert cfg.val_evaluator.ann_file == "data/coco/annotations/instances_val2017.json"
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.model.student.cfg_path == f"mmdet::{student_cfg}"
    assert cfg.model.teacher.cfg_path.startswith("mmdet::")
    assert "r101" in cfg.model.teacher.cfg_path
    # teacher weights come from the checkpoint only: no ImageNet download for its backbone
    assert cfg.model.teacher.backbone == dict(init_cfg=None)
    assert cfg.model.teacher_ckpt.startswith(f"checkpoints/{ckpt}")
    terms = {k: v for k, v in cfg.model.distill.items() if v is not None}
    assert list(terms) == [term_name]
    term = terms[term_name]
    # FPNs (and heads) have the same widths: no projector
    assert "connector" not in term
    assert term.loss.type == loss_type
    assert term.loss.loss_weight == weight
    if tau is not None:
        assert term.loss.tau == tau
    if term_name == "cls":  # CWD on GFL's classification logits, one layer per level
        assert term.student == term.teacher == "bbox_head.gfl_cls"
    else:
        assert term.student == term.teacher == "neck"
    if loss_type == "PKDLoss":  # MMRazor's PKD configs distil FPN outputs 0-3
        assert term.mapper == dict(type="ExplicitMapper", pairs=FOUR_LEVELS)
    else:  # MMRazor's CWD configs distil all five
        assert "mapper" not in term


@pytest.mark.parametrize("path", DIGITS, ids=_rel)
def test_digits_config_builds_and_distils(path: Path, no_network, monkeypatch) -> None:
    # The teacher's random initialisation (teacher_ckpt=None) says nothing about the config and
    # is most of the build time.
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = _load(path)
    assert cfg.model.teacher_ckpt == "work_dirs/retinanet_r18-w32_fpn_24e_digits/epoch_24.pth"
    model = build_model_from_cfg(cfg, {"model.teacher_ckpt": None})
    assert isinstance(model, SingleTeacherDistiller)
    assert list(model.terms) == ["fpn"]
    term = model.terms["fpn"]
    assert type(term.loss).__name__ == cfg.model.distill.fpn.loss.type
    # three FPN levels, 32 wide on the student and 96 on the teacher: a projector per level
    assert len(term.pair_labels) == 3
    # (bias-free 1x1 conv, 32 -> 96: 32·96 weights each, and no other parameter in the term)
    assert sorted(p.numel() for p in term.parameters()) == [32 * 96] * 3
    # no trainable teacher parameters; the projectors train with the student
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert not any(n.startswith("teacher.") for n in names)
    # the distill loss on pairs of maps of the recorded shapes is finite and reaches the student
    g = torch.Generator().manual_seed(0)
    s_layers = [torch.randn(2, 32, n, n, generator=g, requires_grad=True) for n in (16, 8, 4)]
    t_layers = [torch.randn(2, 96, n, n, generator=g) for n in (16, 8, 4)]
    loss = term(s_layers, t_layers)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s_layers)


@pytest.mark.parametrize("method", ["pkd", "cwd"])
def test_metafile_lists_every_config(method: str) -> None:
    meta = yaml.safe_load((CONFIGS / method / "metafile.yml").read_text())
    (collection,) = meta["Collections"]
    assert collection["README"] == f"configs/{method}/README.md"
    assert (CONFIGS.parent / collection["README"]).is_file()
    listed = {m["Config"] for m in meta["Models"]}
    assert listed == {f"configs/{_rel(p)}" for p in PKD_CWD if p.parent.name == method}
    for model in meta["Models"]:
        assert model["In Collection"] == collection["Name"]
        assert model["Name"] == Path(model["Config"]).stem
        cfg = _parsed(CONFIGS.parent / model["Config"])
        assert model["Metadata"]["Epochs"] == cfg.train_cfg.max_epochs
