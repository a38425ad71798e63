"""Numerical failures and the recorded layers of a training step.

* A NaN/inf distill loss, student loss or recorded feature (student or teacher) raises a
  diagnostic naming it (``nonfinite='raise'``) or skips the iteration without touching the
  parameters and counts it (``nonfinite='skip'``), in one process and under DDP.
* Every step checks that both models recorded the layers the construction probe predicted.
* The recorded features are released after the loss, not held through validation.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch import Tensor
from torch.utils.data import Dataset

from kd_det.distillers.single_teacher import (
    SKIPPED_INFO,
    LayerMismatchError,
    NonFiniteError,
    describe_tensor,
)
from tests.conftest import REPO, read_scalars
from tests.distill_helpers import (
    FPN_TERM,
    ToyNet,
    build_distiller,
    det_distill_config,
    make_runner,
    toy_distiller,
)

LINEAR = dict(type="ProjectNorm", projector=dict(type="LinearProjector"))
FEAT = dict(
    student="blocks.1", teacher="blocks.1", connector=LINEAR, loss=dict(type="MSEFeatureLoss")
)
POOL = dict(student="pool", teacher="pool", connector=LINEAR, loss=dict(type="MSEFeatureLoss"))


def _poison(param: Tensor, value: float = math.nan) -> None:
    """Put ``value`` into the first output channel's weights (its maps become NaN/inf)."""
    with torch.no_grad():
        param[0] = value


# -- raise: the diagnostic --------------------------------------------------------------------


def test_nan_teacher_feature_is_named_with_its_statistics() -> None:
    model = toy_distiller(dict(feat=FEAT))
    _poison(model.teacher.blocks[1].weight)
    with pytest.raises(NonFiniteError) as info:
        model.loss(torch.randn(2, 3, 16, 16), None)
    message = str(info.value)
    assert "NaN/inf at loss() call 1:" in message
    # channel 0 of the [2, 8, 4, 4] map is NaN: 32 of 256 values; the rest are statistics
    assert re.search(
        r"teacher layer blocks\.1 \(term 'feat'\): shape \[2, 8, 4, 4\] float32: 32 NaN, "
        r"0 \+inf, 0 -inf of 256; finite values min \S+ max \S+ mean \S+",
        message,
    ), message
    assert "student layer" not in message  # the student's layer is finite
    assert "distill term 'feat' loss = nan" in message
    assert "nonfinite='skip'" in message and "teacher_dtype='bf16'" in message
    # nothing is kept after the error
    assert model._student_recorder.records == {} and model._teacher_recorder.records == {}


def test_inf_student_feature_and_student_loss() -> None:
    model = toy_distiller(dict(feat=FEAT))
    _poison(model.student.blocks[1].bias, math.inf)
    with pytest.raises(NonFiniteError) as info:
        model.loss(torch.rand(2, 3, 16, 16), None)
    message = str(info.value)
    assert re.search(
        r"student layer blocks\.1 \(term 'feat'\): shape \[2, 4, 4, 4\] float32: "
        r"0 NaN, 32 \+inf, 0 -inf of 128",
        message,
    ), message
    assert "student loss 'loss_toy'" in message  # the student's own loss: inf through its head


def test_student_loss_alone() -> None:
    """The student's own loss is checked too (mmengine's OptimWrapper does not check it)."""
    model = toy_distiller(dict(feat=FEAT))
    _poison(model.student.head.bias)  # after every recorded layer: only the loss is NaN
    with pytest.raises(NonFiniteError, match=r"student loss 'loss_toy' = nan") as info:
        model.loss(torch.randn(2, 3, 16, 16), None)
    assert "layer" not in str(info.value).split("Set the")[0]


