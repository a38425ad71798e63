"""Checkpoints load with ``weights_only=True`` and kd_det's allow-list; full unpickling only for
files the user lists in ``KD_DET_TRUST_CHECKPOINTS``; checkpoints are saved atomically."""

from __future__ import annotations

import argparse
import copyreg
import os
import pathlib
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import kd_det.compat as compat
from kd_det.compat import (
    TRUST_ENV,
    CheckpointError,
    UntrustedCheckpointError,
    load_local_checkpoint,
)
from kd_det.distillers.models import load_teacher_weights
from tests.conftest import REPO
from tests.distill_helpers import ToyNet


class _Payload:
    """Unpickling it calls ``function(*args)``: what a crafted checkpoint does."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _crafted(path: Path, payload: _Payload) -> Path:
    """A checkpoint that looks like a real one, with the payload inside its meta."""
    torch.save({"meta": {"note": payload}, "state_dict": ToyNet(4).state_dict()}, path)
    return path


def _payloads(marker: Path) -> dict[str, tuple[_Payload, str]]:
    """Payloads that would create ``marker``, and the global each one needs."""
    return {
        "os.system": (_Payload(os.system, f"touch {marker}"), "posix.system"),
        "Path.touch": (_Payload(pathlib.Path.touch, pathlib.Path(marker)), "pathlib"),
        "eval": (_Payload(eval, f"open({str(marker)!r}, 'w')"), "eval"),
        "exec": (_Payload(exec, f"open({str(marker)!r}, 'w')"), "exec"),
        # getattr is allowed only as HistoryBuffer.{min,max,current,mean}
        "getattr": (_Payload(getattr, HistoryBuffer, "register_statistics"), "getattr"),
    }


@pytest.mark.parametrize("kind", ["os.system", "Path.touch", "eval", "exec", "getattr"])
def test_crafted_checkpoint_runs_no_code(tmp_path: Path, kind: str, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "pwned"
    payload, refused = _payloads(marker)[kind]
    path = _crafted(tmp_path / f"{kind}.pth", payload)
    for load in (load_local_checkpoint, CheckpointLoader.load_checkpoint):
        with pytest.raises(UntrustedCheckpointError) as info:
            load(str(path), map_location="cpu")
        assert not marker.exists()
        message = str(info.value)
        # names the file, the refused global and exactly how to opt in for this file
        assert repr(str(path)) in message and refused in message
        assert f"{TRUST_ENV}={path}" in message and "runs any code" in message
    # the teacher loader of the distillers goes through mmengine's CheckpointLoader too
    with pytest.raises(UntrustedCheckpointError):
        load_teacher_weights(ToyNet(4), str(path))
    assert not marker.exists()


class _TamperedBuffer:
    """Pickles as a HistoryBuffer whose ``statistics_methods`` puts an allowed callable (not a
    statistics method) under ``'mean'``: unpickled by mmengine it would replace
    ``HistoryBuffer.mean`` for the whole process."""

    @property
    def __class__(self):  # what pickle checks before writing HistoryBuffer as the class
        return HistoryBuffer

    def __reduce__(self):
        state = dict(max_length=10, _log_history=np.ones(1), _count_history=np.ones(1),
                     statistics_methods={"mean": OrderedDict})  # fmt: skip
        return copyreg.__newobj__, (HistoryBuffer,), state


def test_tampered_history_buffer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tampered.pth"
    torch.save({"message_hub": {"log_scalars": {"train/loss": _TamperedBuffer()}}}, path)
    with pytest.raises(UntrustedCheckpointError, match="statistics method 'mean'"):
        load_local_checkpoint(str(path))
    assert HistoryBuffer._statistics_methods.get("mean", HistoryBuffer.mean) is HistoryBuffer.mean


def test_opt_in_is_per_file(tmp_path: Path, monkeypatch) -> None:
    """A file needing a global outside the allow-list loads only once it is listed."""
    trusted = tmp_path / "namespace.pth"
    torch.save({"meta": {"args": argparse.Namespace(lr=0.1)}, "state_dict": {}}, trusted)
    other = tmp_path / "other.pth"
    torch.save({"meta": {"args": argparse.Namespace(lr=0.2)}, "state_dict": {}}, other)

    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UntrustedCheckpointError, match="argparse.Namespace"):
        load_local_checkpoint(str(trusted))
    monkeypatch.setenv(TRUST_ENV, f"{tmp_path / 'unrelated.pth'}{os.pathsep}{trusted}")
    assert load_local_checkpoint(str(trusted))["meta"]["args"].lr == 0.1
    with pytest.raises(UntrustedCheckpointError):  # listing one file trusts no other
        load_local_checkpoint(str(other))


def test_opt_in_runs_the_payload_of_a_listed_file(tmp_path: Path, monkeypatch) -> None:
    """The opt-in really is full unpickling (which is why it is per file and named)."""
    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "trusted.pth", _Payload(pathlib.Path.touch, marker))
    monkeypatch.setenv(TRUST_ENV, str(path))
    load_local_checkpoint(str(path))
    assert marker.exists()


class _Images(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        return {"inputs": torch.full((3, 16, 16), float(index) / 8)}


def _toy_runner(work_dir: Path, max_epochs: int, **kwargs) -> Runner:
    """mmengine's Runner training a ToyNet on 8 images (2 iterations an epoch) with AdamW, a
    LinearLR schedule and a checkpoint every epoch; ``kwargs`` go to the Runner."""
    return Runner(
        model=ToyNet(4),
        work_dir=str(work_dir),
        experiment_name=f"ckpt_safety_{work_dir.name}",
        train_dataloader=dict(
            dataset=_Images(),
            sampler=dict(type="DefaultSampler", shuffle=False),
            batch_size=4,
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-3)),
        param_scheduler=dict(type="LinearLR", start_factor=0.5, by_epoch=False, end=2),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        default_scope="mmengine",
        **kwargs,
    )


def _runner_checkpoint(work_dir: Path) -> Path:
    """Train a ToyNet for one epoch with mmengine's Runner: the checkpoint holds meta, the
    message hub (HistoryBuffers with numpy arrays and numpy scalars), optimizer and schedulers."""
    _toy_runner(work_dir, max_epochs=1).train()
    return work_dir / "epoch_1.pth"


@pytest.fixture(scope="module")
def runner_ckpt(tmp_path_factory) -> Path:
    return _runner_checkpoint(tmp_path_factory.mktemp("runner"))


def test_runner_checkpoint_loads_without_opt_in(runner_ckpt: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    # what it holds beyond plain types, each on kd_det's allow-list
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(runner_ckpt)))
    assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe
    assert "builtins.getattr" in unsafe and any(n.startswith("numpy.") for n in unsafe)
    with pytest.raises(Exception, match="HistoryBuffer"):  # plain torch refuses it
        torch.load(runner_ckpt, weights_only=True)

    ckpt = CheckpointLoader.load_checkpoint(str(runner_ckpt), map_location="cpu")
    assert set(ckpt) >= {"meta", "state_dict", "message_hub", "optimizer", "param_schedulers"}
    loss = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert type(loss) is HistoryBuffer and np.isfinite(loss.mean())
    assert isinstance(ckpt["message_hub"]["runtime_info"]["eta"], np.floating)
    # the allow-list was lent to that one load and given back
    assert not set(compat.CHECKPOINT_GLOBALS) & set(torch.serialization.get_safe_globals())
    # and the file is usable: as a teacher, by load_from and by --resume
    load_teacher_weights(ToyNet(4), str(runner_ckpt))


def test_runner_resumes_and_loads_from_safely(runner_ckpt: Path, tmp_path: Path) -> None:
    runner = _toy_runner(tmp_path, max_epochs=2, load_from=str(runner_ckpt), resume=True)
    runner.train()
    assert runner.train_loop.iter == 4 and (tmp_path / "epoch_2.pth").is_file()
    assert len(runner.message_hub.get_scalar("train/loss").data[0]) == 4  # history restored


def test_model_zoo_style_checkpoints_load(tmp_path: Path, monkeypatch) -> None:
    """mmdet/mmpretrain model-zoo files: meta + state_dict with numpy values; also the legacy
    (pre-zip) torch format with numpy 1.x module names, as older zoo files were written."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    state = OrderedDict(ToyNet(4).state_dict())
    meta = dict(
        mmdet_version="2.25.0",
        CLASSES=("person", "car"),
        PALETTE=[(220, 20, 60), (0, 0, 142)],
        config="model = dict(type='RetinaNet')",
        epoch=12,
        iter=87936,
        scale=np.float32(0.5),
        mean=np.array([123.675, 116.28, 103.53]),
        index=np.int64(3),
        hook_msgs=dict(last_ckpt="work_dirs/x/epoch_12.pth"),
    )
    zoo = tmp_path / "zoo.pth"
    torch.save(dict(meta=meta, state_dict=state), zoo)
    legacy = tmp_path / "legacy.pth"
    torch.save(dict(meta=meta, state_dict=state), legacy, _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes()
    assert b"numpy._core.multiarray\n" in raw
    legacy.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))

    for path in (zoo, legacy):
        ckpt = CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
        assert ckpt["meta"]["CLASSES"] == ("person", "car")
        assert ckpt["meta"]["scale"] == np.float32(0.5) and ckpt["meta"]["index"] == 3
        np.testing.assert_array_equal(ckpt["meta"]["mean"], meta["mean"])
        assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in state.items())
        load_teacher_weights(ToyNet(4), str(path))


