"""Bad distillation configs fail at construction, with one clear message.

Built on two toy nets (tests.distill_helpers.ToyNet: widths 4 and 8, 10 classes), so each case
takes milliseconds; test_distiller.py covers the same distiller on mmdet/mmpretrain models.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from kd_det.mappers import RandomMapper
from tests.distill_helpers import ToyNet, toy_distiller

LINEAR = dict(type="ProjectNorm", projector=dict(type="LinearProjector"))
FEAT = dict(
    student="blocks.*", teacher="blocks.*", connector=LINEAR, loss=dict(type="MSEFeatureLoss")
)
LOGITS = dict(student="head", teacher="head", loss=dict(type="LogitKDLoss"))


def test_list_form_is_refused_with_the_equivalent_dict_form() -> None:
    old = [
        dict(name="feat", student="blocks.*", teacher="blocks.*",
             connector=dict(projector="linear", norm="batchnorm"),
             loss=dict(type="LogSumLoss", alpha=4.0, loss_weight=2.0)),
        dict(name="logits", student="head", teacher="head",
             loss=dict(type="LogitKDLoss", tau=1.0)),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="distill is a dict keyed by term name") as info:
        toy_distiller(old)
    message = str(info.value)
    assert (
        "    feat=dict(student='blocks.*', teacher='blocks.*', connector=dict(type='ProjectNorm', "
        "projector=dict(type='LinearProjector'), norm=dict(type='AffineFreeBN')), "
        "loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),"
    ) in message
    assert (
        "    logits=dict(student='head', teacher='head', loss=dict(type='LogitKDLoss', tau=1.0)),"
        in message
    )
    # the form it prints is valid: it builds the same two terms
    printed = message[message.index("distill=dict(") + len("distill=") :]
    model = toy_distiller(eval(printed))  # noqa: S307  (the message's own text)
    assert list(model.terms) == ["feat", "logits"]
    assert isinstance(model.terms["feat"].connectors[0].norm, torch.nn.Module)


def test_unknown_term_keys_name_the_valid_ones_and_the_closest() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "distill term 'feat': missing keys [], unknown keys ['conector'] ('conector': did you "
            "mean 'connector'?); valid keys: ['student', 'teacher', 'loss', 'mapper', "
            "'connector', 'align', 'capture']"
        ),
    ):
        toy_distiller(dict(feat=dict(FEAT, conector=LINEAR)))
    with pytest.raises(
        ValueError, match=r"unknown keys \['name'\] \('name': the term's name is its key"
    ):
        toy_distiller(dict(feat=dict(FEAT, name="feat")))
    with pytest.raises(ValueError, match=r"distill term 'feat': missing keys \['loss'\]"):
        toy_distiller(dict(feat={k: v for k, v in FEAT.items() if k != "loss"}))
    with pytest.raises(ValueError, match=r"distill term 'feat' must be a dict \(or None"):
        toy_distiller(dict(feat=[FEAT]))
    with pytest.raises(ValueError, match=r"distill term name 'keys' cannot be used"):
        toy_distiller(dict(keys=FEAT))


def test_none_terms_are_skipped() -> None:
    model = toy_distiller(dict(feat=FEAT, logits=None))
    assert list(model.terms) == ["feat"]
    assert set(model.loss(torch.zeros(2, 3, 16, 16), None)) == {"loss_toy", "distill.feat.loss"}


def test_string_connector_of_the_list_era_shows_its_registry_form() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "connector {'projector': 'linear', 'norm': 'batchnorm'} has no 'type'; connectors "
            "come from kd_det's registry, e.g. connector=dict(type='ProjectNorm', "
            "projector=dict(type='LinearProjector'), norm=dict(type='AffineFreeBN'))"
        ),
    ):
        toy_distiller(dict(feat=dict(FEAT, connector=dict(projector="linear", norm="batchnorm"))))


def test_widths_that_need_a_projector() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "distill term 'feat', blocks.0 <- blocks.0: student width 4 and teacher width 8 cannot "
            "be matched without a projector; set connector=dict(type='ProjectNorm', "
            "projector=dict(type='LinearProjector'))"
        ),
    ):
        toy_distiller(dict(feat={k: v for k, v in FEAT.items() if k != "connector"}))
    # a ProjectNorm with a norm but no projector is refused the same way
    with pytest.raises(ValueError, match="student width 4 and teacher width 8 cannot be matched"):
        toy_distiller(
            dict(
                feat=dict(FEAT, connector=dict(type="ProjectNorm", norm=dict(type="AffineFreeBN")))
            )
        )


def test_unknown_connector_projector_and_norm_types_list_the_registered_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown connector type 'ProjectNrm' \(did you mean 'ProjectNorm'\?\); "
        r"registered connectors: \[.*'ProjectNorm'.*\]",
    ):
        toy_distiller(dict(feat=dict(FEAT, connector=dict(type="ProjectNrm"))))
    bad_proj = dict(type="ProjectNorm", projector=dict(type="ConvProjector"))
    with pytest.raises(
        ValueError,
        match=r"unknown projector type 'ConvProjector'.*\['LinearProjector', 'MLPProjector'",
    ):
        toy_distiller(dict(feat=dict(FEAT, connector=bad_proj)))
    bad_norm = dict(LINEAR, norm=dict(type="BatchNorm"))
    with pytest.raises(ValueError, match=r"unknown norm type 'BatchNorm'.*'AffineFreeBN'"):
        toy_distiller(dict(feat=dict(FEAT, connector=bad_norm)))
    # a projector given where the connector goes: the message says where it belongs
    with pytest.raises(
        ValueError,
        match=re.escape(
            "LinearProjector is a projector, not a connector; use "
            "connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector'))"
        ),
    ):
        toy_distiller(dict(feat=dict(FEAT, connector=dict(type="LinearProjector"))))


def test_logit_losses_take_no_projector_and_need_the_same_classes() -> None:
    with pytest.raises(ValueError, match=r"LogitKDLoss compares logits.*take no projector"):
        toy_distiller(dict(logits=dict(LOGITS, connector=LINEAR)))
    with pytest.raises(
        ValueError, match=r"student head has 10 classes and the teacher head 11; logit KD needs"
    ):
        toy_distiller(dict(logits=LOGITS), teacher=ToyNet(8, num_classes=11))


def test_unknown_layer_names_the_closest_valid_paths() -> None:
    with pytest.raises(
        ValueError, match=r"student layer 'block.\*' does not exist in ToyNet.*'blocks.0'"
    ):
        toy_distiller(dict(feat=dict(FEAT, student="block.*")))


def test_strategy_that_cannot_map_the_layer_counts() -> None:
    term = dict(FEAT, teacher="blocks.0", mapper=dict(type="InOrderRandomMapper", seed=0))
    with pytest.raises(
        ValueError, match=r"distill term 'feat': InOrderRandomMapper .*num_student=2, num_teacher=1"
    ):
        toy_distiller(dict(feat=term))


def test_spatial_sizes_that_differ_need_align_resize() -> None:
    term = dict(FEAT, student="stem", teacher="blocks.1")
    with pytest.raises(
        ValueError, match=r"spatial sizes \(16, 16\) and \(4, 4\) differ and align='none'"
    ):
        toy_distiller(dict(feat=dict(term, align="none")))
    with pytest.raises(ValueError, match=r"align must be one of \('resize', 'none'\)"):
        toy_distiller(dict(feat=dict(term, align="bilinear")))


def _save_state(module: torch.nn.Module, path: Path, drop: int = 0) -> str:
    state = module.state_dict()
    for key in list(state)[:drop]:
        del state[key]
    torch.save({"state_dict": state, "meta": {}}, path)
    return str(path)


def test_teacher_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    model = toy_distiller(dict(feat=FEAT))
    # the student's weights are not the teacher's: every layer has other shapes
    wrong = _save_state(model.student, tmp_path / "student.pth")
    with pytest.raises(
        ValueError, match=r"does not fit the teacher ToyNet.*shape mismatches \(e.g. blocks"
    ):
        toy_distiller(dict(feat=FEAT), teacher_ckpt=wrong)
    # a teacher checkpoint with keys missing: refused, unless a partial load is asked for
    teacher = ToyNet(8)
    partial = _save_state(teacher, tmp_path / "partial.pth", drop=2)
    with pytest.raises(ValueError, match=r"2 missing keys \(e.g. stem.*teacher_strict=False"):
        toy_distiller(dict(feat=FEAT), teacher_ckpt=partial)
    loaded = toy_distiller(dict(feat=FEAT), teacher_ckpt=partial, teacher_strict=False)
    assert torch.equal(loaded.teacher.head.weight, teacher.head.weight)
    assert not torch.equal(loaded.teacher.stem.weight, teacher.stem.weight)
    # a complete teacher checkpoint loads bit for bit
    full = _save_state(teacher, tmp_path / "teacher.pth")
    loaded = toy_distiller(dict(feat=FEAT), teacher_ckpt=full)
    for key, value in teacher.state_dict().items():
        assert torch.equal(loaded.teacher.state_dict()[key], value), key


def test_random_mapping_is_saved_and_checked_on_load() -> None:
    term = dict(FEAT, student="blocks.*", teacher=["stem", "blocks.0", "blocks.1"])
    seeds = [s for s in range(20) if RandomMapper(seed=s)(2, 3) != RandomMapper(seed=0)(2, 3)]
    model = toy_distiller(dict(feat=dict(term, mapper=dict(type="RandomMapper", seed=0))))
    state = model.state_dict()
    assert state["terms.feat.pairs"].tolist() == [list(p) for p in RandomMapper(seed=0)(2, 3)]
    same = toy_distiller(dict(feat=dict(term, mapper=dict(type="RandomMapper", seed=0))))
    same.load_state_dict(state)
    other = toy_distiller(dict(feat=dict(term, mapper=dict(type="RandomMapper", seed=seeds[0]))))
    with pytest.raises(
        ValueError, match=r"trained with layer pairs .* restore the mapper and its seed"
    ):
        other.load_state_dict(state)


def test_distiller_arguments() -> None:
    with pytest.raises(ValueError, match=r"teacher_dtype must be one of \[None, 'fp32'"):
        toy_distiller(dict(feat=FEAT), teacher_dtype="int8")
    with pytest.raises(ValueError, match="predict_with must be 'student' or 'teacher'"):
        toy_distiller(dict(feat=FEAT), predict_with="both")
    with pytest.raises(ValueError, match="uses the student's data_preprocessor"):
        toy_distiller(dict(feat=FEAT), data_preprocessor=dict(type="BaseDataPreprocessor"))
    with pytest.raises(KeyError, match=r"no distill term 'fet'; terms: \['feat'\]"):
        toy_distiller(dict(feat=FEAT)).term("fet")