def test_term_loss_with_finite_features_shows_its_inputs_and_connector() -> None:
    model = toy_distiller(dict(feat=FEAT, pool=POOL))
    _poison(model.term("feat").connectors[0].projector.weight)
    with pytest.raises(NonFiniteError) as info:
        model.loss(torch.randn(2, 3, 16, 16), None)
    message = str(info.value)
    assert "distill term 'feat' loss = nan" in message
    assert "distill term 'pool'" not in message
    assert re.search(r"    student layer blocks\.1: shape \[2, 4, 4, 4\] float32: 0 NaN", message)
    assert re.search(r"    teacher layer blocks\.1: shape \[2, 8, 4, 4\] float32: 0 NaN", message)
    assert re.search(
        r"    connector parameter connectors\.0\.projector\.weight: shape "
        r"\[8, 4, 1, 1\] float32: 4 NaN",
        message,
    ), message


def test_overflowing_sum_of_finite_values_is_not_reported() -> None:
    """The cheap check sums each tensor; a sum that overflows is re-checked element-wise."""
    model = toy_distiller(dict(feat=FEAT))
    huge = torch.full((8,), 3e38)
    assert not torch.isfinite(huge.sum())
    model._check_finite({"loss_huge": huge})  # finite values: no error
    with pytest.raises(NonFiniteError, match="student loss 'loss_huge"):
        model._check_finite({"loss_huge": torch.cat([huge, torch.tensor([math.inf])])})


def test_describe_tensor() -> None:
    t = torch.tensor([1.0, -3.0, math.nan, math.inf, -math.inf, 2.0], dtype=torch.bfloat16)
    assert describe_tensor(t) == (
        "shape [6] bfloat16: 1 NaN, 1 +inf, 1 -inf of 6; finite values min -3 max 2 mean 0"
    )
    assert (
        describe_tensor(torch.full((2,), math.nan))
        == "shape [2] float32: 2 NaN, 0 +inf, 0 -inf of 2"
    )


def test_nonfinite_option_is_checked() -> None:
    with pytest.raises(
        ValueError, match=r"nonfinite must be one of \['raise', 'skip'\], got 'ignore'"
    ):
        toy_distiller(dict(feat=FEAT), nonfinite="ignore")


def test_real_detector_teacher_nan_names_the_fpn_level(tmp_path: Path, digits_root: Path) -> None:
    model = build_distiller(det_distill_config(tmp_path / "cfg.py", digits_root))
    _poison(model.teacher.neck.fpn_convs[1].conv.weight)
    with pytest.raises(NonFiniteError) as info:
        model.loss(torch.randn(2, 3, 128, 128), _det_samples(2))
    message = str(info.value)
    assert "teacher layer neck.fpn_convs.1 (term 'fpn')" in message
    # P5 (fpn_convs.2) is computed from P5 of the lateral, not from fpn_convs.1: it stays finite
    assert "neck.fpn_convs.0" not in message and "neck.fpn_convs.2" not in message
    assert "distill term 'fpn' loss = nan" in message


def _det_samples(n: int, size: int = 128) -> list:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    for _ in range(n):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                pad_shape=(size, size),
                ori_shape=(size, size),
                scale_factor=(1.0, 1.0),
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[10.0, 10.0, 60.0, 70.0]]), labels=torch.tensor([3])
        )
        samples.append(sample)
    return samples


# -- skip: through mmengine's Runner ----------------------------------------------------------