def test_remote_loaders_use_the_allow_list(runner_ckpt: Path, tmp_path: Path, monkeypatch):
    """``https://`` checkpoints (mmengine downloads, then ``torch.load``s with torch's default)
    load a Runner checkpoint and refuse a crafted one, without any download here."""
    import mmengine.runner.checkpoint as mmengine_checkpoint

    files = {"https://zoo.example/runner.pth": runner_ckpt}
    marker = tmp_path / "pwned"
    files["https://zoo.example/crafted.pth"] = _crafted(
        tmp_path / "crafted.pth", _Payload(pathlib.Path.touch, marker)
    )
    monkeypatch.setattr(
        mmengine_checkpoint,
        "load_url",
        lambda url, map_location=None, **kwargs: torch.load(files[url], map_location=map_location),
    )
    ckpt = CheckpointLoader.load_checkpoint("https://zoo.example/runner.pth", map_location="cpu")
    assert isinstance(ckpt["message_hub"]["log_scalars"]["train/loss"], HistoryBuffer)
    with pytest.raises(UntrustedCheckpointError, match=TRUST_ENV):
        CheckpointLoader.load_checkpoint("https://zoo.example/crafted.pth")
    assert not marker.exists()


def test_bad_files_give_clear_errors(runner_ckpt: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(runner_ckpt.read_bytes()[: runner_ckpt.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("this is a text file, not a checkpoint\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    cases = {
        truncated: "is corrupt or truncated",
        text: "is not a PyTorch checkpoint (a file written by torch.save): it starts with b'this",
        empty: "is an empty file",
    }
    for path, expected in cases.items():
        with pytest.raises(CheckpointError) as info:
            CheckpointLoader.load_checkpoint(str(path))
        assert not isinstance(info.value, UntrustedCheckpointError), path
        assert repr(str(path)) in str(info.value) and expected in str(info.value)
        with pytest.raises(CheckpointError, match=re.escape(expected)):
            load_teacher_weights(ToyNet(4), str(path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_local_checkpoint(str(tmp_path / "missing.pth"))


# ------------------------------------------------------------------------------------------
# Atomic saving
# ------------------------------------------------------------------------------------------


def test_runner_saves_through_the_atomic_writer() -> None:
    import mmengine.runner as mmengine_runner
    import mmengine.runner.checkpoint as mmengine_checkpoint
    import mmengine.runner.runner as mmengine_runner_module

    for module in (mmengine_checkpoint, mmengine_runner, mmengine_runner_module):
        assert module.save_checkpoint is compat.save_checkpoint


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """An exception half-way through writing: the old file stays, no partial file remains."""
    from mmengine.runner.runner import save_checkpoint  # the name Runner.save_checkpoint calls

    path = tmp_path / "epoch_1.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(3)}}, str(path))
    before = path.read_bytes()

    def half_written(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half of a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]


# a real write failure: the file-size limit makes the kernel refuse the write half-way (as a
# full disk would); mmengine's own writer has already truncated the old file by then
FSIZE_SCRIPT = """
import os, resource, signal, sys
import torch
import kd_det  # noqa: F401
from mmengine.runner.runner import save_checkpoint

path = sys.argv[1]
save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, path)  # about 5 kB
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    save_checkpoint({'state_dict': {'w': torch.zeros(1_000_000)}}, path)  # about 4 MB
except (OSError, RuntimeError) as error:  # torch reports the failed write as either
    print('save failed:', error)
else:
    raise SystemExit('the 4 MB save did not fail')
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_write_failure_keeps_previous_checkpoint(tmp_path: Path) -> None:
    script = tmp_path / "fsize.py"
    script.write_text(FSIZE_SCRIPT)
    path = tmp_path / "ckpt" / "epoch_3.pth"
    proc = subprocess.run(
        [sys.executable, str(script), str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "save failed" in proc.stdout, proc.stdout + proc.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch_3.pth"]
    state = load_local_checkpoint(str(path))["state_dict"]
    assert torch.equal(state["w"], torch.ones(1000))
