"""The demo's parts (fast) and `make demo` end to end in its quick form (slow)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_tool

spec = importlib.util.spec_from_file_location("demo", REPO / "tools" / "demo.py")
demo = importlib.util.module_from_spec(spec)
sys.modules["demo"] = demo  # dataclasses look their module up there
spec.loader.exec_module(demo)

LOG = """\
12/02 05:42:33 - mmengine - INFO - Epoch(train)  [1][ 10/125]  lr: 1.8e-04  eta: 0:12:14  time: 0.38  loss: 1.8120  loss_cls: 1.1244
12/02 05:43:03 - mmengine - INFO - Epoch(train)  [3][ 20/125]  lr: 2.7e-04  eta: 0:09:16  time: 0.34  loss: 1.6971  loss_cls: 1.0253
"""


def test_progress_line_reads_epoch_iteration_loss_and_eta(tmp_path: Path) -> None:
    job = demo.Job("teacher", [], tmp_path / "t.log", threads=2, epochs=12)
    job.log.write_text(LOG)
    job.refresh()
    assert job.status == "epoch 3/12 it 20/125 loss 1.6971 eta 0:09:16"
    job.log.write_text(LOG + "... Epoch(val) [12][ 8/38]    eta: 0:00:10\n")
    job.refresh()
    assert job.status == "validating after epoch 12 (8/38)"


def test_schedule_scales_the_step_decay() -> None:
    options = demo.schedule_options(12)
    assert "param_scheduler.1.milestones=[8, 11]" in options
    assert "train_cfg.max_epochs=12" in options and "train_cfg.val_interval=12" in options
    assert "param_scheduler.1.milestones=[16, 22]" in demo.schedule_options(24)


def test_failed_stage_prints_the_end_of_its_log(tmp_path: Path) -> None:
    job = demo.Job("broken", ["-c", "print('the reason'); raise SystemExit(4)"],
                   tmp_path / "b.log", threads=1)  # fmt: skip
    with pytest.raises(SystemExit, match="(?s)broken.*exit 4.*the reason"):
        demo.run_jobs([job])


def test_figure_and_metrics_from_scalars(tmp_path: Path) -> None:
    run = tmp_path / "run" / "20260101_000000" / "vis_data"
    run.mkdir(parents=True)
    rows = [{"loss": 2.0 - i / 50, "distill.fpn.loss": 1.0, "step": i} for i in range(1, 40)]
    rows.append({"coco/bbox_mAP": 0.25, "coco/bbox_mAP_50": 0.5, "step": 3})
    (run / "scalars.json").write_text("\n".join(json.dumps(r) for r in rows))
    assert demo.metric(tmp_path / "run", "coco/bbox_mAP") == 0.25
    records = demo.read_scalars(tmp_path / "run")
    png = tmp_path / "demo.png"
    scores = {"teacher": 0.3, "student alone": 0.1, "distilled": 0.2}
    demo.figure(png, scores, {"distilled": records}, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_threads_must_be_positive(capsys) -> None:
    with pytest.raises(SystemExit):
        demo.parse_args(["--threads", "0"])
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_demo_trains_evaluates_and_exports(tmp_path: Path) -> None:
    out = run_tool("tools/demo.py", "--quick", "--data", tmp_path / "data",
                   "--out", tmp_path / "work", timeout=1800)  # fmt: skip
    table = (tmp_path / "work" / "demo_results.md").read_text()
    for row in ("teacher", "student alone", "student distilled", "exported student"):
        assert f"| {row}" in table
    assert (tmp_path / "work" / "demo.png").stat().st_size > 10_000
    assert re.search(r"teacher \d+:\d\d: (epoch \d+/2 it \d+/\d+|done)", out)  # progress