class _Images(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(index)
        return {"inputs": torch.rand(3, 16, 16, generator=g)}


class _PoisonTeacherAt(Hook):
    """NaN in the teacher's ``blocks.1`` during the iterations ``iters`` (0-based); records the
    trainable parameters and AdamW's step count after every iteration."""

    def __init__(self, iters: set[int]) -> None:
        self.iters = iters
        self.params: list[dict[str, Tensor]] = []
        self.adam_steps: list[float] = []
        self.held: list[tuple[int, int]] = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        weight = runner.model.teacher.blocks[1].weight
        if runner.iter in self.iters:
            self.saved = weight.detach().clone()
            _poison(weight)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = runner.model
        if runner.iter in self.iters:
            with torch.no_grad():
                model.teacher.blocks[1].weight.copy_(self.saved)
        self.params.append({n: p.detach().clone() for n, p in model.named_parameters()})
        state = runner.optim_wrapper.optimizer.state
        self.adam_steps.append(float(state[model.student.head.weight]["step"]))
        self.held.append(
            (len(model._student_recorder.records), len(model._teacher_recorder.records))
        )


def _toy_runner(work_dir: Path, model, hooks, max_iters: int = 3) -> Runner:
    return Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f"numerics_{work_dir.name}",
        train_dataloader=dict(
            dataset=_Images(),
            sampler=dict(type="DefaultSampler", shuffle=False),
            batch_size=4,
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-2, weight_decay=0.05)),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=1), checkpoint=None),
        custom_hooks=hooks,
        default_scope="mmengine",
    )


def test_skip_leaves_parameters_and_optimizer_untouched_and_counts(tmp_path: Path) -> None:
    model = toy_distiller(dict(feat=FEAT), nonfinite="skip")
    probe = _PoisonTeacherAt({1})
    runner = _toy_runner(tmp_path / "work", model, [probe])
    runner.train()

    before, skipped, after = probe.params
    assert all(torch.equal(before[n], skipped[n]) for n in before)  # iteration 2 changed nothing
    assert not all(torch.equal(skipped[n], after[n]) for n in before)  # iteration 3 trained
    assert probe.adam_steps == [1.0, 1.0, 2.0]  # no optimizer step in the skipped iteration
    assert probe.held == [(0, 0)] * 3  # features released after every step
    assert runner.message_hub.get_info(SKIPPED_INFO) == 1
    assert runner.message_hub.get_scalar("train/nonfinite_skipped").data[0].tolist() == [0, 1, 0]
    assert [s["nonfinite_skipped"] for s in read_scalars(tmp_path / "work")] == [0, 1, 0]
    log = next((tmp_path / "work").glob("*/*.log")).read_text()
    assert "NaN/inf at iteration 2:" in log and "teacher layer blocks.1 (term 'feat')" in log
    assert (
        "Iteration skipped (nonfinite='skip'): no optimizer step; 1 iteration(s) skipped so far"
        in log
    )


def test_raise_through_the_runner_names_the_iteration(tmp_path: Path) -> None:
    model = toy_distiller(dict(feat=FEAT))
    runner = _toy_runner(tmp_path / "work", model, [_PoisonTeacherAt({2})])
    with pytest.raises(NonFiniteError, match=r"NaN/inf at iteration 3:\n  teacher layer blocks\.1"):
        runner.train()


def test_skip_outside_train_step_raises() -> None:
    """Only the distiller's train_step can drop an update; a direct loss() call (a custom loop,
    a wrapper kd_det does not know) gets the error rather than NaN losses to train on."""
    model = toy_distiller(dict(feat=FEAT), nonfinite="skip")
    _poison(model.teacher.blocks[1].weight)
    with pytest.raises(NonFiniteError, match="this loss\\(\\) was called outside it"):
        model.loss(torch.randn(2, 3, 16, 16), None)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    assert model.train_step({"inputs": torch.randn(2, 3, 16, 16)}, optim) == {
        "nonfinite_skipped": torch.tensor(1.0)
    }
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_step_releases_the_recorded_features() -> None:
    model = toy_distiller(dict(feat=FEAT, pool=POOL))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step({"inputs": torch.randn(2, 3, 16, 16)}, optim)
    assert set(log_vars) == {"loss", "loss_toy", "distill.feat.loss", "distill.pool.loss"}
    assert model._student_recorder.records == {} and model._teacher_recorder.records == {}


