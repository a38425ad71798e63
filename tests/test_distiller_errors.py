"""Issue 4 item 10: bad distillation configs fail at construction, with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distill_helpers import build_distiller, det_distill_config


def _build(tmp_path: Path, digits_root: Path, terms: str, **model_options):
    return build_distiller(
        det_distill_config(tmp_path / "cfg.py", digits_root, terms=terms), **model_options
    )


def test_unknown_layer_names_the_closest_valid_paths(tmp_path: Path, digits_root: Path) -> None:
    terms = "dict(name='fpn', student='neck.fpn_conv.*', teacher='neck.fpn_convs.*', loss=dict(type='MSEFeatureLoss'))"
    with pytest.raises(
        ValueError, match=r"student layer 'neck.fpn_conv.\*' does not exist.*neck.fpn_convs.0"
    ):
        _build(tmp_path, digits_root, terms)


def test_widths_that_need_an_adapter(tmp_path: Path, digits_root: Path) -> None:
    terms = "dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*', loss=dict(type='MSEFeatureLoss'))"
    with pytest.raises(
        ValueError,
        match=r"width 32 and teacher width 96 cannot be matched without an adapter.*projector='linear'",
    ):
        _build(tmp_path, digits_root, terms)


def test_strategy_that_cannot_map_the_layer_counts(tmp_path: Path, digits_root: Path) -> None:
    terms = """dict(name='fpn', student='neck.fpn_convs.*', teacher=['neck.fpn_convs.0', 'neck.fpn_convs.1'],
        mapper=dict(type='InOrderRandomMapper', seed=0), connector=dict(projector='linear'),
        loss=dict(type='MSEFeatureLoss'))"""
    with pytest.raises(ValueError, match=r"distill term 'fpn'.*InOrderRandom.*3.*2"):
        _build(tmp_path, digits_root, terms)


def test_logit_kd_between_heads_with_different_class_counts(
    tmp_path: Path, digits_root: Path
) -> None:
    terms = "dict(name='cls', student='bbox_head.retina_cls', teacher='bbox_head.retina_cls', loss=dict(type='SigmoidKDLoss'))"
    cfg = det_distill_config(tmp_path / "cfg.py", digits_root, terms=terms)
    from mmengine.config import Config

    teacher = Config.fromfile(str(cfg)).model.teacher
    teacher.bbox_head.num_classes = 11
    with pytest.raises(ValueError, match=r"student head has 90 classes and the teacher head 99"):
        build_distiller(cfg, teacher=teacher)


def test_unknown_term_key_and_duplicate_name(tmp_path: Path, digits_root: Path) -> None:
    terms = "dict(name='fpn', student='neck', teacher='neck', loss=dict(type='MSEFeatureLoss'), weight=2)"
    with pytest.raises(ValueError, match=r"unknown keys \['weight'\]"):
        _build(tmp_path, digits_root, terms)
    term = "dict(name='a', student='neck', teacher='neck', connector=dict(projector='linear'), loss=dict(type='MSEFeatureLoss'))"
    with pytest.raises(ValueError, match="used twice"):
        _build(tmp_path, digits_root, f"{term}, {term}")


def _save_state(module: torch.nn.Module, path: Path, drop: int = 0) -> str:
    state = module.state_dict()
    for key in list(state)[:drop]:
        del state[key]
    torch.save({"state_dict": state, "meta": {}}, path)
    return str(path)


def test_teacher_checkpoint_that_does_not_fit(tmp_path: Path, digits_root: Path) -> None:
    terms = "dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*', connector=dict(projector='linear'), loss=dict(type='MSEFeatureLoss'))"
    model = _build(tmp_path, digits_root, terms)
    # the student's weights are not the teacher's: every conv has other shapes
    wrong = _save_state(model.student, tmp_path / "student.pth")
    with pytest.raises(
        ValueError, match=r"does not fit the teacher RetinaNet.*shape mismatches \(e.g. backbone"
    ):
        _build(tmp_path, digits_root, terms, teacher_ckpt=wrong)
    # a teacher checkpoint with keys missing: refused, unless a partial load is asked for
    partial = _save_state(model.teacher, tmp_path / "partial.pth", drop=3)
    with pytest.raises(ValueError, match=r"3 missing keys \(e.g. .*teacher_strict=False"):
        _build(tmp_path, digits_root, terms, teacher_ckpt=partial)
    loaded = _build(tmp_path, digits_root, terms, teacher_ckpt=partial, teacher_strict=False)
    key = list(model.teacher.state_dict())[5]
    assert torch.equal(loaded.teacher.state_dict()[key], model.teacher.state_dict()[key])
    # a complete teacher checkpoint loads bit for bit
    full = _save_state(model.teacher, tmp_path / "teacher.pth")
    loaded = _build(tmp_path, digits_root, terms, teacher_ckpt=full)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(loaded.teacher.state_dict()[k], v)


def test_random_mapping_is_saved_and_checked_on_load(tmp_path: Path, digits_root: Path) -> None:
    from kd_det.mappers import RandomMapper

    seeds = [s for s in range(20) if RandomMapper(seed=s)(3, 3) != RandomMapper(seed=0)(3, 3)]
    terms = """dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
        mapper=dict(type='RandomMapper', seed={seed}), connector=dict(projector='linear'),
        loss=dict(type='MSEFeatureLoss'))"""
    model = _build(tmp_path, digits_root, terms.format(seed=0))
    state = model.state_dict()
    assert state["terms.0.pairs"].tolist() == [list(p) for p in RandomMapper(seed=0)(3, 3)]
    same = _build(tmp_path, digits_root, terms.format(seed=0))
    same.load_state_dict(state)
    other = _build(tmp_path, digits_root, terms.format(seed=seeds[0]))
    with pytest.raises(
        ValueError, match=r"trained with layer pairs .* restore the mapper and its seed"
    ):
        other.load_state_dict(state)
