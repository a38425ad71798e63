"""EMA and mixed precision with a distiller.

* mmdet's ``EMAHook`` with ``ExpMomentumEMA`` (as RTMDet and YOLOX configs set it) deep-copies
  the model: the copy shares the frozen teacher instead of duplicating it, the EMA model holds
  only the student's and the connectors' weights, and validation runs with the EMA weights.
* Under autocast (``AmpOptimWrapper``) or with half-precision features the distill terms run
  in fp32 with fp32 connectors: the failure of MMRazor's issue #190 (a connector in one
  precision, the features in another) cannot happen.

Tests with ``cuda`` in their name need a GPU and are skipped without one
(``scripts/gpu_check.sh`` runs them with ``-k cuda``).
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from torch import Tensor

from kd_det.compat import load_local_checkpoint
from kd_det.distillers import DistillTerm
from tests.distill_helpers import FPN_TERM, det_distill_config, make_runner, toy_distiller

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SRD = dict(
    type="ProjectNorm", projector=dict(type="LinearProjector"), norm=dict(type="AffineFreeBN")
)
FEAT = dict(student="blocks.1", teacher="blocks.1", connector=SRD, loss=dict(type="LogSumLoss"))
EMA_HOOK = dict(
    type="EMAHook", ema_type="ExpMomentumEMA", momentum=0.25, update_buffers=True, priority=49
)
CLS_TERM = """,
    cls=dict(student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
             loss=dict(type='SigmoidKDLoss'))"""


# -- deep copies (what EMAHook makes) ----------------------------------------------------------


def test_deepcopy_shares_the_teacher_and_records_into_its_own_recorder() -> None:
    model = toy_distiller(dict(feat=FEAT))
    clone = copy.deepcopy(model)
    assert clone.teacher is model.teacher and clone._teacher_recorder is model._teacher_recorder
    assert clone.student is not model.student and clone.terms is not model.terms
    for (name, p), q in zip(model.named_parameters(), clone.parameters(), strict=True):
        assert p is not q and torch.equal(p, q), name
    assert not any(n.startswith("teacher.") for n, _ in clone.named_parameters())

    # the copy's student records into the copy's recorder, the original's stays as it was
    probe_records = model._student_recorder.records
    losses = clone.loss(torch.randn(2, 3, 16, 16), None)
    assert torch.isfinite(losses["distill.feat.loss"])
    assert clone._student_recorder.records and model._student_recorder.records is probe_records
    losses["distill.feat.loss"].backward()
    assert clone.student.blocks[1].weight.grad is not None
    assert model.student.blocks[1].weight.grad is None

    # moving the copy leaves the shared teacher where the original needs it
    clone.to(torch.float64)
    assert model.teacher.stem.weight.dtype == torch.float32
    assert clone.student.stem.weight.dtype == torch.float64
    model.to(torch.float64)  # the original owns the teacher
    assert model.teacher.stem.weight.dtype == torch.float64
    pickle.dumps(model)  # hooks are objects, not closures: the model pickles


class _EMAProbe(Hook):
    """Records, after the last training iteration, the trained weights; before validation (after
    EMAHook swapped the EMA weights in), the weights validation runs with."""

    priority = "LOWEST"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.trained = {n: p.detach().clone() for n, p in runner.model.named_parameters()}

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.predicted = getattr(self, "predicted", 0) + len(outputs)

    def before_val_epoch(self, runner) -> None:
        ema = next(h for h in runner.hooks if type(h).__name__ == "EMAHook")
        self.validated = {n: p.detach().clone() for n, p in runner.model.named_parameters()}
        self.swapped_out = {
            n: p.detach().clone() for n, p in ema.ema_model.module.named_parameters()
        }


def test_ema_hook_averages_the_student_and_validates_with_it(
    tmp_path: Path, digits_root: Path
) -> None:
    cfg = det_distill_config(
        tmp_path / "cfg.py",
        digits_root,
        terms=FPN_TERM + CLS_TERM,
        extra="train_dataloader['dataset']['indices'] = 8\n",
    )
    probe = _EMAProbe()
    runner = make_runner(cfg, tmp_path / "work", custom_hooks=[EMA_HOOK])
    runner.register_hook(probe)
    runner.train()  # 2 iterations, then validation with the EMA weights

    ema = next(h for h in runner.hooks if type(h).__name__ == "EMAHook").ema_model
    model = runner.model
    assert type(ema).__name__ == "ExpMomentumEMA"
    assert ema.module.teacher is model.teacher  # shared, not a second copy in memory
    ema_names = {n for n, _ in ema.module.named_parameters()} | {
        n for n, _ in ema.module.named_buffers()
    }
    assert ema_names == {n for n, _ in model.named_parameters()} | {
        n for n, _ in model.named_buffers()
    }
    assert not [n for n in ema_names if n.startswith("teacher.")]
    assert any(".connectors." in n for n in ema_names)

    # validation ran with the averaged weights (swapped in), not the trained ones
    assert probe.validated.keys() == probe.trained.keys()
    changed = [n for n in probe.trained if not torch.equal(probe.validated[n], probe.trained[n])]
    assert changed and all(torch.equal(probe.swapped_out[n], probe.trained[n]) for n in changed)
    # over all 16 images (an untrained student detects nothing, so CocoMetric logs no mAP)
    assert probe.predicted == 16

    ckpt = load_local_checkpoint(str(tmp_path / "work" / "epoch_1.pth"))
    for key in ("state_dict", "ema_state_dict"):
        assert not [k for k in ckpt[key] if "teacher." in k], key
    assert set(ckpt["ema_state_dict"]) >= {"module." + n for n in probe.trained}


# -- precision of the distill terms -------------------------------------------------------------


def _term(connector: dict | None = SRD, s_channels: int = 4, t_channels: int = 8) -> DistillTerm:
    torch.manual_seed(0)
    return DistillTerm(
        "feat",
        student_labels=["s0", "s1"],
        teacher_labels=["t0", "t1"],
        student_shapes=[(2, s_channels, 8, 8), (2, s_channels, 4, 4)],
        teacher_shapes=[(2, t_channels, 8, 8), (2, t_channels, 4, 4)],
        loss=dict(type="LogSumLoss", alpha=4.0),
        connector=connector,
    )


def _features(dtype: torch.dtype, channels: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(channels)
    return [torch.randn(2, channels, s, s, generator=g).to(dtype) for s in (8, 4)]


def test_term_runs_in_fp32_under_autocast_on_bf16_features() -> None:
    """As under AmpOptimWrapper: bf16 features and an active autocast, which would otherwise run
    the projector's conv in bf16; the term gives exactly its fp32 value on the same inputs."""
    term = _term()
    student = [t.requires_grad_() for t in _features(torch.bfloat16, 4)]
    teacher = _features(torch.bfloat16, 8)
    seen: list[torch.dtype] = []
    term.connectors[0].projector.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = term(student, teacher)
    reference = term([s.float() for s in student], [t.float() for t in teacher])
    assert value.dtype == torch.float32 and seen == [torch.float32, torch.float32]
    assert torch.equal(value, reference)
    value.backward()
    assert student[0].grad is not None and student[0].grad.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 and p.grad is not None for p in term.parameters())