def test_teacher_features_are_released_after_their_last_term() -> None:
    """A teacher map is dropped as soon as the last term that reads it has its loss, so a step
    never holds every teacher map beside every term's saved tensors."""
    model = toy_distiller(dict(feat=FEAT, pool=POOL, again=FEAT))
    held: list[set[str]] = []
    for term in model.terms.values():
        term.register_forward_hook(
            lambda *_: held.append({path for path, _ in model._teacher_recorder.records})
        )
    losses = model.loss(torch.randn(2, 3, 16, 16), None)
    assert all(torch.isfinite(v) for v in losses.values())
    # 'again' still needs blocks.1 when 'feat' is done; pool goes after its only term
    assert held == [{"blocks.1", "pool"}, {"blocks.1", "pool"}, {"blocks.1"}]
    assert model._teacher_recorder.records == {}
    assert {path for path, _ in model._student_recorder.records} == {"blocks.1", "pool"}


# -- the layers recorded in a training step ---------------------------------------------------


class SizeDependentNet(ToyNet):
    """A ToyNet whose forward depends on the input: ``blocks.1`` runs twice on inputs wider than
    16 px, and not at all on inputs wider than 32 px."""

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        x = torch.relu(self.blocks[0](torch.relu(self.stem(inputs))))
        calls = 1 if inputs.shape[-1] <= 16 else 2 if inputs.shape[-1] <= 32 else 0
        for _ in range(calls):
            x = torch.relu(self.blocks[1](x))
        return self.head(self.pool(x).flatten(1))


def test_teacher_recording_other_layers_than_the_probe_is_an_error() -> None:
    model = toy_distiller(dict(feat=FEAT, pool=POOL), teacher=SizeDependentNet(8))
    model.loss(torch.randn(2, 3, 16, 16), None)  # as probed
    with pytest.raises(LayerMismatchError) as info:
        model.loss(torch.randn(2, 3, 32, 32), None)
    message = str(info.value)
    assert message.startswith(
        "distill term 'feat': teacher layer 'blocks.1' recorded 2 tensor(s) at loss() call 2, "
        "the probe at construction recorded 1"
    )
    assert "cut after call 1 of 'pool'" in message and "probe_size (now (16, 16))" in message
    with pytest.raises(LayerMismatchError, match="teacher layer 'blocks.1' recorded 0 tensor"):
        model.loss(torch.randn(2, 3, 48, 48), None)


def test_student_recording_other_layers_than_the_probe_is_an_error() -> None:
    model = toy_distiller(dict(feat=FEAT), student=SizeDependentNet(4))
    with pytest.raises(
        LayerMismatchError,
        match=r"distill term 'feat': student layer 'blocks\.1' "
        r"recorded 2 tensor\(s\) at loss\(\) call 1, the probe at construction "
        r"recorded 1",
    ):
        model.loss(torch.randn(2, 3, 32, 32), None)


class _RecorderState(Hook):
    """What the distiller's recorders hold after each training iteration and before validation."""

    def __init__(self) -> None:
        self.held_after_iter: list[tuple[int, int]] = []
        self.held_before_val: list[tuple[int, int]] = []

    @staticmethod
    def _held(runner) -> tuple[int, int]:
        model = runner.model
        return sum(map(len, model._student_recorder.records.values())), sum(
            map(len, model._teacher_recorder.records.values())
        )

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.held_after_iter.append(self._held(runner))

    def before_val_epoch(self, runner) -> None:
        self.held_before_val.append(self._held(runner))


def test_runner_holds_no_features_after_a_step_or_during_validation(
    tmp_path: Path, digits_root: Path
) -> None:
    terms = (
        FPN_TERM
        + """,
    cls=dict(student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
             loss=dict(type='SigmoidKDLoss'))"""
    )
    cfg = det_distill_config(
        tmp_path / "cfg.py",
        digits_root,
        terms=terms,
        extra="train_dataloader['dataset']['indices'] = 4\n",
    )
    runner = make_runner(cfg, tmp_path / "work", default_hooks=dict(checkpoint=None))
    state = _RecorderState()
    runner.register_hook(state)
    assert runner.model._teacher_recorder.records  # the probe's (construction) records
    runner.train()
    assert state.held_after_iter == [(0, 0)] and state.held_before_val == [(0, 0)]


