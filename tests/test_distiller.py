"""SingleTeacherDistiller through mmengine's Runner, on the digits set: what only a Runner shows
(optimizer, checkpoint, logging) and the distiller on real mmdet/mmpretrain models."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from kd_det.compat import load_local_checkpoint
from tests.distill_helpers import (
    CLS_LAYERS,
    FPN_TERM,
    LINEAR_CONNECTOR,
    SRD_CONNECTOR,
    build_distiller,
    cls_distill_config,
    det_distill_config,
    make_runner,
)

FAMILIES = ["retinanet", "fcos", "gfl", "faster_rcnn"]
# two training iterations, no validation
FEW_ITERS = dict(
    train_dataloader=dict(dataset=dict(indices=8)), train_cfg=dict(max_epochs=1, val_interval=2)
)


def _terms(family: str) -> str:
    if family not in CLS_LAYERS:  # Faster R-CNN: RoI logits of two models see different RoIs
        return FPN_TERM
    layer = CLS_LAYERS[family]
    return (
        FPN_TERM
        + f""",
    cls=dict(student='{layer}', teacher='{layer}',
             loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0))"""
    )


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_distillation_run(runner, has_cls_term: bool) -> None:
    model = runner.model
    teacher_before = _snapshot(model.teacher)
    student_before = _snapshot(model.student)
    connector_before = _snapshot(model.terms["fpn"].connectors)
    runner.train()

    # the teacher never trains: bit-identical weights and BN statistics, every module in eval
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), f"teacher {key} changed"
    assert not any(m.training for m in model.teacher.modules())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    # the student and the connectors do train
    assert any(not torch.equal(v, student_before[k]) for k, v in model.student.state_dict().items())
    assert any(
        not torch.equal(v, connector_before[k])
        for k, v in model.terms["fpn"].connectors.state_dict().items()
    )
    # the optimizer holds exactly the distiller's own parameters, none of the teacher's
    optim_params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g["params"]}
    assert optim_params == {id(p) for p in model.parameters()}
    assert not optim_params & {id(p) for p in model.teacher.parameters()}

    # the checkpoint holds the student and the connectors, not the teacher
    ckpt = load_local_checkpoint(str(Path(runner.work_dir) / "epoch_1.pth"))
    keys = ckpt["state_dict"].keys()
    assert not any(k.startswith("teacher.") for k in keys)
    assert any(k.startswith("student.backbone.") for k in keys)
    assert "terms.fpn.connectors.0.projector.weight" in keys
    assert "terms.fpn.pairs" in keys

    # losses finite, logged under distill.<name>.loss, and gradients reach student + connectors
    scalars = runner.message_hub.log_scalars
    assert "train/distill.fpn.loss" in scalars
    assert (has_cls_term) == ("train/distill.cls.loss" in scalars)
    for key in [k for k in scalars if k.startswith("train/") and "loss" in k]:
        assert torch.isfinite(torch.tensor(scalars[key].current())), key


def _grads_reach_student_and_connectors(model, runner) -> None:
    batch = next(iter(runner.train_dataloader))
    data = model.data_preprocessor(batch, True)
    model.zero_grad()
    losses = model(**data, mode="loss")
    distill = sum(v for k, v in losses.items() if k.startswith("distill."))
    distill.backward()
    assert model.terms["fpn"].connectors[0].projector.weight.grad.abs().sum() > 0
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_detector_students_distil_from_larger_teachers(
    family: str, tmp_path: Path, digits_root: Path
) -> None:
    cfg = det_distill_config(
        tmp_path / f"{family}.py",
        digits_root,
        family,
        _terms(family),
    )
    runner = make_runner(cfg, tmp_path / "work", **FEW_ITERS)
    model = runner.model
    assert model.data_preprocessor is model.student.data_preprocessor
    assert sum(p.numel() for p in model.teacher.parameters()) > 4 * sum(
        p.numel() for p in model.student.parameters()
    )
    _check_distillation_run(runner, has_cls_term=family in CLS_LAYERS)
    _grads_reach_student_and_connectors(model, runner)


def test_classifier_pair_from_mmpretrain(tmp_path: Path, digits_root: Path) -> None:
    terms = f"""fpn=dict(student='neck', teacher='neck', connector={SRD_CONNECTOR},
             loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
    logits=dict(student='head.fc', teacher='head.fc',
                loss=dict(type='LogitKDLoss', tau=4.0, loss_weight=1.0))"""
    cfg = cls_distill_config(tmp_path / "cls.py", digits_root, terms)
    runner = make_runner(cfg, tmp_path / "work", **FEW_ITERS)
    model = runner.model
    teacher_before = _snapshot(model.teacher)
    runner.train()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key])
    assert "train/distill.logits.loss" in runner.message_hub.log_scalars
    ckpt = load_local_checkpoint(str(Path(runner.work_dir) / "epoch_1.pth"))
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"])


def test_predict_and_tensor_modes_go_to_the_student(tmp_path: Path, digits_root: Path) -> None:
    cfg = det_distill_config(tmp_path / "cfg.py", digits_root)
    runner = make_runner(cfg, tmp_path / "work")
    model = runner.model.eval()
    batch = next(iter(runner.val_dataloader))
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        tensors = model(data["inputs"], data["data_samples"], mode="tensor")
        expected = model.student(data["inputs"], data["data_samples"], mode="tensor")
        for a, b in zip(tensors[0], expected[0], strict=True):
            assert torch.equal(a, b)
        preds = model(data["inputs"], copy.deepcopy(data["data_samples"]), mode="predict")
        assert len(preds) == len(data["data_samples"])
        model.predict_with = "teacher"
        teacher_out = model(data["inputs"], data["data_samples"], mode="tensor")
        assert teacher_out[0][0].shape[1] == tensors[0][0].shape[1]  # same anchors x classes
        assert not torch.equal(teacher_out[0][0], tensors[0][0])


def test_teacher_forward_stops_after_deepest_needed_layer(
    tmp_path: Path, digits_root: Path
) -> None:
    calls = {"head": 0, "reg": 0}
    model = build_distiller(det_distill_config(tmp_path / "a.py", digits_root))
    model.teacher.bbox_head.register_forward_hook(
        lambda *a: calls.__setitem__("head", calls["head"] + 1)
    )
    inputs = torch.zeros(2, 3, 128, 128)
    model.teacher_forward(inputs, None)
    assert calls["head"] == 0  # only FPN layers are needed: the head never runs
    assert len(model._teacher_recorder.layers([("neck.fpn_convs.0", "output")])) == 1

    terms = (
        FPN_TERM
        + """,
    cls=dict(student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
             loss=dict(type='SigmoidKDLoss'))"""
    )
    model = build_distiller(det_distill_config(tmp_path / "b.py", digits_root, terms=terms))
    model.teacher.bbox_head.retina_reg.register_forward_hook(
        lambda *a: calls.__setitem__("reg", calls["reg"] + 1)
    )
    model.teacher_forward(inputs, None)
    assert calls["reg"] == 2  # stopped after the third retina_cls call, before the third reg


def test_teacher_in_bf16_and_wildcard_tuple_and_input_capture(
    tmp_path: Path, digits_root: Path
) -> None:
    terms = f"""neck=dict(student='neck', teacher='neck',
              connector={LINEAR_CONNECTOR}, loss=dict(type='MSEFeatureLoss')),
    head_in=dict(student='bbox_head.retina_cls', teacher='bbox_head.retina_cls', capture='input',
                 connector={LINEAR_CONNECTOR}, loss=dict(type='MSEFeatureLoss'))"""
    cfg = det_distill_config(
        tmp_path / "cfg.py", digits_root, terms=terms, model_extra="teacher_dtype='bf16',"
    )
    runner = make_runner(cfg, tmp_path / "work")
    model = runner.model
    neck, head_in = model.terms["neck"], model.terms["head_in"]
    assert [s for s, _ in neck.pair_labels] == ["neck[0]", "neck[1]", "neck[2]"]
    assert [s for s, _ in head_in.pair_labels] == [
        f"bbox_head.retina_cls(input)[{i}]" for i in range(3)
    ]
    # retina_cls input is the last cls conv's 32 (student) / 96 (teacher) channels
    assert head_in.connectors[0].projector.weight.shape[:2] == (96, 32)
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    model.teacher_forward(data["inputs"], data["data_samples"])
    recorded = model._teacher_recorder.layers([("neck", "output")])
    assert all(t.dtype == torch.bfloat16 for t in recorded)
    losses = model(**data, mode="loss")
    assert torch.isfinite(losses["distill.neck.loss"]) and torch.isfinite(
        losses["distill.head_in.loss"]
    )


def test_reverse_mapping_resizes_teacher_maps_of_other_strides(
    tmp_path: Path, digits_root: Path
) -> None:
    terms = FPN_TERM.replace("connector=", "mapper=dict(type='ReverseMapper'), connector=")
    model = build_distiller(det_distill_config(tmp_path / "cfg.py", digits_root, terms=terms))
    term = model.terms["fpn"]
    assert term.pair_labels[0] == ("neck.fpn_convs.0", "neck.fpn_convs.2")  # stride 8 <- 32
    inputs = torch.randn(2, 3, 128, 128)
    model.teacher_forward(inputs, None)
    teacher = model._teacher_recorder.layers(
        [("neck.fpn_convs.0", "output"), ("neck.fpn_convs.2", "output")]
    )
    assert teacher[0].shape[2:] == (16, 16) and teacher[1].shape[2:] == (4, 4)
    student = [torch.randn(2, 32, 16 // 2**i, 16 // 2**i, requires_grad=True) for i in range(3)]
    loss = term(student, model._teacher_recorder.layers(model._targets["fpn"][1]))
    loss.backward()
    assert torch.isfinite(loss) and all(s.grad is not None for s in student)

    no_align = terms.replace("loss=", "align='none', loss=")
    with pytest.raises(
        ValueError, match=r"spatial sizes \(16, 16\) and \(4, 4\) differ and align='none'"
    ):
        build_distiller(det_distill_config(tmp_path / "cfg2.py", digits_root, terms=no_align))
