"""A run killed by SIGKILL at a random iteration and resumed ends with the weights of a run that
was never interrupted, and a kill while a checkpoint is written leaves the previous one intact.

Fast: a toy distiller trained by mmengine's Runner in a subprocess that kills itself at a random
iteration (mid-step, mid-checkpoint-write, or between the checkpoint and ``last_checkpoint``);
the uninterrupted and the resumed runs go on in this process. Slow: ``tools/train.py`` on the
digits RetinaNet distiller, killed from outside once a random checkpoint has appeared, resumed
with ``tools/train.py --resume``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

from kd_det.compat import find_latest_checkpoint, load_local_checkpoint
from tests.conftest import REPO, det_data_overrides, write_config

# The toy run. ``python run.py WORK_DIR PHASE ITER`` trains and kills itself at iteration ITER
# (1-based, as the log counts): 'step' inside the student's forward pass, 'save' half-way
# through writing iter_ITER.pth, 'pointer' after iter_ITER.pth is complete but before
# last_checkpoint names it. Imported, it gives make_runner() to the test.
RUN_SCRIPT = r"""
import itertools
import os
import signal
import sys

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import Dataset

sys.path.insert(0, os.environ.get("REPO", "."))
import kd_det  # noqa: F401,E402
from tests.distill_helpers import toy_distiller  # noqa: E402

MAX_ITERS = 6
_names = itertools.count()


class Images(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, index):
        return {"inputs": torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(index))}


def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(Hook):
    def __init__(self, phase, iteration):
        self.phase, self.iteration = phase, iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.phase == "step" and runner.iter + 1 == self.iteration:
            runner.model.student.blocks[1].register_forward_hook(die)

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 != self.iteration:
            return
        if self.phase == "save":
            def half_written(obj, f, *args, **kwargs):
                f.write(b"PK\x03\x04" + bytes(4096))
                f.flush()
                os.fsync(f.fileno())
                die()
            torch.save = half_written
        elif self.phase == "pointer":
            replace = os.replace
            def replace_then_die(src, dst):
                if str(dst).endswith("last_checkpoint"):
                    die()
                replace(src, dst)
            os.replace = replace_then_die


def make_runner(work_dir, resume=False, hooks=()):
    torch.set_num_threads(1)
    feat = dict(student="blocks.1", teacher="blocks.1",
                connector=dict(type="ProjectNorm", projector=dict(type="LinearProjector"),
                               norm=dict(type="AffineFreeBN")),
                loss=dict(type="LogSumLoss", alpha=4.0))
    return Runner(
        model=toy_distiller(dict(feat=feat)),
        work_dir=str(work_dir),
        experiment_name=f"fault_{os.getpid()}_{next(_names)}",
        train_dataloader=dict(dataset=Images(), sampler=dict(type="DefaultSampler", shuffle=True),
                              batch_size=4, collate_fn=dict(type="default_collate")),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-2, weight_decay=0.05)),
        param_scheduler=dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=MAX_ITERS),
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1, by_epoch=False, max_keep_ckpts=2),
            logger=dict(type="LoggerHook", interval=1)),
        custom_hooks=list(hooks),
        randomness=dict(seed=0, deterministic=True),
        resume=resume,
        default_scope="mmengine",
    )