@pytest.mark.parametrize("connector_dtype", [torch.float16, torch.bfloat16])
def test_connector_cast_to_half_takes_fp32_features(connector_dtype: torch.dtype) -> None:
    """MMRazor #190's crash: a model converted to half precision as a whole (connectors too)
    while features arrive in fp32, or the reverse; the term feeds each connector its own dtype
    and computes the loss in fp32."""
    term = _term()
    term.connectors.to(connector_dtype)
    for features_dtype in (torch.float32, connector_dtype):
        value = term(_features(features_dtype, 4), _features(features_dtype, 8))
        assert value.dtype == torch.float32 and torch.isfinite(value)


class _PrecisionProbe(Hook):
    """Dtypes seen in a training step: the student's FPN output (autocast at work) and what the
    first FPN connector's projector received and gave; the images validation predicted."""

    def __init__(self) -> None:
        self.seen: dict[str, torch.dtype] = {}
        self.losses: dict[str, Tensor] = {}

    def before_train(self, runner) -> None:
        model = runner.model
        model.student.neck.fpn_convs[0].register_forward_hook(self._hook("student"))
        model.term("fpn").connectors[0].projector.register_forward_hook(self._hook("projector"))

    def _hook(self, key: str):
        def hook(module, args, output) -> None:
            if module.training:  # not validation's forward passes
                self.seen[key + ".in"], self.seen[key + ".out"] = args[0].dtype, output.dtype

        return hook

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.predicted = getattr(self, "predicted", 0) + len(outputs)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.losses = dict(outputs)
        self.connector_dtypes = {p.dtype for p in runner.model.terms.parameters()}
        self.grads_finite = all(
            torch.isfinite(p.grad).all() for p in runner.model.parameters() if p.grad is not None
        )