# -- skip and raise under DDP (2 CPU processes, gloo) ------------------------------------------

DDP_SCRIPT = """
import math, os, sys
import torch
from mmengine.dist import get_rank, init_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper

sys.path.insert(0, os.environ['REPO'])
import kd_det  # noqa: F401
from kd_det.distillers.single_teacher import NonFiniteError
from tests.distill_helpers import toy_distiller

init_dist('pytorch', backend='gloo')
rank = get_rank()
LINEAR = dict(type='ProjectNorm', projector=dict(type='LinearProjector'))
FEAT = dict(student='blocks.1', teacher='blocks.1', connector=LINEAR,
            loss=dict(type='MSEFeatureLoss'))
model = toy_distiller(dict(feat=FEAT), nonfinite='skip')  # seeded: the same on both ranks
ddp = MMDistributedDataParallel(module=model, broadcast_buffers=False)
optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
weight = model.teacher.blocks[1].weight
clean = weight.detach().clone()
params = []
for it in range(3):
    if it == 1 and rank == 1:  # NaN in one process only
        with torch.no_grad():
            weight[0] = math.nan
    torch.manual_seed(100 * it + rank)
    log_vars = ddp.train_step({'inputs': torch.rand(2, 3, 16, 16)}, optim)
    with torch.no_grad():
        weight.copy_(clean)
    params.append([p.detach().clone() for p in model.parameters()])
    print(f'rank {rank} iter {it} skipped {float(log_vars["nonfinite_skipped"])}', flush=True)
assert all(torch.equal(a, b) for a, b in zip(params[0], params[1]))
assert not all(torch.equal(a, b) for a, b in zip(params[1], params[2]))
gathered = [torch.zeros_like(p) for p in params[2][:1] for _ in range(2)]
torch.distributed.all_gather(gathered, params[2][0])
assert torch.equal(gathered[0], gathered[1])  # both processes hold the same weights

model.nonfinite = 'raise'
if rank == 1:
    with torch.no_grad():
        weight[0] = math.nan
try:
    ddp.train_step({'inputs': torch.rand(2, 3, 16, 16)}, optim)
except NonFiniteError as error:
    print(f'rank {rank} raised: {str(error).splitlines()[0]}', flush=True)
else:
    raise SystemExit(f'rank {rank} did not raise')
"""


@pytest.mark.slow  # two processes importing the stack: about 30 s on two busy cores
def test_ddp_processes_agree_to_skip_or_raise(tmp_path: Path) -> None:
    script = tmp_path / "ddp_nonfinite.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        REPO=str(REPO),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(port),
            str(script),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    for rank in (0, 1):
        for it, skipped in ((0, 0.0), (1, 1.0), (2, 0.0)):
            assert f"rank {rank} iter {it} skipped {skipped}" in log, log[-5000:]
    assert "rank 1 raised: NaN/inf at loss() call 4, rank 1:" in log
    assert "rank 0 raised: NaN/inf at loss() call 4, rank 0 in another process" in log


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_finiteness_check_syncs_once_per_step() -> None:
    """On CUDA the check reads one flag back per step, however many tensors it covers."""
    import warnings

    model = toy_distiller(dict(feat=FEAT, pool=POOL)).cuda()
    losses = model.loss(torch.randn(2, 3, 16, 16, device="cuda"), None)
    assert len(model._recorded_tensors()) == 4  # blocks.1 and pool of both models
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model._check_finite(losses)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in caught]
    _poison(model.teacher.blocks[1].weight)
    with pytest.raises(NonFiniteError, match=r"teacher layer blocks\.1 \(term 'feat'\)"):
        model.loss(torch.randn(2, 3, 16, 16, device="cuda"), None)
