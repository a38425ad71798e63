"""Shared fixtures: a tiny digits data set, config writers and a tool runner.

The end-to-end tests drive the real tools (tools/train.py, tools/test.py, mmdet's own
train.py) in subprocesses, on tiny models and a few dozen 128-px images.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kd_det.apis import read_scalars  # noqa: F401  (re-exported for the Runner-level tests)
from kd_det.datasets import make_classification_set, make_detection_set

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    make_detection_set(root, num_train=48, num_val=16, seed=0)
    make_classification_set(root, num_train=320, num_val=80, seed=0)
    return root


def run_tool(*args: object, cwd: Path = REPO, timeout: int = 900, fails: bool = False) -> str:
    """Run ``python ARGS...`` and return its output; fail the test with the output's tail if it
    exits non-zero (or, with ``fails=True``, if it exits zero)."""
    env = dict(
        os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")
    )
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert (proc.returncode != 0) == fails, f"{args} exited {proc.returncode}:\n{out[-6000:]}"
    return out


def det_data_overrides(digits_root: Path, batch_size: int = 4) -> str:
    """Config lines pointing an mmdet digits config at the test's data."""
    data_root = f"{digits_root}/det/"
    return f"""
_data_root = {data_root!r}
train_dataloader = dict(batch_size={batch_size}, dataset=dict(data_root=_data_root))
val_dataloader = dict(batch_size=8, dataset=dict(data_root=_data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_data_root + 'annotations/val.json')
test_evaluator = val_evaluator
"""


def cls_data_overrides(digits_root: Path) -> str:
    data_root = f"{digits_root}/cls/"
    return f"""
_data_root = {data_root!r}
train_dataloader = dict(batch_size=32, dataset=dict(data_root=_data_root))
val_dataloader = dict(batch_size=80, dataset=dict(data_root=_data_root))
test_dataloader = val_dataloader
"""


def short_schedule(epochs: int, warmup_iters: int = 5, lr: float = 2e-3) -> str:
    return f"""
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
optim_wrapper = dict(optimizer=dict(lr={lr}))
param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end={warmup_iters})]
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""


def write_config(path: Path, bases: list[str | Path], body: str) -> Path:
    """Write a config inheriting ``bases`` (paths relative to configs/ or absolute)."""
    resolved = [str(b if Path(b).is_absolute() or "::" in str(b) else CONFIGS / b) for b in bases]
    path.write_text(f"_base_ = {resolved!r}\n{body}")
    return path


def metric_from_output(output: str, key: str) -> float:
    """The last ``key: value`` an mmengine log printed: for a tool's printed output, e.g.
    ``tools/test.py``'s (whose metrics go to no ``scalars.json``); a training work dir is read
    with :func:`kd_det.apis.read_metrics`."""
    values = [
        float(part.split(":", 1)[1])
        for line in output.splitlines()
        for part in line.split("  ")
        if part.strip().startswith(key + ":")
    ]
    assert values, f"{key} not in the output:\n{output[-3000:]}"
    return values[-1]
