"""Every shipped config parses, every distiller config builds its model, and each states the
recipe it documents (the COCO pairs' data and teachers, each method's terms, losses and weights).

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
import torch
import yaml
from mmengine.config import Config
from mmengine.model import BaseModule
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import kd_det  # noqa: F401  (registers kd_det's modules)
from kd_det.apis import build_model_from_cfg
from kd_det.connectors import LinearProjector
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
    """A single-teacher distiller config (mutual learning and auto-encoder stages are built by
    tests/test_mutual.py and tests/test_inherit_explore.py)."""
    model = cfg.get("model")
    return isinstance(model, dict) and "SingleTeacherDistiller" in str(model.get("type", ""))


DISTILLERS = [p for p in ALL if _is_distiller(_parsed(p))]
PKD_CWD_DIGITS = [p for p in DISTILLERS if p.parent.name in ("pkd", "cwd") and "digits" in p.stem]
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
        *COCO_TERMS,
        "srd/srd_resnet34-resnet18_8xb32_in1k.py",
        "srd/srd_resnet34-resnet18_8xb16_cifar100.py",
        "srd/srd_resnet18-w32-w8_30e_digits-cls.py",
        "srd/srd_retinanet-w32-w8_fpn_24e_digits.py",
        "fitnet/fitnet_retinanet-w32-w8_fpn_24e_digits.py",
        "kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py",
        *(_rel(p) for p in PKD_CWD_DIGITS),
    }
    assert expected <= names, sorted(expected - names)
    # PKD and CWD each have every COCO pair and the digits RetinaNets
    for method in ["pkd", "cwd"]:
        own = {n for n in names if n.startswith(f"{method}/")}
        assert own == {n for n in expected if n.startswith(f"{method}/")}, method


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_config_parses(path: Path) -> None:
    cfg = _load(path)
    assert "model" in cfg, f"{_rel(path)} defines no model"
    if _is_distiller(cfg):
        assert cfg.get("custom_imports", {}).get("imports") == ["kd_det"]
        # the Runner would put a top-level preprocessor into the distiller, which refuses it
        assert cfg.get("data_preprocessor") is None, _rel(path)
        assert isinstance(cfg.model.distill, dict) and cfg.model.distill, _rel(path)
        for name, term in cfg.model.distill.items():
            assert term is None or "name" not in term, f"{_rel(path)}: {name!r} names itself"
            method_loss = METHOD_LOSS.get(path.parent.name)
            assert term is None or method_loss in (None, term.loss.type), (_rel(path), name)


@pytest.mark.parametrize("path", DISTILLERS, ids=_rel)
def test_distiller_config_builds(path: Path, no_network, monkeypatch) -> None:
    # With teacher_ckpt=None the distiller initialises the teacher; that random init says nothing
    # about the config and is most of the build time (mmengine logs a statistic of every
    # parameter), so it is skipped here. The Runner test below keeps it (and the network guard).
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = _load(path)
    cfg.model.teacher_ckpt = None
    for term in (cfg.model.get("distill") or {}).values():  # IE-KD: the auto-encoder's file
        encoder = ((term or {}).get("connector") or {}).get("teacher_encoder")
        if encoder is not None:
            encoder.checkpoint = None
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
    assert list(model.terms) == [k for k, v in cfg.model.distill.items() if v is not None]
    names = {name for name, _ in model.named_parameters()}
    assert not any(n.startswith("teacher.") for n in names)
    # every projector maps the student layer's width (as the probe recorded it) to the teacher
    # layer's, and is a parameter of the distiller (trained with the student)
    for name, term in model.terms.items():
        s_layers = model._student_recorder.layers(model._targets[name][0])
        t_layers = model._teacher_recorder.layers(model._targets[name][1])
        for conn, (i, j) in zip(term.connectors, term.pairs.tolist(), strict=True):
            projector = getattr(conn, "projector", None)
            if isinstance(projector, LinearProjector):
                widths = (t_layers[j].shape[1], s_layers[i].shape[1])
                assert tuple(projector.weight.shape[:2]) == widths, (name, i, j)
                assert any(p is projector.weight for p in model.parameters())
            elif not any(p.requires_grad for p in conn.parameters()):  # no learned mapping
                assert s_layers[i].shape[1] == t_layers[j].shape[1], (name, i, j)


# The COCO pairs (configs/_base_/distill/): detector -> (mmdet student config, teacher checkpoint)
COCO_PAIRS = {
    "retinanet": ("retinanet/retinanet_r50_fpn_1x_coco.py", "retinanet_r101_fpn_1x_coco"),
    "gfl": ("gfl/gfl_r50_fpn_1x_coco.py", "gfl_r101_fpn_mstrain_2x_coco"),
    "fcos": ("fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py", "fcos_r101_caffe_fpn_gn-head_1x_coco"),
    "faster-rcnn": ("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "faster_rcnn_r101_fpn_1x_coco"),
}
CLS_LAYER = {"retinanet": "bbox_head.retina_cls", "gfl": "bbox_head.gfl_cls"}
METHOD_LOSS = {"pkd": "PKDLoss", "cwd": "ChannelWiseDivergence"}
SRD_CONNECTOR = dict(
    type="ProjectNorm", projector=dict(type="LinearProjector"), norm=dict(type="AffineFreeBN")
)
SRD_FPN = dict(type="LogSumLoss", alpha=4.0, loss_weight=2.0)
MSE_2 = dict(type="MSEFeatureLoss", loss_weight=2.0)
SIGMOID_KD = dict(type="SigmoidKDLoss", tau=1.0, chi=1.0, loss_weight=1.0)
# MMRazor's values: PKD weight 10 for one-stage students and 6 for Faster R-CNN, CWD 10 per FPN
# level and 5 per level of GFL's classification logits
PKD_10 = dict(type="PKDLoss", loss_weight=10.0)
CWD_10 = dict(type="ChannelWiseDivergence", tau=1.0, loss_weight=10.0)
COCO_TERMS = {
    # config -> {term: its loss}, in order
    "srd/srd_retinanet-r101-r50_fpn_1x_coco.py": {"fpn": SRD_FPN, "cls": SIGMOID_KD},
    "srd/srd_gfl-r101-r50_fpn_1x_coco.py": {"fpn": SRD_FPN, "cls": SIGMOID_KD},
    "srd/srd_fcos-r101-r50-caffe_fpn_gn-head_1x_coco.py": {"fpn": SRD_FPN},
    "srd/srd_faster-rcnn-r101-r50_fpn_1x_coco.py": {"fpn": SRD_FPN},
    "fitnet/fitnet_retinanet-r101-r50_fpn_1x_coco.py": {"fpn": MSE_2, "cls": SIGMOID_KD},
    "pkd/pkd_retinanet-r101-r50_fpn_1x_coco.py": {"fpn": PKD_10},
    "pkd/pkd_gfl-r101-r50_fpn_1x_coco.py": {"fpn": PKD_10},
    "pkd/pkd_fcos-r101-r50-caffe_fpn_gn-head_1x_coco.py": {"fpn": PKD_10},
    "pkd/pkd_faster-rcnn-r101-r50_fpn_1x_coco.py": {"fpn": dict(PKD_10, loss_weight=6.0)},
    "cwd/cwd_retinanet-r101-r50_fpn_1x_coco.py": {"fpn": CWD_10},
    "cwd/cwd_gfl-r101-r50_fpn_1x_coco.py": {"fpn": CWD_10},
    "cwd/cwd-cls_gfl-r101-r50_fpn_1x_coco.py": {"cls": dict(CWD_10, loss_weight=5.0)},
    "cwd/cwd_fcos-r101-r50-caffe_fpn_gn-head_1x_coco.py": {"fpn": CWD_10},
    "cwd/cwd_faster-rcnn-r101-r50_fpn_1x_coco.py": {"fpn": CWD_10},
}
FOUR_LEVELS = [[0, 0], [1, 1], [2, 2], [3, 3]]


def _detector(rel: str) -> str:
    """``srd/srd_faster-rcnn-r101-r50_fpn_1x_coco.py`` -> ``faster-rcnn``."""
    return Path(rel).stem.split("_")[1].split("-r101")[0]


@pytest.mark.parametrize("rel", sorted(COCO_TERMS))
def test_coco_config_is_the_students_1x_recipe_with_its_teacher(rel: str) -> None:
    cfg = _load(CONFIGS / rel)
    student_cfg, ckpt = COCO_PAIRS[_detector(rel)]
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


@pytest.mark.parametrize("rel", sorted(COCO_TERMS))
def test_coco_config_states_its_terms(rel: str) -> None:
    cfg = _load(CONFIGS / rel)
    method = Path(rel).parent.name
    terms = {k: v for k, v in cfg.model.distill.items() if v is not None}
    assert list(terms) == list(COCO_TERMS[rel])
    for name, term in terms.items():
        assert term.loss == COCO_TERMS[rel][name], name
        layer = "neck" if name == "fpn" else CLS_LAYER[_detector(rel)]
        assert term.student == term.teacher == layer
        # FPNs (and heads) have the same widths: only SRD's projector + BN
        # FitNet's is SRD's without the normalisation
        connector = {"srd": SRD_CONNECTOR, "fitnet": dict(SRD_CONNECTOR, norm=None)}
        assert term.get("connector") == (connector.get(method) if name == "fpn" else None)
        # MMRazor's PKD configs distil FPN outputs 0-3, the other methods all five
        pkd = dict(type="ExplicitMapper", pairs=FOUR_LEVELS) if method == "pkd" else None
        assert term.get("mapper") == pkd


def test_mmpretrain_config_builds_through_the_runner(tmp_path: Path, no_network) -> None:
    """The path a user takes: the Runner, which puts a top-level ``data_preprocessor`` into the
    model dict. The CIFAR-100 config moves mmpretrain's into the student."""
    cfg = _load(CONFIGS / "srd/srd_resnet34-resnet18_8xb16_cifar100.py")
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
    bad = _load(CONFIGS / "srd/srd_resnet34-resnet18_8xb16_cifar100.py")
    bad.model.teacher_ckpt = None
    bad.data_preprocessor = dict(num_classes=100, mean=[0.0] * 3, std=[1.0] * 3)
    bad.work_dir = str(tmp_path / "bad")
    with pytest.raises(ValueError, match="student's data_preprocessor"):
        Runner.from_cfg(bad)