if __name__ == "__main__":
    work_dir, phase, iteration = sys.argv[1], sys.argv[2], int(sys.argv[3])
    make_runner(work_dir, hooks=[Killer(phase, iteration)]).train()
    raise SystemExit("the run was not killed")
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> ModuleType:
    path = tmp_path_factory.mktemp("toy") / "fault_run.py"
    path.write_text(RUN_SCRIPT)
    spec = importlib.util.spec_from_file_location("fault_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_torch_settings():
    """The in-process Runners set deterministic algorithms and one thread for the process."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory) -> dict:
    """The final checkpoint of the uninterrupted toy run."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    work = tmp_path_factory.mktemp("reference")
    try:
        toy.make_runner(work).train()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return load_local_checkpoint(str(work / f"iter_{toy.MAX_ITERS}.pth"))


def _assert_same_training_state(ckpt: dict, reference: dict) -> None:
    assert ckpt["meta"]["iter"] == reference["meta"]["iter"]
    assert ckpt["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][key], value), key
    for pid, state in reference["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(ckpt["optimizer"]["state"][pid][name], value), (pid, name)
    assert ckpt["param_schedulers"] == reference["param_schedulers"]


def _temporaries(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir() if ".tmp" in p.name)


# about 10 s of CPU each, most of it the subprocess importing the stack: the kill during a
# checkpoint write runs by default, the other two with the slow tests
@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("step", marks=pytest.mark.slow),
        "save",
        pytest.param("pointer", marks=pytest.mark.slow),
    ],
)
def test_killed_toy_run_resumes_to_identical_weights(
    toy, reference, tmp_path: Path, phase: str, restore_torch_settings
) -> None:
    iteration = random.randint(1, toy.MAX_ITERS)
    where = f"killed at iteration {iteration} ({phase})"
    work = tmp_path / "work"
    env = dict(os.environ, REPO=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    script = Path(toy.__file__)
    proc = subprocess.run(
        [sys.executable, str(script), str(work), phase, str(iteration)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, where + "\n" + (proc.stdout + proc.stderr)[-3000:]

    # what the kill left on disk: complete checkpoints only (max_keep_ckpts=2; the retired one
    # is deleted only after the new one and the pointer are written), the pointer on the last
    # checkpoint that was complete before the kill
    last = iteration if phase == "pointer" else iteration - 1
    first = max(1, iteration - 2)
    saved = sorted(p.name for p in work.glob("iter_*.pth"))
    assert saved == [f"iter_{i}.pth" for i in range(first, last + 1)], where
    for name in saved:
        assert load_local_checkpoint(str(work / name))["meta"]["iter"] == int(name[5:-4])
    left = _temporaries(work)
    if phase == "save":  # the half-written file under its temporary name, never iter_N.pth
        assert len(left) == 1 and left[0].startswith(f".iter_{iteration}.pth.tmp"), where
    elif phase == "pointer":
        assert len(left) == 1 and left[0].startswith(".last_checkpoint.tmp"), where
    else:
        assert left == [], where
    if iteration > 1:  # resumes from the checkpoint of the iteration before the kill
        expected = str(work / f"iter_{iteration - 1}.pth")
    else:  # no pointer yet: the newest checkpoint, or a fresh start
        expected = str(work / "iter_1.pth") if phase == "pointer" else None
    assert find_latest_checkpoint(str(work)) == expected, where

    resumed = toy.make_runner(work, resume=True)
    resumed.train()
    assert resumed.iter == toy.MAX_ITERS
    final = load_local_checkpoint(str(work / f"iter_{toy.MAX_ITERS}.pth"))
    _assert_same_training_state(final, reference)
    assert _temporaries(work) == [], where  # what the kill left behind is gone
    assert (work / "last_checkpoint").read_text() == str(work / f"iter_{toy.MAX_ITERS}.pth")


def test_resume_falls_back_when_last_checkpoint_is_empty_or_stale(tmp_path: Path) -> None:
    """``--resume`` without a path: mmengine reads ``last_checkpoint``; kd_det falls back to the
    newest checkpoint when it is missing, empty or names a file that is gone."""
    assert find_latest_checkpoint(str(tmp_path)) is None
    for i in (1, 2):
        torch.save({"meta": {"iter": i}}, tmp_path / f"iter_{i}.pth")
        os.utime(tmp_path / f"iter_{i}.pth", (1000 + i, 1000 + i))
    (tmp_path / ".iter_3.pth.tmp999999").write_bytes(b"PK\x03\x04")  # never a candidate
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_2.pth")  # no pointer
    (tmp_path / "last_checkpoint").write_text("")
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_2.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_3.pth"))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_2.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_1.pth"))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_1.pth")  # as named


# -- tools/train.py on the digits RetinaNet distiller -----------------------------------------

MAX_ITERS = 5


def _digits_config(tmp_path: Path, digits_root: Path) -> Path:
    body = (
        det_data_overrides(digits_root, batch_size=2)
        + f"""
model = dict(teacher_ckpt=None)
train_dataloader['dataset']['indices'] = 8
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={MAX_ITERS})
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end={MAX_ITERS})]
default_hooks = dict(checkpoint=dict(interval=1, by_epoch=False, max_keep_ckpts=2),
                     logger=dict(interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=True)
"""
    )
    return write_config(
        tmp_path / "srd_fault.py", ["srd/srd_retinanet-w32-w8_fpn_24e_digits.py"], body
    )


def _train(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "tools/train.py", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.slow  # three tools/train.py processes: about a minute on two busy cores
def test_train_py_killed_and_resumed_matches_an_uninterrupted_run(
    tmp_path: Path, digits_root: Path
) -> None:
    cfg = str(_digits_config(tmp_path, digits_root))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = _train(cfg, "--work-dir", str(ref), env=env)

    # killed from outside as soon as a randomly chosen checkpoint is complete
    kill_after = random.randint(1, MAX_ITERS - 2)
    proc = _train(cfg, "--work-dir", str(run), env=env)
    deadline = time.monotonic() + 600
    while not (run / f"iter_{kill_after}.pth").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run to kill never saved a checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    log = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, f"not killed after iter_{kill_after}:\n{log[-3000:]}"
    assert not (run / f"iter_{MAX_ITERS}.pth").exists()

    resumed = _train(cfg, "--work-dir", str(run), "--resume", env=env)
    resume_log = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, resume_log[-5000:]
    assert "Auto resumed from the latest checkpoint" in resume_log
    ref_log = reference.communicate(timeout=900)[0]
    assert reference.returncode == 0, ref_log[-5000:]

    final = load_local_checkpoint(str(run / f"iter_{MAX_ITERS}.pth"))
    _assert_same_training_state(final, load_local_checkpoint(str(ref / f"iter_{MAX_ITERS}.pth")))
    assert not [k for k in final["state_dict"] if k.startswith("teacher.")]
    assert _temporaries(run) == []