def _amp_runner(tmp_path: Path, digits_root: Path, dtype: str, device: str):
    cfg = det_distill_config(
        tmp_path / "cfg.py",
        digits_root,
        terms=FPN_TERM + CLS_TERM,
        extra="train_dataloader['dataset']['indices'] = 8\n",
    )
    probe = _PrecisionProbe()
    runner = make_runner(
        cfg,
        tmp_path / "work",
        optim_wrapper=dict(type="AmpOptimWrapper", dtype=dtype, loss_scale="dynamic"),
        train_cfg=dict(max_epochs=1, val_interval=9),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[dict(type="EMAHook", ema_type="ExpMomentumEMA")],
    )
    runner.register_hook(probe)
    assert next(runner.model.parameters()).device.type == device
    return runner, probe


def _check_amp_step(probe: _PrecisionProbe, half: torch.dtype) -> None:
    assert probe.seen["student.out"] == half  # the models ran under autocast
    # the connector got fp32 features and ran in fp32 inside the autocast region
    assert probe.seen["projector.in"] == probe.seen["projector.out"] == torch.float32
    assert probe.connector_dtypes == {torch.float32}
    assert probe.grads_finite
    for key in ("distill.fpn.loss", "distill.cls.loss", "loss_cls", "loss_bbox"):
        assert torch.isfinite(torch.as_tensor(probe.losses[key])), key
    assert probe.predicted == 16  # validation (with the EMA weights) over every image


def test_bf16_autocast_cpu_step_via_amp_optim_wrapper(
    tmp_path: Path, digits_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mmengine's AmpOptimWrapper refuses to be built without an accelerator (an assert on
    CUDA/NPU/MLU/MUSA), although its autocast supports bf16 on CPU; with that one check
    lifted, the distiller's step runs end to end under CPU bf16 autocast."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp

    if not torch.cuda.is_available():
        monkeypatch.setattr(amp, "is_cuda_available", lambda: True)
    runner, probe = _amp_runner(tmp_path, digits_root, "bfloat16", "cpu")
    runner.train()
    _check_amp_step(probe, torch.bfloat16)


@CUDA
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_amp_step_with_ema(tmp_path: Path, digits_root: Path, dtype: str) -> None:
    """``--amp`` on CUDA (AmpOptimWrapper, dynamic loss scale) with an EMA model."""
    runner, probe = _amp_runner(tmp_path, digits_root, dtype, "cuda")
    runner.train()
    _check_amp_step(probe, getattr(torch, dtype))


@CUDA
@pytest.mark.parametrize("teacher_dtype", ["fp32", "bf16", "fp16"])
def test_cuda_distiller_trains_and_predicts(
    tmp_path: Path, digits_root: Path, teacher_dtype: str
) -> None:
    """The digits RetinaNet distiller on CUDA: two training iterations and validation (NMS
    from mmcv's CUDA ops), with the teacher in each precision."""
    cfg = det_distill_config(
        tmp_path / "cfg.py",
        digits_root,
        terms=FPN_TERM + CLS_TERM,
        extra="train_dataloader['dataset']['indices'] = 8\n",
        model_extra=f"teacher_dtype={teacher_dtype!r},",
    )
    runner = make_runner(cfg, tmp_path / "work", default_hooks=dict(checkpoint=None))
    probe = _PrecisionProbe()
    runner.register_hook(probe)
    assert next(runner.model.teacher.parameters()).device.type == "cuda"
    runner.train()
    assert probe.grads_finite and probe.predicted == 16
    assert torch.isfinite(torch.as_tensor(probe.losses["distill.fpn.loss"]))
