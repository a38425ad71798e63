"""The what-gets-distilled analysis (kd_det.analysis.what_distilled, its tool and its driver):
each measure against a hand computation or a model built to pass or fail it, on tiny mmpretrain
classifiers and RetinaNets built here with their checkpoints in tmp_path, a few digits images
made on the spot, the error cases and the report files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kd_det.analysis.what_distilled import (
    AnalysisOptions,
    AttackSpec,
    Detections,
    JitterSpec,
    ModelSpec,
    analyse,
    box_predictions,
    box_targets,
    cam_cosine,
    classifier_cams,
    color_jitter,
    detector_box_cams,
    greedy_matches,
    ifgsm,
    load_model,
    localization_score,
    paper_key,
    sample_jitter,
    write_report,
)
from kd_det.analysis.what_distilled.models import LoadedModel
from kd_det.apis import build_model_from_cfg
from kd_det.datasets import make_classification_set, make_detection_set
from tests.conftest import write_config
from tests.distill_helpers import cls_distill_config

CLS_BASES = [
    "_base_/datasets/digits_classification.py",
    "_base_/schedules/digits_cls_adamw.py",
    "_base_/digits_cls_runtime.py",
]
DET_BASES = [
    "_base_/models/digits_retinanet.py",
    "_base_/datasets/digits_detection.py",
    "_base_/schedules/digits_adamw.py",
    "_base_/digits_runtime.py",
]
FAST = dict(num_examples=2, progress=False, cka_images=8)


# -- data, configs and checkpoints made here ------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("what_distilled_data")
    make_classification_set(root, num_train=10, num_val=6, seed=0)
    make_detection_set(root, num_train=2, num_val=3, seed=0)
    return root


def cls_config(
    path: Path, data: Path, width: int = 4, num_classes: int = 10, extra: str = ""
) -> Path:
    body = f"""
_data_root = '{data}/cls/'
val_dataloader = dict(batch_size=4, dataset=dict(data_root=_data_root))
test_dataloader = val_dataloader
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes={num_classes},
                           mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0], to_rgb=True),
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels={width}, base_channels={width},
                  num_stages=4, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes={num_classes}, in_channels={8 * width},
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
{extra}
"""
    return write_config(path, CLS_BASES, body)


def det_config(path: Path, data: Path, extra: str = "") -> Path:
    body = f"""
