"""Missing inputs make the tools exit with one line naming the path and how to make it.

One case runs a tool as a process (what a user sees: one line, no traceback); the others run the
tool's script in this process (``runpy``, ``__main__``), where the same exit is the
``SystemExit`` whose message Python prints as that one line."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO, run_tool

DET_STUDENT = CONFIGS / "baselines" / "retinanet_r18-w8_fpn_24e_digits.py"
DET_DISTILL = CONFIGS / "srd" / "srd_retinanet-w32-w8_fpn_24e_digits.py"


def single_error_line(out: str) -> str:
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("kd_det:")]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


def tool_error(tool: str, *args: object) -> str:
    """Run ``python TOOL ARGS...`` in this process; return the one line it exits with."""
    argv = sys.argv
    sys.argv = [tool, *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(REPO / tool), run_name="__main__")
    finally:
        sys.argv = argv
    message = exit_.value.code
    assert isinstance(message, str) and "\n" not in message, message
    return single_error_line(message)


def test_missing_config(tmp_path: Path) -> None:
    out = run_tool("tools/train.py", tmp_path / "nope.py", fails=True)
    line = single_error_line(out)
    assert "config file" in line and "nope.py" in line


@pytest.mark.parametrize("tool", ["tools/train.py", "tools/test.py"])
def test_missing_digits_data_names_the_generator(tool: str, tmp_path: Path) -> None:
    root = tmp_path / "digits" / "det"
    options = [
        f"train_dataloader.dataset.data_root={root}/",
        f"val_dataloader.dataset.data_root={root}/",
        f"test_dataloader.dataset.data_root={root}/",
    ]
    extra = [tmp_path / "x.pth"] if tool == "tools/test.py" else []
    if extra:
        extra[0].write_bytes(b"")
    line = tool_error(tool, DET_STUDENT, *extra, "--work-dir", tmp_path / "w", "--cfg-options",
                      *options)  # fmt: skip
    assert str(root) in line and "python tools/make_digits.py" in line


def test_missing_annotation_file(digits_root: Path, tmp_path: Path) -> None:
    line = tool_error("tools/train.py", DET_STUDENT, "--work-dir", tmp_path / "w", "--cfg-options",
                      f"train_dataloader.dataset.data_root={digits_root}/det/",
                      "train_dataloader.dataset.ann_file=annotations/missing.json")  # fmt: skip
    assert "annotation file" in line and "missing.json" in line


def test_missing_teacher_checkpoint(digits_root: Path, tmp_path: Path) -> None:
    root = f"{digits_root}/det/"
    line = tool_error("tools/train.py", DET_DISTILL, "--work-dir", tmp_path / "w", "--cfg-options",
                      f"train_dataloader.dataset.data_root={root}",
                      f"val_dataloader.dataset.data_root={root}",
                      f"val_evaluator.ann_file={root}annotations/val.json",
                      f"model.teacher_ckpt={tmp_path}/teacher.pth")  # fmt: skip
    assert "teacher checkpoint" in line and "teacher.pth" in line and "tools/train.py" in line


def test_export_of_a_missing_checkpoint(tmp_path: Path) -> None:
    line = tool_error("tools/export_student.py", DET_DISTILL, tmp_path / "none.pth",
                      tmp_path / "out.pth")  # fmt: skip
    assert "checkpoint" in line and "none.pth" in line


def test_benchmark_without_data(tmp_path: Path) -> None:
    root = tmp_path / "digits" / "det"
    out = run_tool("tools/benchmark.py", DET_DISTILL, "--no-memory", "--cfg-options",
                   f"train_dataloader.dataset.data_root={root}/", "model.teacher_ckpt=None",
                   fails=True)  # fmt: skip
    line = single_error_line(out)
    assert str(root) in line and "python tools/make_digits.py" in line


def test_benchmark_split_of_a_mutual_distiller(digits_root: Path) -> None:
    config = CONFIGS / "dml" / "dml_resnet18-w8-w8_30e_digits-cls.py"
    line = tool_error("tools/benchmark.py", config, "--split", "--iters", "1", "--warmup", "0",
                      "--no-memory", "--batch-size", "2", "--data-root", f"{digits_root}/cls/")  # fmt: skip
    assert "--split: the excess of a MutualDistiller cannot be split by term" in line
    assert "drop --split for" in line


def test_missing_annotation_file_of_a_wrapped_metric(digits_root: Path, tmp_path: Path) -> None:
    """kd_det.MutualMetric wraps the task's metric: its annotation file is checked too."""
    from mmengine.config import Config

    from kd_det.cli import MissingInput, check_inputs

    cfg = Config.fromfile(CONFIGS / "dml" / "dml_retinanet-w8-w8_fpn_24e_digits.py")
    root = f"{digits_root}/det/"
    cfg.merge_from_dict({
        "train_dataloader.dataset.data_root": root,
        "val_dataloader.dataset.data_root": root,
        "val_evaluator.metric.ann_file": f"{tmp_path}/missing.json",
    })  # fmt: skip
    with pytest.raises(MissingInput, match="val_evaluator annotation file .*missing.json"):
        check_inputs(cfg)