def _diff(a: object, b: object, path: str = "") -> set[str]:
    """Dotted paths where two parsed configs differ (recursing into dicts present in both)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {p for k in set(a) | set(b) for p in _diff(a.get(k), b.get(k), f"{path}.{k}")}
    return set() if a == b else {path.lstrip(".")}


# config -> (the config it inherits, the dotted prefixes it may change)
DET = "srd/srd_retinanet-w32-w8_fpn_24e_digits.py"
CLS = "srd/srd_resnet18-w32-w8_30e_digits-cls.py"
OVERRIDES = {
    "srd/srd-nobn_retinanet-w32-w8_fpn_24e_digits.py": (DET, {"model.distill.fpn.connector.norm"}),
    "srd/srd-mse_retinanet-w32-w8_fpn_24e_digits.py": (DET, {"model.distill.fpn.loss"}),
    "srd/srd-frozenproj_retinanet-w32-w8_fpn_24e_digits.py": (DET, {"optim_wrapper.paramwise_cfg"}),
    "fitnet/fitnet_retinanet-w32-w8_fpn_24e_digits.py": (
        DET,
        {"model.distill.fpn.connector.norm", "model.distill.fpn.loss"},
    ),
    "kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py": (DET, {"model.distill.fpn"}),
    "srd/srd-nobn_resnet18-w32-w8_30e_digits-cls.py": (CLS, {"model.distill.feat.connector.norm"}),
    "srd/srd-mse_resnet18-w32-w8_30e_digits-cls.py": (CLS, {"model.distill.feat.loss"}),
    "srd/srd-frozenproj_resnet18-w32-w8_30e_digits-cls.py": (CLS, {"optim_wrapper.paramwise_cfg"}),
    "fitnet/fitnet_resnet18-w32-w8_30e_digits-cls.py": (
        CLS,
        {"model.distill.feat.connector.norm", "model.distill.feat.loss"},
    ),
    "kd/kd_resnet18-w32-w8_30e_digits-cls.py": (CLS, {"model.distill.feat"}),
    "kd/kd-tau4_resnet18-w32-w8_30e_digits-cls.py": (
        "kd/kd_resnet18-w32-w8_30e_digits-cls.py",
        {"model.distill.logits.loss.tau"},
    ),
}


@pytest.mark.parametrize("rel", sorted(OVERRIDES))
def test_variants_change_only_what_they_are_named_for(rel: str) -> None:
    base, allowed = OVERRIDES[rel]
    diff = _diff(
        _load(CONFIGS / rel)._cfg_dict.to_dict(), _load(CONFIGS / base)._cfg_dict.to_dict()
    )
    assert diff, f"{rel} is identical to {base}"
    stray = {p for p in diff if not any(p == a or p.startswith(a + ".") for a in allowed)}
    assert not stray, f"{rel} changes {sorted(stray)} besides {sorted(allowed)}"
    # the child inherits its base in one `_base_` line and stays short
    lines = [ln for ln in (CONFIGS / rel).read_text().splitlines() if not ln.startswith("#")]
    assert lines[0].startswith("_base_ = [") and len(lines) <= 8, rel


def test_removed_term_is_skipped_and_the_variants_compute_what_they_say() -> None:
    sigmoidkd = _load(CONFIGS / "kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py").model
    assert sigmoidkd.distill.fpn is None and sigmoidkd.distill.cls.loss.type == "SigmoidKDLoss"
    mse = _load(CONFIGS / "srd/srd-mse_retinanet-w32-w8_fpn_24e_digits.py").model.distill.fpn
    assert mse.loss == dict(type="MSEFeatureLoss", loss_weight=2.0)
    assert mse.connector == SRD_CONNECTOR
    fitnet = _load(CONFIGS / "fitnet/fitnet_resnet18-w32-w8_30e_digits-cls.py").model.distill
    assert fitnet.feat.connector == dict(SRD_CONNECTOR, norm=None)
    assert fitnet.feat.loss == dict(type="MSEFeatureLoss", loss_weight=2.0)
    assert fitnet.logits.loss == dict(type="LogitKDLoss", tau=1.0, loss_weight=1.0)


def test_digits_distillers_read_the_teachers_their_baselines_train() -> None:
    for rel in [DET, CLS]:
        cfg = _load(CONFIGS / rel)
        teacher = cfg.model.teacher_ckpt.split("/")[1]
        baseline = _load(CONFIGS / "baselines" / f"{teacher}.py")
        assert cfg.model.teacher_ckpt == (
            f"work_dirs/{teacher}/epoch_{baseline.train_cfg.max_epochs}.pth"
        )
        assert baseline.model == cfg.model.teacher


@pytest.mark.parametrize("path", PKD_CWD_DIGITS, ids=_rel)
def test_pkd_cwd_digits_config_distils(path: Path, no_network, monkeypatch) -> None:
    # The teacher's random initialisation (teacher_ckpt=None) says nothing about the config and
    # is most of the build time.
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    model = build_model_from_cfg(_load(path), {"model.teacher_ckpt": None})
    assert isinstance(model, SingleTeacherDistiller)
    assert list(model.terms) == ["fpn"]
    term = model.terms["fpn"]
    assert type(term.loss).__name__ == METHOD_LOSS[path.parent.name]
    # three FPN levels, 32 wide on the student and 96 on the teacher: a projector per level
    # (bias-free 1x1 conv, 32 -> 96: 32·96 weights each, and no other parameter in the term)
    assert len(term.pair_labels) == 3
    assert sorted(p.numel() for p in term.parameters()) == [32 * 96] * 3
    # the distill loss on pairs of maps of the recorded shapes is finite and reaches the student
    g = torch.Generator().manual_seed(0)
    s_layers = [torch.randn(2, 32, n, n, generator=g, requires_grad=True) for n in (16, 8, 4)]
    t_layers = [torch.randn(2, 96, n, n, generator=g) for n in (16, 8, 4)]
    loss = term(s_layers, t_layers)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s_layers)


METHOD_DIRS = [
    "srd",
    "pkd",
    "cwd",
    "fitnet",
    "kd",
    "iekd",
    "dml",
    "iedml",
    "layer_selection",
    "baselines",
]


@pytest.mark.parametrize("method", METHOD_DIRS)
def test_method_folders_have_a_readme_and_a_metafile_of_their_configs(method: str) -> None:
    folder = CONFIGS / method
    readme = (folder / "README.md").read_text()
    meta = yaml.safe_load((folder / "metafile.yml").read_text())
    collections = {c["Name"] for c in meta["Collections"]}
    assert {c["README"] for c in meta["Collections"]} == {f"configs/{method}/README.md"}
    configs = set()
    for model in meta["Models"]:
        assert model["In Collection"] in collections, model["Name"]
        path = CONFIGS.parent / model["Config"]
        assert path.is_file(), model["Config"]
        assert model["Name"] == path.stem
        configs.add(path.relative_to(CONFIGS).as_posix())
        assert model["Metadata"]["Epochs"] == _parsed(path).train_cfg.max_epochs, model["Name"]
        assert model.get("Weights") is None
        for result in model.get("Results", []):
            assert result["Task"] and result["Dataset"] and result["Metrics"]
            assert all(isinstance(v, float) for v in result["Metrics"].values())
    own = {_rel(p) for p in ALL if p.parent == folder}
    assert configs == own, sorted(configs ^ own)
    # the README's table names every config of the folder
    for rel in own:
        assert Path(rel).name in readme, rel