_data_root = '{data}/det/'
val_dataloader = dict(batch_size=2, dataset=dict(data_root=_data_root))
test_dataloader = val_dataloader
model = {{{{_base_.retinanet_student}}}}
{extra}
"""
    return write_config(path, DET_BASES, body)


def checkpoint(config: Path, path: Path, seed: int, prefix: str = "", edit=None) -> Path:
    """A checkpoint of ``config``'s model at a seeded random initialisation (``prefix`` makes
    it a distiller checkpoint, ``edit`` changes the model first)."""
    torch.manual_seed(seed)
    model = build_model_from_cfg(config)
    if edit is not None:
        edit(model)
    state = {prefix + k: v for k, v in model.state_dict().items()}
    if prefix:
        state["terms.logits.connectors.0.weight"] = torch.zeros(2, 2)  # a distiller's extra key
    torch.save({"meta": {"seed": seed}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def cls_models(data, tmp_path_factory) -> dict[str, ModelSpec]:
    tmp = tmp_path_factory.mktemp("what_distilled_cls")
    cfg = cls_config(tmp / "tiny_cls.py", data)
    teacher = checkpoint(cfg, tmp / "teacher.pth", 0)

    def constant(model) -> None:  # predicts class 3 whatever the image: ignores colour
        with torch.no_grad():
            model.head.fc.weight.zero_()
            model.head.fc.bias.copy_(torch.arange(10.0) == 3)

    return dict(
        config=cfg,
        teacher=ModelSpec(cfg, teacher, name="teacher"),
        copy=ModelSpec(cfg, teacher, name="copy", method="kd"),  # the teacher itself
        independent=ModelSpec(cfg, checkpoint(cfg, tmp / "independent.pth", 1), name="indep"),
        other=ModelSpec(cfg, checkpoint(cfg, tmp / "other.pth", 2), name="other", method="fitnet"),
        constant=ModelSpec(cfg, checkpoint(cfg, tmp / "const.pth", 3, edit=constant), name="const"),
    )


@pytest.fixture(scope="module")
def det_models(data, tmp_path_factory) -> dict[str, ModelSpec]:
    tmp = tmp_path_factory.mktemp("what_distilled_det")
    cfg = det_config(tmp / "tiny_det.py", data)
    teacher = checkpoint(cfg, tmp / "teacher.pth", 0)
    return dict(
        config=cfg,
        teacher=ModelSpec(cfg, teacher, name="teacher"),
        copy=ModelSpec(cfg, teacher, name="copy"),
        independent=ModelSpec(cfg, checkpoint(cfg, tmp / "independent.pth", 1), name="indep"),
    )


# -- localization -----------------------------------------------------------------------------


def test_classifier_cam_is_hand_grad_cam_and_cosine_one_with_itself(cls_models) -> None:
    model = load_model(cls_models["teacher"], "teacher")
    torch.manual_seed(0)
    pixels = torch.rand(3, 3, 32, 32) * 255
    labels = torch.tensor([0, 4, 9])
    cams = classifier_cams(model, pixels, labels)
    # by hand: A = last backbone map, α_c = mean_ij ∂y/∂A_cij, CAM = ReLU(Σ_c α_c A_c)
    net = model.model
    acts = net.backbone(model.normalize(pixels))[-1].detach().requires_grad_(True)
    logits = net.head(net.neck((acts,)))
    (grads,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), acts)
    expected = F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1)).detach()
    assert cams.shape == (3, 4, 4)
    torch.testing.assert_close(cams, expected)
    nonzero = cams.flatten(1).amax(1) > 0
    assert nonzero.any()
    cos = cam_cosine(cams, cams)
    torch.testing.assert_close(cos[nonzero], torch.ones(int(nonzero.sum()), dtype=torch.float64))
    assert (cos[~nonzero] == 0).all()  # an all-zero map has cosine 0, also with itself
    other = classifier_cams(model, pixels, torch.tensor([1, 5, 2]))
    assert (cam_cosine(cams, other)[nonzero] < 1 - 1e-6).any()


def test_cam_cosine_and_score_rules_by_hand() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    torch.testing.assert_close(
        cam_cosine(a, b), torch.tensor([1.0, 2**-0.5, 0.0], dtype=torch.float64)
    )
    # wins 2, loses 1, one tie (half) -> (2 + 0.5) / 4
    assert localization_score(torch.tensor([0.9, 0.8, 0.1, 0.5]),
                              torch.tensor([0.5, 0.7, 0.2, 0.5])) == 62.5  # fmt: skip
    with pytest.raises(ValueError, match="paired"):
        localization_score(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        cam_cosine(torch.zeros(2, 3), torch.zeros(2, 4))


def test_box_levels_follow_the_anchor_scales(det_models) -> None:
    model = load_model(det_models["teacher"], "teacher")
    # digits RetinaNet anchors: 12-19 px at stride 8, 24-38 at 16, 48-76 at 32
    boxes = [torch.tensor([[10.0, 10.0, 24.0, 24.0], [20.0, 20.0, 80.0, 80.0]]),
             torch.tensor([[40.0, 50.0, 70.0, 80.0]])]  # fmt: skip
    targets = box_targets(
        model, [(16, 16), (8, 8), (4, 4)], boxes, [torch.tensor([1, 2]), torch.tensor([7])]
    )
    assert targets.level.tolist() == [0, 2, 1]
    assert targets.image.tolist() == [0, 0, 1] and targets.label.tolist() == [1, 2, 7]
    for i, lvl in enumerate(targets.level.tolist()):
        for other, weights in enumerate(targets.weights):
            total = weights[i].sum().item()
            assert total == pytest.approx(1.0 if other == lvl else 0.0)


def test_detector_box_cam_is_hand_grad_cam_at_the_box_level(det_models) -> None:
    model = load_model(det_models["teacher"], "teacher")
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 128, 128) * 255
    boxes = [torch.tensor([[30.0, 30.0, 46.0, 46.0], [10.0, 60.0, 70.0, 120.0]]),
             torch.tensor([[64.0, 64.0, 96.0, 96.0]])]  # fmt: skip
    labels = [torch.tensor([3, 8]), torch.tensor([5])]
    with torch.no_grad():
        feats = model.model.extract_feat(model.normalize(pixels))
    targets = box_targets(model, [tuple(f.shape[-2:]) for f in feats], boxes, labels)
    cams = detector_box_cams(model, feats, targets, (128, 128), chunk=2)  # two captum calls
    assert cams.shape == (3, 128, 128) and (cams >= 0).all()
    head = model.model.bbox_head
    for i in range(3):
        lvl, img, cls = int(targets.level[i]), int(targets.image[i]), int(targets.label[i])
        acts = [f[img : img + 1].clone().requires_grad_(True) for f in feats]
        score = head(tuple(acts))[0][lvl]
        n, _, h, w = score.shape
        score = score.reshape(n, head.num_base_priors, -1, h, w)[:, :, cls]
        y = (score * targets.weights[lvl][i : i + 1]).sum()
        (grad,) = torch.autograd.grad(y, acts[lvl])
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * acts[lvl]).sum(1, keepdim=True))
        expected = F.interpolate(cam, size=(128, 128), mode="bilinear", align_corners=False)[0, 0]
        torch.testing.assert_close(cams[i], expected.detach(), rtol=1e-4, atol=1e-6)
    nonzero = cams.flatten(1).amax(1) > 0
    assert nonzero.any()
    torch.testing.assert_close(
        cam_cosine(cams, cams)[nonzero], torch.ones(int(nonzero.sum()), dtype=torch.float64)
    )


# -- adversarial, invariance, matching ------------------------------------------------------


def test_ifgsm_flips_a_model_built_to_be_fooled_inside_the_eps_ball() -> None:
    # logit_0 = 0.01 Σ (x - 128) + 0.5, logit_1 = 0: class 0 on a grey image, by a margin of 0.5
    def logits(x):
        first = 0.01 * (x - 128).flatten(1).sum(1) + 0.5
        return torch.stack([first, torch.zeros_like(first)], dim=1)

    labels = torch.zeros(2, dtype=torch.long)
    loss = lambda x: F.cross_entropy(logits(x), labels, reduction="sum")  # noqa: E731
    clean = torch.full((2, 3, 4, 4), 128.0)
    clean[1, 0, 0, :2] = torch.tensor([1.0, 255.0])  # near the pixel range's edges
    assert (logits(clean).argmax(1) == 0).all()
    # each step moves all 48 pixels by 2 down: logit_0 falls by 0.96 per step
    attacked = ifgsm(loss, clean, AttackSpec(eps=8, step=2, steps=5))
    assert (logits(attacked).argmax(1) == 1).all()
    assert (attacked - clean).abs().max() <= 8 + 1e-5
    assert attacked.min() >= 0 and attacked.max() <= 255
    assert attacked[1, 0, 0, 0] == 0.0 and attacked[1, 0, 0, 1] == 247.0  # clipped to [0, 255]
    # a ball too small to cross the margin: 48 pixels x 0.1 x 0.01 = 0.048 < 0.5
    tiny = ifgsm(loss, clean, AttackSpec(eps=0.1, step=0.1, steps=5))
    assert (logits(tiny).argmax(1) == 0).all()
    for bad in (dict(eps=0), dict(step=-1), dict(steps=0)):
        with pytest.raises(ValueError, match=f"attack {next(iter(bad))}"):
            AttackSpec(**bad)


def test_color_jitter_is_seeded_and_leaves_images_alone_at_zero_strength() -> None:
    torch.manual_seed(0)
    pixels = torch.rand(4, 3, 8, 8) * 255
    spec = JitterSpec()
    a = sample_jitter(spec, 4, torch.Generator().manual_seed(7))
    b = sample_jitter(spec, 4, torch.Generator().manual_seed(7))
    c = sample_jitter(spec, 4, torch.Generator().manual_seed(8))
    torch.testing.assert_close(color_jitter(pixels, a), color_jitter(pixels, b))
    assert not torch.allclose(color_jitter(pixels, a), color_jitter(pixels, c))
    assert ((a.factors >= 0.6) & (a.factors <= 1.4)).all() and (a.hue.abs() <= 0.2).all()
    assert sorted(a.order[0].tolist()) == [0, 1, 2, 3]
    jittered = color_jitter(pixels, a)
    assert jittered.shape == pixels.shape and jittered.min() >= 0 and jittered.max() <= 255
    assert (jittered - pixels).abs().max() > 1  # it did change the colours
    # BGR input is jittered as RGB
    torch.testing.assert_close(
        color_jitter(pixels.flip(1), a, rgb=False), color_jitter(pixels, a).flip(1)
    )
    none = sample_jitter(JitterSpec(0, 0, 0, 0), 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(color_jitter(pixels, none), pixels, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="jitter hue"):
        JitterSpec(hue=0.7)


def _dets(boxes, labels, scores) -> Detections:
    return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels),
                      torch.tensor(scores))  # fmt: skip


def test_detection_matching_rules_by_hand() -> None:
    a = _dets([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], [1, 1, 2], [0.9, 0.8, 0.7])
    b = _dets([[0, 0, 10, 11], [50, 50, 60, 60]], [1, 3], [0.5, 0.9])
    # one-to-one: the second class-1 box finds the partner taken; class 2 vs 3 never matches
    assert greedy_matches(a, b).tolist() == [True, False, False]
    assert greedy_matches(a, b, same_class=False).tolist() == [True, False, True]
    assert greedy_matches(a, Detections.empty()).tolist() == [False] * 3
    gt = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]])
    overlapping = _dets(
        [[0, 0, 10, 10], [1, 0, 10, 10], [52, 52, 60, 60]], [4, 6, 2], [0.3, 0.6, 0.9]
    )
    # highest score with IoU >= 0.5 (class 6, not the exact class-4 box); 52..60 has IoU 0.64
    assert box_predictions(overlapping, gt).tolist() == [6, 2, -1]
    assert box_predictions(overlapping, gt, iou_thr=0.7).tolist() == [6, -1, -1]


# -- the whole analysis -------------------------------------------------------------------------


def test_classification_analysis_end_to_end(cls_models, tmp_path) -> None:
    options = AnalysisOptions(attack=AttackSpec(eps=64, step=16, steps=5), **FAST)
    result = analyse(
        cls_models["teacher"],
        [cls_models["copy"], cls_models["other"], cls_models["constant"]],
        cls_models["independent"],
        control=ModelSpec(cls_models["config"], cls_models["other"].checkpoint, name="ctrl"),
        options=options,
    )
    s = result.summary
    assert s["task"] == "classification" and s["data"]["num_images"] == 6
    # a copy of the teacher agrees with it everywhere, has CKA 1 and the teacher's invariance
    assert s["agreement"]["copy"] == 100.0
    assert all(v == pytest.approx(1.0) for v in s["cka"]["per_model"]["copy"])
    assert s["cka"]["layers"] == ["backbone.layer1", "backbone.layer2", "backbone.layer3",
                                  "backbone.layer4", "head.fc"]  # fmt: skip
    assert s["invariance"]["copy"] == s["invariance"]["teacher"]
    # its maps equal the teacher's: it wins every image except ties on all-zero teacher maps
    loc = s["localization"]["per_model"]
    zero, n = s["localization"]["teacher_zero_maps"], loc["copy"]["n"]
    assert loc["copy"]["score"] == pytest.approx(100 - 50 * zero / n) and zero < n
    assert "score" not in loc["indep"] and 0 <= loc["other"]["score"] <= 100
    # the teacher's attacks fool the teacher on some images and then always fool its copy
    adv = s["adversarial"]["teacher"]
    assert adv["source_fooled"] > 0
    assert adv["per_model"]["copy"] == {"fooling_rate": 100.0, "n": adv["source_fooled"]}
    # a model that ignores its input is never fooled and never changes under jitter
    assert adv["per_model"]["const"]["fooling_rate"] == 0.0
    assert s["invariance"]["const"]["unchanged"] == 100.0
    assert s["adversarial"]["control"]["source"] == "ctrl"
    assert "ctrl" not in s["adversarial"]["control"]["per_model"]
    # the report
    paths = write_report(result, tmp_path / "report")
    assert set(paths) >= {"json", "markdown", "cam_examples", "localization", "adversarial",
                          "invariance", "agreement", "cka"}  # fmt: skip
    assert json.loads(paths["json"].read_text())["accuracy"] == s["accuracy"]
    text = paths["markdown"].read_text()
    for needle in ("## Localization", "## Adversarial transfer", "## Invariance", "## Linear CKA",
                   "67.2 (KL)", "52.0 (KL)", "48.3 (Hint)", "92.5 (teacher)", "71.3 (independent)"):  # fmt: skip
        assert needle in text
    for name in ("cam_examples", "cka"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.examples) == 2 and set(result.examples[0]["cams"]) == {
        "teacher", "copy", "other", "const", "indep"}  # fmt: skip


def test_analysis_is_deterministic_given_the_seed(cls_models) -> None:
    def run(seed: int) -> dict:
        options = AnalysisOptions(
            num_images=4, seed=seed, properties=("invariance", "localization"), **FAST
        )
        summary = analyse(cls_models["teacher"], [cls_models["other"]], cls_models["independent"],
                          options=options).summary  # fmt: skip
        return {k: summary[k] for k in ("invariance", "localization", "accuracy")}

    assert run(3) == run(3)


def test_detection_analysis_end_to_end(det_models, tmp_path) -> None:
    options = AnalysisOptions(score_thr=0.05, attack=AttackSpec(eps=32, step=8), **FAST)
    result = analyse(det_models["teacher"], [det_models["copy"]], det_models["independent"],
                     options=options)  # fmt: skip
    s = result.summary
    assert s["task"] == "detection" and s["units"] == "ground-truth boxes"
    assert s["data"]["num_boxes"] > 0
    assert s["agreement"]["copy"] == 100.0
    assert all(v == pytest.approx(1.0) for v in s["cka"]["per_model"]["copy"])
    assert s["cka"]["layers"][-3:] == ["neck.fpn_convs.0", "neck.fpn_convs.1", "neck.fpn_convs.2"]
    assert s["invariance"]["copy"] == s["invariance"]["teacher"]
    loc = s["localization"]["per_model"]["copy"]
    assert loc["n"] == s["data"]["num_boxes"]
    assert loc["score"] == pytest.approx(
        100 - 50 * s["localization"]["teacher_zero_maps"] / loc["n"]
    )
    adv = s["adversarial"]["teacher"]
    # boxes the teacher detected whose detection changed class or was lost under its own attack
    assert adv["source_fooled"] > 0
    assert adv["per_model"]["copy"] == {"fooling_rate": 100.0, "n": adv["source_fooled"]}
    paths = write_report(result, tmp_path)
    assert "ground-truth boxes" in paths["markdown"].read_text()
    assert result.examples and result.examples[0]["box"] is not None


# -- inputs that cannot be compared -----------------------------------------------------------


def test_checkpoint_that_does_not_fit_its_config(cls_models, data, tmp_path) -> None:
    wide = cls_config(tmp_path / "wide.py", data, width=8)
    with pytest.raises(ValueError, match=r"does not fit .* shape mismatches"):
        load_model(ModelSpec(wide, cls_models["teacher"].checkpoint), "distilled")
    with pytest.raises(ValueError, match="does not fit"):
        analyse(cls_models["teacher"], [ModelSpec(wide, cls_models["teacher"].checkpoint)],
                cls_models["independent"], options=AnalysisOptions(**FAST))  # fmt: skip


def test_distiller_config_and_checkpoint_give_the_student(data, tmp_path) -> None:
    student_cfg = write_config(tmp_path / "student.py", ["_base_/models/digits_classifiers.py", *CLS_BASES],
                               "model = {{_base_.resnet_student}}\n")  # fmt: skip
    distiller_cfg = cls_distill_config(
        tmp_path / "kd.py", data,
        "logits=dict(student='head.fc', teacher='head.fc', loss=dict(type='KDLoss', tau=1.0))",
    )  # fmt: skip
    ckpt = checkpoint(student_cfg, tmp_path / "distilled.pth", 5, prefix="student.")
    plain = checkpoint(student_cfg, tmp_path / "plain.pth", 5)
    via_distiller = load_model(ModelSpec(distiller_cfg, ckpt), "distilled")
    via_student = load_model(ModelSpec(student_cfg, ckpt), "distilled")
    exported = load_model(ModelSpec(student_cfg, plain), "independent")
    assert type(via_distiller.model).__name__ == "ImageClassifier"
    assert via_distiller.method == "kd" and exported.method == "independent"
    for model in (via_student, exported):
        for (k, v), w in zip(
            via_distiller.model.state_dict().items(), model.model.state_dict().values()
        ):
            assert torch.equal(v, w), k


def test_models_of_different_tasks(cls_models, det_models) -> None:
    with pytest.raises(
        ValueError, match=r"different tasks .*teacher 'teacher': classification.*detection"
    ):
        detector = ModelSpec(det_models["config"], det_models["teacher"].checkpoint, name="det")
        analyse(cls_models["teacher"], [detector], cls_models["independent"],
                options=AnalysisOptions(**FAST))  # fmt: skip


def test_class_counts_that_differ(cls_models, data, tmp_path) -> None:
    five = cls_config(tmp_path / "five.py", data, num_classes=5)
    spec = ModelSpec(five, checkpoint(five, tmp_path / "five.pth", 0), name="five")
    with pytest.raises(
        ValueError, match=r"class counts differ: the teacher 'teacher' has 10 .*'five': 5"
    ):
        analyse(
            cls_models["teacher"],
            [spec],
            cls_models["independent"],
            options=AnalysisOptions(**FAST),
        )


def test_datasets_without_ground_truth(cls_models, det_models, data, tmp_path) -> None:
    # a classification split read without labels
    no_labels = cls_config(tmp_path / "nolabels.py", data, extra=(
        "val_dataloader = dict(dataset=dict(type='CustomDataset', data_root=_data_root,"
        " ann_file='', with_label=False, data_prefix='val'))"))  # fmt: skip
    teacher = ModelSpec(no_labels, cls_models["teacher"].checkpoint, name="teacher")
    with pytest.raises(ValueError, match="has no ground truth: the analysis needs a gt_label"):
        analyse(
            teacher,
            [cls_models["copy"]],
            cls_models["independent"],
            options=AnalysisOptions(**FAST),
        )
    # a detection pipeline without LoadAnnotations
    no_boxes = det_config(tmp_path / "noboxes.py", data, extra=(
        "val_dataloader = dict(dataset=dict(data_root=_data_root, pipeline=[dict(type='LoadImageFromFile'), "
        "dict(type='Resize', scale=(128, 128), keep_ratio=True), dict(type='PackDetInputs')]))"))  # fmt: skip
    teacher = ModelSpec(no_boxes, det_models["teacher"].checkpoint, name="teacher")
    with pytest.raises(ValueError, match="has no ground truth: .*gt_instances"):
        analyse(
            teacher,
            [det_models["copy"]],
            det_models["independent"],
            options=AnalysisOptions(**FAST),
        )


def test_localization_of_detectors_needs_an_anchor_head(det_models, tmp_path) -> None:
    fcos_cfg = write_config(tmp_path / "fcos.py", [
        "_base_/models/digits_fcos.py", *DET_BASES[1:]], "model = {{_base_.fcos_student}}\n")  # fmt: skip
    fcos = ModelSpec(fcos_cfg, checkpoint(fcos_cfg, tmp_path / "fcos.pth", 0), name="fcos")
    options = AnalysisOptions(num_images=2, **FAST)
    with pytest.raises(
        ValueError, match=r"needs a single-stage detector with an anchor head.*FCOS"
    ):
        analyse(det_models["teacher"], [fcos], det_models["independent"], options=options)
    # the other properties need no anchors: an anchor-free student is attacked and matched
    options = AnalysisOptions(num_images=2, properties=("adversarial", "agreement"), **FAST)
    summary = analyse(det_models["teacher"], [fcos], det_models["independent"],
                      options=options).summary  # fmt: skip
    assert set(summary["adversarial"]["teacher"]["per_model"]) == {"fcos", "indep"}
    assert "localization" not in summary and summary["agreement"]["fcos"] is not None


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="properties must be a non-empty subset"):
        AnalysisOptions(properties=("speed",))
    with pytest.raises(ValueError, match="num_images must be an integer >= 1"):
        AnalysisOptions(num_images=0)
    with pytest.raises(ValueError, match="score_thr"):
        AnalysisOptions(score_thr=1.5)
    assert paper_key("kd-tau4", "distilled") == "KL" and paper_key("srd", "distilled") is None
    assert paper_key("fitnet", "independent") == "independent"


def test_lazy_export_from_kd_det_analysis() -> None:
    import kd_det.analysis
    from kd_det.analysis import what_distilled

    assert kd_det.analysis.analyse is what_distilled.analyse
    assert kd_det.analysis.ModelSpec is ModelSpec
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        kd_det.analysis.nothing  # noqa: B018


def test_loaded_model_normalises_with_its_own_preprocessor(cls_models) -> None:
    model: LoadedModel = load_model(cls_models["teacher"], "teacher")
    assert model.channel_conversion is True
    torch.testing.assert_close(
        model.normalize(torch.full((1, 3, 2, 2), 191.5)), torch.ones(1, 3, 2, 2)
    )


# -- the command line tool and the driver -----------------------------------------------------


def test_tool_writes_the_report_and_names_missing_inputs(cls_models, data, tmp_path) -> None:
    from tools.analysis.what_distilled import main

    t, c, i = cls_models["teacher"], cls_models["copy"], cls_models["independent"]
    args = ["--teacher", str(t.config), str(t.checkpoint), "--distilled", str(c.config),
            str(c.checkpoint), "copy", "kd", "--independent", str(i.config), str(i.checkpoint),
            "--num-images", "4", "--properties", "agreement", "invariance", "--no-progress",
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["agreement"]["copy"] == 100.0 and summary["data"]["num_images"] == 4
    assert (tmp_path / "out" / "invariance.png").is_file()
    missing = [*args[:5], str(tmp_path / "nope.pth"), *args[6:]]
    with pytest.raises(SystemExit, match=r"distilled checkpoint .*nope.pth' does not exist"):
        main(missing)
    five = cls_config(tmp_path / "five.py", data, num_classes=5)
    with pytest.raises(SystemExit, match=r"kd_det: teacher 'teacher': checkpoint .* does not fit"):
        main([args[0], str(five), *args[2:]])


def test_driver_aggregates_seeds_into_the_readme(cls_models, data, tmp_path, monkeypatch) -> None:
    from tools.experiments import what_distilled as driver

    # the sweep's layout with tiny classifiers in place of the digits configs
    tiny = str(cls_models["config"])
    monkeypatch.setattr(driver, "variants", lambda task: {"student": tiny, "logitkd": tiny})
    monkeypatch.setitem(driver.TASKS, "cls", replace(driver.TASKS["cls"], teacher=tiny))
    root = tmp_path / "runs"
    layout = ["teacher", "student/seed0", "student/seed1", "logitkd/seed0", "logitkd/seed1"]
    for i, folder in enumerate(layout):
        (root / "cls" / folder).mkdir(parents=True)
        prefix = "student." if folder.startswith("logitkd") else ""  # distiller checkpoints
        # the highest epoch is taken: epoch_10, not epoch_2 (which is no checkpoint at all)
        checkpoint(cls_models["config"], root / "cls" / folder / "epoch_10.pth", i, prefix=prefix)
        (root / "cls" / folder / "epoch_2.pth").write_bytes(b"not a checkpoint")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- what_distilled:cls -->\n<!-- /what_distilled:cls -->\nend\n")
    argv = ["--task", "cls", "--seeds", "0", "1", "--methods", "logitkd", "--work-root", str(root),
            "--no-control", "--num-images", "4", "--properties", "localization", "agreement",
            "--data-root", f"{data}/cls/", "--out", str(tmp_path / "out"), "--readme", str(readme)]  # fmt: skip
    assert driver.main(argv) == 0
    table = json.loads((tmp_path / "out" / "cls" / "what_distilled.json").read_text())["table"]
    assert table["logitkd"]["localization"]["n"] == 2
    assert set(table["logitkd"]["localization"]["per_seed"]) == {"0", "1"}
    assert table[driver.NEXT_SEED]["agreement"]["n"] == 2  # the next seed's student, compared too
    text = readme.read_text()
    assert text.startswith("intro\n<!-- what_distilled:cls -->\n```bash\npython tools/experiments/")
    assert "| logitkd (logit KD) |" in text and text.endswith("<!-- /what_distilled:cls -->\nend\n")
    assert (tmp_path / "out" / "cls" / "seed1" / "report.md").is_file()
    models = json.loads((tmp_path / "out" / "cls" / "seed1" / "report.json").read_text())["models"]
    assert [m["checkpoint"].split("runs/")[1] for m in models] == [
        "cls/teacher/epoch_10.pth", "cls/logitkd/seed1/epoch_10.pth",
        "cls/student/seed0/epoch_10.pth", "cls/student/seed1/epoch_10.pth"]  # fmt: skip
    # a finished seed is read back, not recomputed
    (tmp_path / "out" / "cls" / "seed0" / "report.md").unlink()
    assert driver.main(argv) == 0
    assert not (tmp_path / "out" / "cls" / "seed0" / "report.md").exists()
