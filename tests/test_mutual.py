"""Mutual learning (kd_det.MutualDistiller): the terms by hand, detached partners, one optimizer
per network, both networks evaluated by the Runner, checkpoints, resume, export, benchmark,
configs and the construction errors.

The unit tests run two toy nets (tests.distill_helpers.ToyNet) or the digits models; the Runner
tests train two width-8 digits ResNet-18 (and two width-8 RetinaNets) for a few iterations.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path

import mmdet
import mmpretrain
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModule
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope, init_default_scope

import kd_det  # noqa: F401  (registers kd_det's modules)
from kd_det.apis import build_model_from_cfg, read_metrics
from kd_det.benchmark import MUTUAL_MODES, build_steps, ratios_of
from kd_det.compat import load_local_checkpoint
from kd_det.distillers import MutualDistiller, MutualMetric, MutualOptimWrapperConstructor
from kd_det.distillers.optim import network_optim_wrapper_cfg
from kd_det.export import export_student, network_config
from tests.conftest import (
    CONFIGS,
    REPO,
    cls_data_overrides,
    det_data_overrides,
    metric_from_output,
    run_tool,
    short_schedule,
    write_config,
)
from tests.distill_helpers import ToyNet, make_runner

MMDET_TOOLS = Path(mmdet.__file__).parent / ".mim" / "tools"
MMPRETRAIN_TOOLS = Path(mmpretrain.__file__).parent / ".mim" / "tools"
LOGITS = dict(net1="head", net2="head", loss=dict(type="LogitKDLoss", tau=2.0, loss_weight=0.5))
DML_CLS = CONFIGS / "dml" / "dml_resnet18-w8-w8_30e_digits-cls.py"
DML_DET = CONFIGS / "dml" / "dml_retinanet-w8-w8_fpn_24e_digits.py"
MUTUAL_CONFIGS = sorted([*(CONFIGS / "dml").glob("*.py"), *(CONFIGS / "iedml").glob("*.py")])


def toy_mutual(distill=None, **kwargs) -> MutualDistiller:
    torch.manual_seed(0)
    return MutualDistiller(
        net1=kwargs.pop("net1", ToyNet(4)),
        net2=kwargs.pop("net2", ToyNet(8)),
        distill=dict(logits=LOGITS) if distill is None else distill,
        probe_size=(16, 16),
        **kwargs,
    )


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


# -- the terms -------------------------------------------------------------------------------


def test_softmax_kl_by_hand_on_the_detached_partner() -> None:
    model = toy_mutual()
    x = torch.randn(3, 3, 16, 16)
    losses = model.loss(x, None)
    z1, z2 = model.net1(x), model.net2(x)
    tau, w = 2.0, 0.5

    def kl(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # KL(softmax(t/τ) ‖ softmax(s/τ)) summed over classes, mean over the batch
        p = torch.exp(target / tau) / torch.exp(target / tau).sum(1, keepdim=True)
        q = torch.exp(logits / tau) / torch.exp(logits / tau).sum(1, keepdim=True)
        return (p * (p.log() - q.log())).sum() / target.shape[0]

    assert losses["net1.distill.logits.loss"].item() == pytest.approx(
        (w * tau**2 * kl(z2, z1)).item(), rel=1e-5
    )
    assert losses["net2.distill.logits.loss"].item() == pytest.approx(
        (w * tau**2 * kl(z1, z2)).item(), rel=1e-5
    )
    assert set(losses) == {
        "net1.loss_toy",
        "net2.loss_toy",
        "net1.distill.logits.loss",
        "net2.distill.logits.loss",
    }

    # each network's term reaches only its own parameters: the partner is a constant target
    losses["net1.distill.logits.loss"].backward(retain_graph=True)
    assert all(g is None for g in _grads(model.net2))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(model.net1))
    model.zero_grad(set_to_none=True)
    losses["net2.distill.logits.loss"].backward()
    assert all(g is None for g in _grads(model.net1))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(model.net2))


def _digits_retinanet(**head) -> dict:
    init_default_scope("mmdet")
    model = copy.deepcopy(
        Config.fromfile(CONFIGS / "_base_/models/digits_retinanet.py").retinanet_student
    )
    model["bbox_head"].update(head)
    return model


def test_sigmoid_kd_by_hand_on_the_per_level_logits() -> None:
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(0)
    spec = dict(
        net1="bbox_head.retina_cls",
        net2="bbox_head.retina_cls",
        loss=dict(type="SigmoidKDLoss", tau=1.0, loss_weight=1.0),
    )
    model = MutualDistiller(
        net1=_digits_retinanet(), net2=_digits_retinanet(), distill=dict(cls=spec)
    )
    data = model.data_preprocessor(
        demo_mm_inputs(2, [(3, 64, 64)] * 2, num_items=[2, 3], num_classes=10), True
    )
    losses = model(data["inputs"], data["data_samples"], mode="loss")
    assert {"net1.loss_cls", "net1.loss_bbox", "net2.loss_cls", "net2.loss_bbox"} <= set(losses)
    # the per-level logits the term compared: the same batch through each head again (in
    # training mode BatchNorm normalises with this batch's statistics, as in the loss pass)
    levels = {
        net: getattr(model, net)(data["inputs"], mode="tensor")[0] for net in ("net1", "net2")
    }
    # one layer per FPN level
    assert (
        len(levels["net1"])
        == len(levels["net2"])
        == model.net1.bbox_head.prior_generator.num_levels
    )

    def sigmoid_kd(student: list[torch.Tensor], partner: list[torch.Tensor]) -> float:
        total = 0.0
        for s, t in zip(student, partner, strict=True):
            p = torch.sigmoid(t)
            bce = -(p * F.logsigmoid(s) + (1 - p) * F.logsigmoid(-s)).sum()
            total += (bce / p.sum().clamp_min(1.0)).item()
        return total

    for net, partner in (("net1", "net2"), ("net2", "net1")):
        expected = sigmoid_kd(levels[net], levels[partner])
        assert losses[f"{net}.distill.cls.loss"].item() == pytest.approx(expected, rel=1e-5)
    model.zero_grad(set_to_none=True)
    losses["net2.distill.cls.loss"].backward()
    assert all(g is None for g in _grads(model.net1))
    assert model.net2.bbox_head.retina_cls.weight.grad.abs().sum() > 0


def test_weight_schedule_scales_both_directions() -> None:
    model = toy_mutual()
    x = torch.randn(2, 3, 16, 16)
    before = model.loss(x, None)
    model.term("logits").scale = 0.25
    after = model.loss(x, None)
    for net in ("net1", "net2"):
        key = f"{net}.distill.logits.loss"
        assert after[key].item() == pytest.approx(0.25 * before[key].item(), rel=1e-6)
    with pytest.raises(KeyError, match=r"no distill term 'logitz'; terms: \['logits'\]"):
        model.term("logitz")


# -- optimizers ------------------------------------------------------------------------------


def test_one_optimizer_per_network_steps_only_its_own() -> None:
    feat = dict(
        net1="blocks.*",
        net2="blocks.*",
        connector=dict(type="ProjectNorm", projector=dict(type="LinearProjector")),
        loss=dict(type="MSEFeatureLoss"),
    )
    model = toy_mutual(dict(logits=LOGITS, feat=feat))
    cfg = dict(
        constructor="kd_det.MutualOptimWrapperConstructor",
        optimizer=dict(type="SGD", lr=0.1),
        net2=dict(optimizer=dict(lr=0.0)),  # net2 frozen by its own learning rate
    )
    wrapper = build_optim_wrapper(model, cfg)
    assert isinstance(wrapper, OptimWrapperDict) and set(wrapper.keys()) == {"net1", "net2"}
    assert wrapper["net1"].get_lr()["lr"] == [0.1] and wrapper["net2"].get_lr()["lr"] == [0.0]
    # the parameter sets are disjoint and cover the model; a network's connectors train with it
    params = {
        net: {id(p) for g in w.optimizer.param_groups for p in g["params"]}
        for net, w in wrapper.items()
    }
    assert not params["net1"] & params["net2"]
    assert params["net1"] | params["net2"] == {id(p) for p in model.parameters()}
    connector_1 = model.term("feat")["net1"].connectors[0].projector.weight
    assert id(connector_1) in params["net1"]

    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 16, 16)
    log_vars = model.train_step(dict(inputs=x), wrapper)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("net1.", "terms.feat.directions.net1.")) for k in changed)
    assert "net1.head.weight" in changed
    assert "terms.feat.directions.net1.connectors.0.projector.weight" in changed
    total = log_vars["net1.total_loss"] + log_vars["net2.total_loss"]
    assert log_vars["loss"].item() == pytest.approx(total.item())

    with pytest.raises(ValueError, match="OptimWrapperDict with keys \\['net1', 'net2'\\]"):
        model.train_step(dict(inputs=x), wrapper["net1"])


def test_the_shared_backward_of_ddp_steps_like_one_backward_per_network() -> None:
    # under DDP (``model`` the wrapper, here any other module) one backward of both sums, then
    # each optimizer steps: the same update as each wrapper's own update_params in one process
    cfg = dict(
        constructor="kd_det.MutualOptimWrapperConstructor",
        optimizer=dict(type="SGD", lr=0.1),
        clip_grad=dict(max_norm=0.5),
    )
    x = torch.randn(2, 3, 16, 16)
    models = [toy_mutual(), toy_mutual()]
    for model, wrapped in zip(models, (None, torch.nn.Identity()), strict=True):
        wrapper = build_optim_wrapper(model, cfg)
        with model.optim_context(wrapper, wrapped):
            losses = model.loss(x, None)
        model.update_params(losses, wrapper, wrapped)
    for (key, a), b in zip(
        models[0].state_dict().items(), models[1].state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), key
    accumulating = build_optim_wrapper(models[1], dict(cfg, accumulative_counts=2))
    with pytest.raises(
        ValueError, match=r"needs plain OptimWrappers without gradient accumulation"
    ):
        models[1].update_params(models[1].loss(x, None), accumulating, torch.nn.Identity())


def test_network_optimizer_settings_merge_over_the_shared_ones() -> None:
    cfg = dict(
        constructor="kd_det.MutualOptimWrapperConstructor",
        type="OptimWrapper",
        optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
        clip_grad=dict(max_norm=10),
        net2=dict(optimizer=dict(lr=5e-4), clip_grad=dict(_delete_=True, max_norm=1)),
    )
    assert network_optim_wrapper_cfg(cfg, "net1") == dict(
        type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
        clip_grad=dict(max_norm=10),
    )  # fmt: skip
    assert network_optim_wrapper_cfg(cfg, "net2") == dict(
        type="OptimWrapper", optimizer=dict(type="AdamW", lr=5e-4, weight_decay=0.05),
        clip_grad=dict(max_norm=1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="no optimizer for net1"):
        MutualOptimWrapperConstructor(dict(net2=dict(optimizer=dict(type="SGD", lr=0.1))))
    with pytest.raises(TypeError, match="needs a kd_det.MutualDistiller"):
        MutualOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)))(ToyNet(4))


# -- construction errors ---------------------------------------------------------------------


def _digits_classifier(num_classes: int = 10) -> dict:
    init_default_scope("mmpretrain")
    model = copy.deepcopy(
        Config.fromfile(CONFIGS / "_base_/models/digits_classifiers.py").resnet_student
    )
    model["head"]["num_classes"] = num_classes
    return model


def test_logit_term_between_different_class_counts_is_refused() -> None:
    message = re.escape(
        "distill term 'logits': LogitKDLoss compares logits class by class, but net1's head "
        "has 10 classes and net2's head has 20; a logit term needs two networks over the same "
        "classes (set the same num_classes in both heads, or compare features with a feature "
        "loss and a connector instead)"
    )
    with pytest.raises(ValueError, match=message):
        MutualDistiller(
            net1=_digits_classifier(10),
            net2=_digits_classifier(20),
            distill=dict(logits=dict(LOGITS, net1="head.fc", net2="head.fc")),
            probe_size=(32, 32),
        )


def test_detector_heads_with_different_class_counts_are_refused() -> None:
    spec = dict(
        net1="bbox_head.retina_cls", net2="bbox_head.retina_cls", loss=dict(type="SigmoidKDLoss")
    )
    with pytest.raises(
        ValueError,
        match=r"SigmoidKDLoss compares logits class by class, but net1's bbox_head has 10 "
        r"classes and net2's bbox_head has 3",
    ):
        MutualDistiller(
            net1=_digits_retinanet(), net2=_digits_retinanet(num_classes=3), distill=dict(cls=spec)
        )


def test_heads_without_num_classes_are_compared_by_their_logit_widths() -> None:
    # ToyNet's head is a bare nn.Linear: the probe's widths name the mismatch
    with pytest.raises(
        ValueError,
        match=re.escape("net1's head gives (10,) logits per image and net2's head (12,) (classes)"),
    ):
        toy_mutual(net2=ToyNet(8, num_classes=12))


@pytest.mark.parametrize(
    ("distill", "message"),
    [
        ([LOGITS], "distill must be a dict keyed by term name"),
        (dict(logits=dict(student="head", teacher="head", loss=LOGITS["loss"])),
         "'student': a mutual term names 'net1' and 'net2' layers"),
        (dict(logits=dict(LOGITS, net2="haed")),
         "net2 layer 'haed' does not exist in ToyNet; closest valid paths: ['head']"),
        (dict(logits=dict(LOGITS, lossy=1)), "'lossy': did you mean 'loss'?"),
        (dict(train=LOGITS), "distill term name 'train' cannot be used"),
    ],
)  # fmt: skip
def test_bad_terms_are_refused(distill, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        toy_mutual(distill)


def test_other_construction_errors() -> None:
    with pytest.raises(ValueError, match="predict_with must be one of"):
        toy_mutual(predict_with="net3")
    with pytest.raises(ValueError, match="uses net1's data_preprocessor"):
        toy_mutual(data_preprocessor=dict(type="BaseDataPreprocessor"))
    init_default_scope("mmpretrain")
    base = Config.fromfile(CONFIGS / "_base_/models/digits_classifiers.py").resnet_student
    other = copy.deepcopy(base)
    other["data_preprocessor"]["std"] = [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"different data preprocessors.*std: net1 \[\[\[64"):
        MutualDistiller(net1=base, net2=other, distill=dict(), probe_size=(32, 32))
    # a term set to None is skipped
    assert list(toy_mutual(dict(logits=LOGITS, feat=None)).terms) == ["logits"]


def test_mutual_metric_refuses_single_network_predictions() -> None:
    with pytest.raises(ValueError, match="metric must be a metric config dict"):
        MutualMetric(metric="Accuracy")
    with pytest.raises(ValueError, match="networks must be distinct names"):
        MutualMetric(metric=dict(type="mmpretrain.Accuracy"), networks=("net1", "net1"))
    metric = MutualMetric(metric=dict(type="mmpretrain.Accuracy"))
    with pytest.raises(ValueError, match="predict_with='both'"):
        metric.process({}, [dict(pred_score=torch.zeros(10))])


# -- the Runner ------------------------------------------------------------------------------


class _Snapshot(Hook):
    """Keeps the model's state and both optimizers' states as the Runner starts training."""

    def before_train(self, runner) -> None:
        self.state = copy.deepcopy(runner.model.state_dict())
        self.optim = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.lr = runner.optim_wrapper.get_lr()


THREE_BATCHES = dict(train_dataloader=dict(dataset=dict(indices=96)))  # of 32 images


def _cls_config(tmp_path: Path, digits_root: Path, base: Path = DML_CLS, body: str = "") -> Path:
    return write_config(
        tmp_path / "cfg.py",
        [base],
        cls_data_overrides(digits_root)
        + short_schedule(1)
        + "optim_wrapper = dict(optimizer=dict(lr=2e-3), net2=dict(optimizer=dict(lr=1e-3)))\n"
        + body,
    )


@pytest.fixture(scope="module")
def trained_cls(tmp_path_factory, digits_root: Path) -> tuple[Path, Path]:
    """Two width-8 digits ResNet-18 trained together for one epoch of 3 iterations."""
    tmp = tmp_path_factory.mktemp("dml_cls")
    cfg = _cls_config(tmp, digits_root)
    work = tmp / "work"
    make_runner(cfg, work, **THREE_BATCHES).train()
    return cfg, work


def test_runner_trains_and_evaluates_both_classifiers(trained_cls) -> None:
    cfg, work = trained_cls
    metrics = read_metrics(work)
    assert set(metrics) == {"net1/accuracy/top1", "net2/accuracy/top1"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    ckpt = load_local_checkpoint(str(work / "epoch_1.pth"))
    state = ckpt["state_dict"]
    for net in ("net1", "net2"):
        assert any(k.startswith(f"{net}.backbone.") for k in state)
        assert any(k.startswith(f"{net}.head.fc.") for k in state)
    # both optimizers, each with its own state and learning rate
    assert set(ckpt["optimizer"]) == {"net1", "net2"}
    assert ckpt["optimizer"]["net2"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-3)
    assert ckpt["optimizer"]["net1"]["param_groups"][0]["initial_lr"] == pytest.approx(2e-3)
    assert all(len(ckpt["optimizer"][n]["state"]) > 0 for n in ("net1", "net2"))
    assert set(ckpt["param_schedulers"]) == {"net1", "net2"}


def test_resume_restores_both_networks_and_both_optimizers(trained_cls, tmp_path: Path) -> None:
    cfg, work = trained_cls
    saved = load_local_checkpoint(str(work / "epoch_1.pth"))
    runner = make_runner(
        cfg, tmp_path / "resumed", resume=True, load_from=str(work / "epoch_1.pth"),
        train_cfg=dict(max_epochs=2, val_interval=5), **THREE_BATCHES,
    )  # fmt: skip
    snapshot = _Snapshot()
    runner.register_hook(snapshot)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 6
    for key, value in saved["state_dict"].items():
        assert torch.equal(snapshot.state[key], value), key
    for net in ("net1", "net2"):
        ours, theirs = snapshot.optim[net], saved["optimizer"][net]
        assert ours["param_groups"][0]["lr"] == theirs["param_groups"][0]["lr"]
        assert ours["state"].keys() == theirs["state"].keys()
        for index, entry in theirs["state"].items():
            assert torch.equal(ours["state"][index]["exp_avg"], entry["exp_avg"]), (net, index)
    assert snapshot.lr["net2.lr"] == [saved["optimizer"]["net2"]["param_groups"][0]["lr"]]


def test_export_of_either_network_loads_into_the_plain_classifier(
    trained_cls, tmp_path: Path
) -> None:
    cfg, work = trained_cls
    ckpt = str(work / "epoch_1.pth")
    state = load_local_checkpoint(ckpt)["state_dict"]
    for net in ("net1", "net2"):
        out, cfg_out = export_student(str(cfg), ckpt, str(tmp_path / f"{net}.pth"), network=net)
        plain_cfg = Config.fromfile(cfg_out)
        assert plain_cfg.model.type == "ImageClassifier"
        assert plain_cfg.val_evaluator == dict(type="Accuracy", topk=(1,))
        assert "constructor" not in plain_cfg.optim_wrapper
        model = build_model_from_cfg(plain_cfg)
        exported = load_local_checkpoint(out)["state_dict"]
        model.load_state_dict(exported, strict=True)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[f"{net}.{key}"]), (net, key)
    expected = "choose the one to export with network='net1' or 'net2'"
    with pytest.raises(ValueError, match=expected):
        export_student(str(cfg), ckpt, str(tmp_path / "x.pth"))
    with pytest.raises(ValueError, match="has one student"):
        export_student(str(CONFIGS / "kd/kd_resnet18-w32-w8_30e_digits-cls.py"), ckpt,
                       str(tmp_path / "x.pth"), network="net1")  # fmt: skip


def test_export_tool_needs_the_network_of_a_mutual_checkpoint(
    trained_cls, tmp_path: Path, monkeypatch, capsys
) -> None:
    from tools import export_student as tool

    cfg, work = trained_cls
    ckpt = work / "epoch_1.pth"
    monkeypatch.setattr("sys.argv", ["export_student.py", str(cfg), str(ckpt), "x.pth"])
    with pytest.raises(SystemExit):
        tool.main()
    assert "add --network net1 or --network net2" in capsys.readouterr().err
    out = tmp_path / "net2.pth"
    argv = ["export_student.py", str(cfg), str(ckpt), str(out), "--network", "net2"]
    monkeypatch.setattr("sys.argv", argv)
    tool.main()
    assert f"net2 checkpoint: {out}" in capsys.readouterr().out
    assert out.is_file() and out.with_suffix(".py").is_file()


@pytest.mark.slow
def test_tools_test_and_mmpretrain_test_of_the_export_agree(trained_cls, tmp_path: Path) -> None:
    cfg, work = trained_cls
    ckpt = work / "epoch_1.pth"
    both = run_tool("tools/test.py", cfg, ckpt, "--work-dir", tmp_path / "t0")
    out = tmp_path / "export" / "net2.pth"
    run_tool("tools/export_student.py", cfg, ckpt, out, "--network", "net2")
    alone = run_tool(
        MMPRETRAIN_TOOLS / "test.py", out.with_suffix(".py"), out, "--work-dir", tmp_path / "t1"
    )
    assert metric_from_output(alone, "accuracy/top1") == metric_from_output(
        both, "net2/accuracy/top1"
    )


def test_predict_with_one_network_gives_its_plain_predictions(trained_cls) -> None:
    cfg, _ = trained_cls
    model = build_model_from_cfg(cfg, {"model.predict_with": "net1"}).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x, mode="tensor"), model.net1(x, mode="tensor"))
    both = build_model_from_cfg(cfg).eval()
    tensors = both(x, mode="tensor")
    assert set(tensors) == {"net1", "net2"}
    plain = network_config(Config.fromfile(cfg), "net1")
    assert plain.model.type == "ImageClassifier"


def test_runner_evaluates_both_detectors_with_coco_metric(
    tmp_path: Path, digits_root: Path
) -> None:
    body = (
        det_data_overrides(digits_root)
        + short_schedule(1)
        # the base's MutualMetric wraps CocoMetric: point the wrapped metric at the test's data
        + f"val_evaluator = dict(metric=dict(ann_file={str(digits_root)!r} + "
        "'/det/annotations/val.json'))\n"
        + "test_evaluator = val_evaluator\n"
        + "model = dict(net1=dict(test_cfg=dict(score_thr=0.0)), "
        "net2=dict(test_cfg=dict(score_thr=0.0)))\n"
    )
    cfg = write_config(tmp_path / "cfg.py", [DML_DET], body)
    work = tmp_path / "work"
    eight = dict(dataset=dict(indices=8))
    make_runner(cfg, work, train_dataloader=eight, val_dataloader=eight).train()
    metrics = read_metrics(work)
    for net in ("net1", "net2"):
        assert f"{net}/coco/bbox_mAP" in metrics and f"{net}/coco/bbox_mAP_50" in metrics
        assert 0.0 <= metrics[f"{net}/coco/bbox_mAP"] <= 1.0


@pytest.mark.slow
def test_exported_detector_scores_the_same_with_mmdet_test_py(
    tmp_path: Path, digits_root: Path
) -> None:
    body = (
        det_data_overrides(digits_root)
        + short_schedule(1)
        + f"val_evaluator = dict(metric=dict(ann_file={str(digits_root)!r} + "
        "'/det/annotations/val.json'))\n"
        + "test_evaluator = val_evaluator\n"
        + "model = dict(net1=dict(test_cfg=dict(score_thr=0.0)), "
        "net2=dict(test_cfg=dict(score_thr=0.0)))\n"
    )
    cfg = write_config(tmp_path / "cfg.py", [DML_DET], body)
    work = tmp_path / "work"
    run_tool(
        "tools/train.py", cfg, "--work-dir", work,
        "--cfg-options", "train_dataloader.dataset.indices=8",
    )  # fmt: skip
    ckpt = work / "epoch_1.pth"
    both = run_tool("tools/test.py", cfg, ckpt, "--work-dir", tmp_path / "t0")
    for net in ("net1", "net2"):
        out = tmp_path / "export" / f"{net}.pth"
        run_tool("tools/export_student.py", cfg, ckpt, out, "--network", net)
        alone = run_tool(
            MMDET_TOOLS / "test.py", out.with_suffix(".py"), out, "--work-dir", tmp_path / net
        )
        for key in ("coco/bbox_mAP", "coco/bbox_mAP_50"):
            assert metric_from_output(alone, key) == metric_from_output(both, f"{net}/{key}")


# -- benchmark -------------------------------------------------------------------------------


def test_benchmark_times_both_networks_and_the_mutual_step(digits_root: Path) -> None:
    from kd_det.benchmark import load_config, run_timing

    cfg = load_config(str(DML_CLS), batch_size=2, data_root=f"{digits_root}/cls/")
    result = run_timing(cfg, str(DML_CLS), warmup=0, iters=1)
    assert tuple(result.modes) == MUTUAL_MODES
    medians = {m: r.median_ms for m, r in result.modes.items()}
    assert result.ratios["mutual/bound"] == pytest.approx(medians["mutual"] / medians["bound"])
    assert ratios_of({"net1": 1.0, "net2": 3.0, "mutual": 5.0, "bound": 4.0}) == pytest.approx(
        {"mutual/bound": 1.25, "mutual/net1": 5.0, "mutual/net2": 5 / 3, "bound/(net1+net2)": 1.0}
    )


def test_benchmark_bound_steps_each_network_with_its_own_optimizer() -> None:
    model = toy_mutual()
    steps = build_steps(model, dict(constructor="kd_det.MutualOptimWrapperConstructor",
                                    optimizer=dict(type="SGD", lr=0.1)))  # fmt: skip
    assert tuple(steps) == MUTUAL_MODES
    with pytest.raises(ValueError, match="MutualDistiller cannot be split by term"):
        build_steps(model, dict(optimizer=dict(type="SGD", lr=0.1)), split=True)
    batch = dict(inputs=torch.randn(2, 3, 16, 16), data_samples=None)
    for mode in ("net1", "net2"):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        steps[mode](batch)
        changed = {
            k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])
        }
        assert changed == {mode}


def test_benchmark_cli_reports_the_mutual_ratio(digits_root: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "bench.json"
    text = run_tool(
        REPO / "tools" / "benchmark.py", DML_CLS, "--iters", "2", "--warmup", "0",
        "--batch-size", "2", "--threads", "1", "--no-memory",
        "--data-root", f"{digits_root}/cls/", "--json", out, timeout=300,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result["modes"]) == set(MUTUAL_MODES)
    ratio = result["ratios"]["mutual/bound"]
    assert f"c/d = {ratio:.3f}" in text and "(d) lower bound = (a) + (b)" in text
    assert result["within_target"] == (ratio <= 1.05)
    assert "no teacher_ckpt" not in text


# -- configs ---------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted while building a model: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_the_mutual_configs_exist() -> None:
    names = {str(p.relative_to(CONFIGS)) for p in MUTUAL_CONFIGS}
    expected = {
        f"{method}/{method}_{pair}.py"
        for method in ("dml", "iedml")
        for pair in (
            "retinanet-r50-r50_fpn_1x_coco",
            "retinanet-r18-r50_fpn_1x_coco",
            "resnet18-resnet34_8xb16_cifar100",
            "resnet18-w8-w8_30e_digits-cls",
            "retinanet-w8-w8_fpn_24e_digits",
        )
    }
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", MUTUAL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_mutual_config_parses_and_builds(path: Path, no_network, monkeypatch) -> None:
    # the networks' random initialisation says nothing about the config (and an ImageNet
    # backbone's init_cfg would download); the model is built as the Runner builds it
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    cfg = Config.fromfile(path)
    assert cfg.get("custom_imports", {}).get("imports") == ["kd_det"]
    assert cfg.get("data_preprocessor") is None
    assert cfg.optim_wrapper.constructor == "kd_det.MutualOptimWrapperConstructor"
    assert cfg.val_evaluator.type == "kd_det.MutualMetric"
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope")):
        model = MODELS.build(cfg.model)
        assert isinstance(model, MutualDistiller)
        assert list(model.terms) == [k for k, v in cfg.model.distill.items() if v is not None]
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert set(wrapper.keys()) == {"net1", "net2"}
    if "coco" in path.stem:
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.val_evaluator.metric.type == "CocoMetric"
        assert cfg.model.net2.cfg_path == "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"
        depth = "r18" if "r18" in path.stem else "r50"
        assert cfg.model.net1.cfg_path == f"mmdet::retinanet/retinanet_{depth}_fpn_1x_coco.py"
    elif "cifar100" in path.stem:
        assert cfg.train_cfg.max_epochs == 200
        assert model.net1.head.num_classes == model.net2.head.num_classes == 100
    elif "digits-cls" in path.stem:
        assert cfg.train_cfg.max_epochs == 30
    else:
        assert cfg.train_cfg.max_epochs == 24


# -- IE-DML ----------------------------------------------------------------------------------

IE_CLS = CONFIGS / "iedml" / "iedml_resnet18-w8-w8_30e_digits-cls.py"
IE = dict(
    net1="blocks.1",
    net2="blocks.1",
    factor_channels=2,
    loss=dict(type="InheritExploreLoss", weighting="code", inh_weight=3.0, exp_weight=2.0),
)


def test_ie_dml_losses_by_hand_and_their_gradients() -> None:
    model = toy_mutual(dict(ie=IE), net1=ToyNet(4), net2=ToyNet(6))
    term = model.term("ie")
    x = torch.randn(3, 3, 16, 16)
    losses = model.loss(x, None)

    def blocks_1(net: ToyNet) -> torch.Tensor:  # the output of `blocks.1`, the term's layer
        return net.blocks[1](torch.relu(net.blocks[0](torch.relu(net.stem(x)))))

    f = {net: blocks_1(getattr(model, net)) for net in ("net1", "net2")}
    assert f["net1"].shape[1] == 4 and f["net2"].shape[1] == 6

    def n(a: torch.Tensor) -> torch.Tensor:  # L2-normalised flattened samples
        a = a.flatten(1)
        return a / a.norm(dim=1, keepdim=True)

    def d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # per sample, mean over elements
        return (n(a) - n(b)).abs().mean(dim=1)

    factor, recon = {}, {}
    for net in ("net1", "net2"):
        side = term[net]
        factor[net] = side.encoder(f[net])
        recon[net] = (side.decoder(factor[net]) - f[net]).abs().mean()
    for net, partner in (("net1", "net2"), ("net2", "net1")):
        side, k = term[net], f[net].shape[1] // 2  # the natural split: first / second half
        inh = d(side.inherit_encoder(f[net][:, :k]), factor[partner]).mean()
        exp = -d(side.explore_encoder(f[net][:, k:]), factor[partner]).mean()
        prefix = f"{net}.distill.ie"
        assert losses[f"{prefix}.loss"].item() == pytest.approx(
            (3 * inh + 2 * exp).item(), rel=1e-5
        )
        assert losses[f"{prefix}.inh"].item() == pytest.approx(inh.item(), rel=1e-5)
        assert losses[f"{prefix}.exp"].item() == pytest.approx(exp.item(), rel=1e-5)
        assert losses[f"{prefix}.recon_loss"].item() == pytest.approx(recon[net].item(), rel=1e-5)
        assert not losses[f"{prefix}.inh"].requires_grad  # logged, not optimised

    # net1's IE loss trains net1 and its own encoders; the partner's factor is a constant
    losses["net1.distill.ie.loss"].backward(retain_graph=True)
    assert all(g is None for g in _grads(model.net2)) and all(
        g is None for g in _grads(term["net2"])
    )
    assert all(g is None for g in _grads(term["net1"].encoder))
    assert all(g is None for g in _grads(term["net1"].decoder))
    assert model.net1.blocks[1].weight.grad.abs().sum() > 0
    assert term["net1"].inherit_encoder.layers[1].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    # the reconstruction trains the network's auto-encoder only, not the network
    losses["net2.distill.ie.recon_loss"].backward()
    assert all(g is None for g in _grads(model.net2)) and all(g is None for g in _grads(model.net1))
    assert term["net2"].decoder.layers[1].weight.grad.abs().sum() > 0


def test_ie_dml_parts_train_with_their_network() -> None:
    model = toy_mutual(dict(ie=IE, logits=LOGITS))
    wrapper = build_optim_wrapper(
        model,
        dict(
            constructor="kd_det.MutualOptimWrapperConstructor", optimizer=dict(type="SGD", lr=0.1)
        ),
    )
    params = {
        net: {id(p) for g in w.optimizer.param_groups for p in g["params"]}
        for net, w in wrapper.items()
    }
    for net in ("net1", "net2"):
        assert {id(p) for p in model.term("ie")[net].parameters()} <= params[net]
    log_vars = model.train_step(dict(inputs=torch.randn(2, 3, 16, 16)), wrapper)
    assert {
        "net1.distill.ie.loss",
        "net2.distill.ie.recon_loss",
        "net1.distill.logits.loss",
    } <= set(log_vars)


@pytest.mark.parametrize(
    ("term", "message"),
    [
        (dict(IE, factor_channels=5),
         "factor_channels must be an int in 1 … 4 (the narrower network's width: net1 4, net2 8"),
        (dict(IE, net1="head", net2="head"), "coders are 3x3 convolutions on maps [B, C, H, W]"),
        (dict(IE, net1=["stem", "blocks.1"]), "an IE-DML term pairs the networks' layers one to "
         "one, but net1 names 2 (['stem', 'blocks.1']) and net2 1 (['blocks.1'])"),
        (dict(IE, ratio=0.3), "ratio 0.3 splits 4 channels into 1.2 and 2.8"),
        (dict(IE, split="halves"), "mode must be one of ['natural', 'random']"),
        (dict(IE, recon="l3"), "recon must be one of ['l1', 'l2']"),
        (dict(LOGITS, split="random"), "'split' belongs to IE-DML terms (InheritExploreLoss)"),
        (dict(IE, mapper=dict(type="ForwardMapper")), "valid keys of an IE-DML term"),
    ],
)  # fmt: skip
def test_bad_ie_dml_terms_are_refused(term, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        toy_mutual(dict(ie=term))


def test_ie_dml_runner_trains_evaluates_and_resumes_the_random_split(
    tmp_path: Path, digits_root: Path
) -> None:
    body = "model = dict(distill=dict(ie=dict(split='random', seed=3)))\n"
    cfg = _cls_config(tmp_path, digits_root, base=IE_CLS, body=body)
    work = tmp_path / "work"
    make_runner(cfg, work, **THREE_BATCHES).train()
    assert set(read_metrics(work)) == {"net1/accuracy/top1", "net2/accuracy/top1"}
    saved = load_local_checkpoint(str(work / "epoch_1.pth"))["state_dict"]
    index = saved["terms.ie.sides.net1.split.index"]
    assert sorted(index.tolist()) == list(range(64)) and index.tolist() != list(range(64))
    assert any(k.startswith("terms.ie.sides.net2.encoder.") for k in saved)
    resumed = make_runner(
        cfg, tmp_path / "again", resume=True, load_from=str(work / "epoch_1.pth"),
        train_cfg=dict(max_epochs=1), **THREE_BATCHES,
    )  # fmt: skip
    snapshot = _Snapshot()
    resumed.register_hook(snapshot)
    resumed.train()
    for key, value in saved.items():
        assert torch.equal(snapshot.state[key], value), key
    # a run that would split differently is refused
    other = make_runner(
        cfg, tmp_path / "other", resume=True, load_from=str(work / "epoch_1.pth"),
        model=dict(distill=dict(ie=dict(seed=4))), **THREE_BATCHES,
    )  # fmt: skip
    with pytest.raises(ValueError, match="restore the split the run started with"):
        other.train()


def test_benchmark_accepts_ie_dml(digits_root: Path) -> None:
    from kd_det.benchmark import load_config, run_timing

    cfg = load_config(str(IE_CLS), batch_size=2, data_root=f"{digits_root}/cls/")
    result = run_timing(cfg, str(IE_CLS), warmup=0, iters=1)
    assert tuple(result.modes) == MUTUAL_MODES and result.ratios["mutual/bound"] > 0


# -- several processes -----------------------------------------------------------------------

RANK_PROBE = """
import json
import os

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class MutualRankProbe(Hook):
    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        record = dict(
            wrapper=type(runner.model).__name__,
            sums={net: float(sum(p.detach().double().sum() for p in getattr(model, net).parameters()))
                  for net in ('net1', 'net2')},
            sides=float(sum(p.detach().double().sum() for p in model.terms.parameters())))
        with open(os.path.join(self.out_dir, f'rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\\n')
"""


@pytest.mark.slow
def test_two_processes_keep_both_networks_in_sync(tmp_path: Path, digits_root: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "rank_probe.py").write_text(RANK_PROBE)
    probe = tmp_path / "probe"
    probe.mkdir()
    body = f"""
custom_imports = dict(imports=['kd_det', 'rank_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='MutualRankProbe', out_dir={str(probe)!r})]
train_dataloader['dataset']['indices'] = 64
train_dataloader['batch_size'] = 16
"""
    cfg = _cls_config(tmp_path, digits_root, base=IE_CLS, body=body)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(port), "tools/train.py", str(cfg), "--launcher", "pytorch",
         "--work-dir", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    rows = {r: [json.loads(x) for x in (probe / f"rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)}  # fmt: skip
    assert len(rows[0]) == len(rows[1]) == 2  # 64 images, 2 ranks x 16 per iteration
    for a, b in zip(rows[0], rows[1], strict=True):
        assert a["wrapper"] == "MMDistributedDataParallel"
        # all-reduced gradients, one step each: both ranks hold the same weights
        assert a["sums"] == pytest.approx(b["sums"], rel=1e-9) and a["sides"] == pytest.approx(
            b["sides"], rel=1e-9
        )
    ckpt = load_local_checkpoint(str(tmp_path / "work" / "epoch_1.pth"))
    assert set(ckpt["optimizer"]) == {"net1", "net2"}
    assert set(read_metrics(tmp_path / "work")) == {"net1/accuracy/top1", "net2/accuracy/top1"}
