"""scripts/gpu_check.sh, the GPU-machine check, in the parts that run without a GPU: its plan
(``--dry-run``), its refusals, the CUDA test selection it runs, the benchmark commands it runs
(parsed by tools/benchmark.py), and the data step (the synthetic full-size COCO set loads through
the R-101 -> R-50 config's pipeline as 1333 x 800 images)."""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_OUT="/nonexistent/out")
    full_env.update(env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _commands(output: str) -> list[list[str]]:
    """The commands a dry run prints (``  + cmd``), split as the shell would."""
    return [shlex.split(line[4:]) for line in output.splitlines() if line.startswith("  + ")]


@pytest.fixture(scope="module")
def plan() -> str:
    proc = _script("--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_dry_run_lists_every_step_and_runs_nothing(plan: str, tmp_path: Path) -> None:
    steps = re.findall(r"\] step (\w+)", plan)
    assert steps == ["env", "build", "data", "test", "bench"]
    assert not Path("/nonexistent/out").exists()
    commands = _commands(plan)
    build = next(c for c in commands if "scripts/build_mmcv.py" in c)
    assert build[:2] == ["timeout", "330"]
    assert {"MMCV_WITH_OPS=1", "FORCE_CUDA=1", "TORCH_CUDA_ARCH_LIST=9.0"} <= set(build)
    assert build[build.index("scripts/build_mmcv.py") + 1] == "build"


def test_the_cuda_tests_it_runs_are_collected_and_skip_without_a_gpu(plan: str) -> None:
    (pytest_cmd,) = [c for c in _commands(plan) if "pytest" in c]
    assert pytest_cmd[:2] == ["timeout", "100"]
    args = pytest_cmd[pytest_cmd.index("pytest") + 1 :]
    assert args[args.index("-k") + 1] == "cuda"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = proc.stdout.strip().splitlines()[-1]
    if torch.cuda.is_available():
        assert proc.returncode == 0 and "passed" in summary, proc.stdout[-3000:]
    else:  # training/validation on CUDA x3 teacher dtypes, AMP fp16/bf16, the sync count
        assert re.search(r"\b6 skipped\b", summary) and "passed" not in summary, summary
        assert proc.stdout.count("needs a CUDA device") >= 1


def test_benchmark_commands_parse_and_cover_both_pairs_and_teacher_dtypes(plan: str) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import benchmark as tool
    finally:
        sys.path.remove(str(REPO / "tools"))
    runs = set()
    for command in _commands(plan):
        if "tools/benchmark.py" not in command:
            continue
        args = tool.parse_args(command[command.index("tools/benchmark.py") + 1 :])
        assert (REPO / args.config).is_file() and args.device == "cuda"
        # random weights that stay put (lr 0), so they cannot diverge to NaN mid-benchmark
        assert args.cfg_options == {"model.teacher_ckpt": None, "optim_wrapper.optimizer.lr": 0.0}
        runs.add((Path(args.config).name, args.teacher_dtype, args.batch_size))
        cfg = Config.fromfile(str(REPO / args.config))
        if "r101" in args.config:  # the full-size pair at the 1x recipe's 1333 x 800
            resize = next(t for t in cfg.train_pipeline if t["type"] == "Resize")
            assert tuple(resize["scale"]) == (1333, 800)
    assert runs == {
        ("srd_retinanet-w32-w8_fpn_24e_digits.py", "fp32", 8),
        ("srd_retinanet-w32-w8_fpn_24e_digits.py", "bf16", 8),
        ("srd_retinanet-r101-r50_fpn_1x_coco.py", "fp32", 2),
        ("srd_retinanet-r101-r50_fpn_1x_coco.py", "bf16", 2),
    }


def test_prepare_dry_run_pins_the_venv_versions() -> None:
    proc = _script("--prepare", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (download,) = [c for c in _commands(proc.stdout) if "download" in c]
    assert download[download.index("--python-version") + 1] == "3.12"
    from importlib.metadata import version

    for name in ("mmengine", "mmdet", "mmpretrain", "pycocotools"):
        assert f"{name}=={version(name)}" in download
    assert any(
        c[-2:] == ["prepare", str(REPO / ".gpu_cache" / "build")] for c in _commands(proc.stdout)
    )


def test_refusals() -> None:
    proc = _script("bogus")
    assert proc.returncode == 2 and "unknown step or option 'bogus'" in proc.stderr
    if not torch.cuda.is_available():
        proc = _script("test", env=dict(CUDA_VISIBLE_DEVICES=""))
        assert proc.returncode == 1 and "no CUDA device" in proc.stderr
        assert not Path("/nonexistent/out").exists()  # refused before anything is written


def test_data_step_writes_sets_the_benchmarks_load(tmp_path: Path) -> None:
    """The data step needs no GPU; the COCO set it writes goes through the R-101 -> R-50
    config's own train pipeline to 1333 x 800 inputs (here from small images)."""
    env = dict(
        GPU_CHECK_WORK=str(tmp_path / "work"),
        GPU_CHECK_OUT=str(tmp_path / "out"),
        GPU_CHECK_COCO_SIZE="200x120",
        GPU_CHECK_COCO_IMAGES="2",
        GPU_CHECK_DIGITS_IMAGES="4",
    )
    proc = _script("data", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 images of 200x120 with 6 boxes" in proc.stdout
    digits = tmp_path / "work" / "digits" / "det"
    assert (digits / "annotations" / "train.json").is_file()
    assert "step data: exit 0" in (tmp_path / "out" / "summary.txt").read_text()

    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import kd_det  # noqa: F401

    cfg = Config.fromfile(str(REPO / "configs/srd/srd_retinanet-r101-r50_fpn_1x_coco.py"))
    init_default_scope("mmdet")
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.dataset.data_root = str(tmp_path / "work" / "coco") + "/"
    loader_cfg.update(num_workers=0, persistent_workers=False, batch_size=2)
    loader_cfg.pop("batch_sampler", None)  # mmdet's aspect-ratio grouping needs full batches
    batch = next(iter(Runner.build_dataloader(loader_cfg, seed=0)))
    shapes = {tuple(img.shape) for img in batch["inputs"]}
    assert shapes == {(3, 800, 1333)}, shapes
    assert all(len(s.gt_instances) == 3 for s in batch["data_samples"])
