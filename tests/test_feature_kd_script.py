"""tools/experiments/feature_kd.py and its shared plumbing (tools/experiments/common.py): the
tables and README sections by hand, the planned commands, and a tiny sweep end to end."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModule
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample

from kd_det.apis import build_model_from_cfg
from tests.conftest import REPO, run_tool
from tools.experiments import feature_kd
from tools.experiments.common import check_readme, gap_closed, mean_std_table, update_readme

SCRIPT = "tools/experiments/feature_kd.py"
VARIANTS = ["student", "logitkd", "fitnet", "srd", "srd-frozenproj", "srd-nobn", "srd-mse"]


def _rec(variant: str, seed: int, value: float) -> dict:
    return dict(variant=variant, seed=seed, epochs=2, value=value)


def test_mean_std_table_by_hand() -> None:
    records = [_rec("b", 1, 0.30), _rec("student", 0, 0.10), _rec("b", 0, 0.20),
               _rec("student", 1, 0.30), _rec("unlisted", 0, 0.5)]  # fmt: skip
    table = mean_std_table(
        records, {"student": "alone", "b": "  method b", "c": "no runs"}, "mAP (%)", 100.0,
        teacher=_rec("teacher", 0, 0.456),
    )  # fmt: skip
    assert table.splitlines() == [
        "| variant | mAP (%) mean ± std | n | Δ vs student | per seed |",
        "|---|---|---|---|---|",
        "| teacher (seed 0, 2 ep) | 45.60 | 1 | | |",
        # student: 10 and 30 -> mean 20, sample std 14.14; b: 20 and 30 -> 25 ± 7.07, +5
        "| student (alone) | 20.00 ± 14.14 | 2 |  | 0: 10.00, 1: 30.00 |",
        "| b (method b) | 25.00 ± 7.07 | 2 | +5.00 | 0: 20.00, 1: 30.00 |",
    ]


def test_readme_section_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- k -->\nold\n<!-- /k -->\n<!-- j -->\n<!-- /j -->\nend\n")
    check_readme(readme, ["k", "j"])
    update_readme(readme, "k", "new\ntable")
    assert readme.read_text() == (
        "top\n<!-- k -->\nnew\ntable\n<!-- /k -->\n<!-- j -->\n<!-- /j -->\nend\n"
    )
    with pytest.raises(SystemExit, match="<!-- x --> … <!-- /x -->"):
        check_readme(readme, ["k", "x"])


def _runs(output: str) -> list[tuple[str, str, int, str]]:
    """(task, variant, seed, command) for every run a dry run prints."""
    lines = output.splitlines()
    runs = []
    for i, line in enumerate(lines):
        m = re.fullmatch(r"# (det|cls) (\S+) seed (\d+)", line)
        if m:
            runs.append((m[1], m[2], int(m[3]), lines[i + 1]))
    return runs


def test_dry_run_lists_every_variant_and_seed(tmp_path: Path) -> None:
    out = run_tool(
        SCRIPT, "--task", "both", "--seeds", "0", "1", "2", "--epochs", "6", "--dry-run",
        "--work-root", tmp_path / "work", "--out", tmp_path / "out",
    )  # fmt: skip
    runs = _runs(out)
    for task in ("det", "cls"):
        got = {(v, s) for t, v, s, _ in runs if t == task}
        assert got == {(v, s) for v in VARIANTS for s in (0, 1, 2)} | {("teacher", 0)}
    assert not (tmp_path / "work").exists(), "a dry run must not train"
    by_key = {(t, v, s): cmd for t, v, s, cmd in runs}
    det_srd = by_key[("det", "srd", 2)]
    assert "tools/train.py configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py" in det_srd
    assert "randomness.seed=2" in det_srd
    assert "train_cfg.max_epochs=6" in det_srd
    assert "param_scheduler.1.milestones=[4,6]" in det_srd  # 16/24 and 22/24 of 6 epochs
    assert f"model.teacher_ckpt={tmp_path}/work/det/teacher/epoch_6.pth" in det_srd
    assert "val_evaluator.ann_file=" in det_srd
    assert "model.teacher_ckpt" not in by_key[("det", "student", 0)]
    cls_frozen = by_key[("cls", "srd-frozenproj", 1)]
    assert "configs/srd/srd-frozenproj_resnet18-w32-w8_30e_digits-cls.py" in cls_frozen
    assert "milestones" not in cls_frozen
    cls_teacher = by_key[("cls", "teacher", 0)]
    assert "tools/train.py configs/baselines/resnet18-w32_30e_digits-cls.py" in cls_teacher
    # every planned config exists
    configs = {re.search(r"tools/train\.py (\S+)", cmd)[1] for *_, cmd in runs}
    assert len(configs) == 2 * (len(VARIANTS) + 1)
    assert all((REPO / c).is_file() for c in configs), sorted(configs)


def test_readme_without_the_markers_is_refused_before_training(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# a project\n<!-- /feature_kd:det-2ep -->\n<!-- feature_kd:det-2ep -->\n")
    args = [
        SCRIPT, "--task", "det", "--seeds", "0", "--epochs", "2", "--readme", readme,
        "--work-root", tmp_path / "work", "--out", tmp_path / "out",
    ]  # fmt: skip
    out = run_tool(*args, fails=True)
    assert "add these marker lines, in this order" in out
    assert "<!-- feature_kd:det-2ep --> … <!-- /feature_kd:det-2ep -->" in out
    assert not (tmp_path / "work").exists(), "nothing may train before the README is checked"


@pytest.mark.slow  # eight tool runs, ~65 s on the 2-core CI machine: `make test-slow`
def test_tiny_sweep_end_to_end_and_resume(tmp_path: Path, digits_root: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# top\n\n<!-- feature_kd:det-1ep -->\nold\n<!-- /feature_kd:det-1ep -->\nend\n"
    )
    args = [
        SCRIPT, "--task", "det", "--seeds", "0", "--variants", "student", "srd",
        "--epochs", "1", "--teacher-epochs", "1", "--num-train", "16", "--threads", "1",
        "--data-root", digits_root, "--work-root", tmp_path / "work", "--out", tmp_path / "out",
        "--readme", readme,
    ]  # fmt: skip
    out = run_tool(*args)
    for variant in ("teacher", "student", "srd"):
        assert f"train: det {variant} seed 0" in out

    # (the classification path is what docs/feature_kd.md's sweep ran; detection is the one the
    # sweep did not, so it is the one run here)
    with open(tmp_path / "out" / "feature_kd_det.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("teacher", "0"), ("student", "0"), ("srd", "0")
    ]  # fmt: skip
    for row in rows:
        assert row["metric"] == "coco/bbox_mAP" and row["epochs"] == "1"
        assert float(row["seconds"]) > 0
    # the distilled detector loaded the teacher trained in this sweep and logged its terms
    det_log = (tmp_path / "work/det/srd/seed0/train.log").read_text()
    assert "distill.fpn.loss" in det_log and "distill.cls.loss" in det_log
    assert "teacher_ckpt is None" not in det_log

    md = (tmp_path / "out" / "feature_kd.md").read_text()
    assert "python tools/experiments/feature_kd.py --task det --seeds 0" in md
    assert re.search(r"\| student \(student alone\) \| \d+\.\d\d ± 0\.00 \| 1 \|", md)
    assert re.search(r"\| srd \(SRD: .*\| \d+\.\d\d ± 0\.00 \| 1 \| [+-]\d+\.\d\d \|", md)
    assert re.search(r"\| teacher \(seed 0, 1 ep\) \| \d+\.\d\d \|", md)
    # the README section holds the command and the same table, and nothing else changed
    text = readme.read_text()
    assert text.startswith("# top\n\n<!-- feature_kd:det-1ep -->\n```bash\npython tools/exp")
    assert text.endswith("<!-- /feature_kd:det-1ep -->\nend\n") and "old" not in text
    table = md.split("## det: coco/bbox_mAP\n\n")[1].strip()
    assert table in text

    # a second invocation trains nothing and reports the same table
    again = run_tool(*args)
    assert "train:" not in again
    assert again.count("skip (done)") == 3
    assert (tmp_path / "out" / "feature_kd.md").read_text() == md
    assert readme.read_text() == text
    # the report step alone writes the same table from the finished runs
    report_args = [a if a != tmp_path / "out" else tmp_path / "report" for a in args]
    run_tool(*report_args, "--report-only")
    assert table in (tmp_path / "report" / "feature_kd.md").read_text()
    out = run_tool(*report_args, "--report-only", "--seeds", "0", "1", fails=True)
    assert "det student seed 1 has not finished" in out

    # the gradient diagnostic on the same sweep: one row per term, at init and trained
    run_tool(*args, "--variants", "srd", "--diagnose")
    table = (tmp_path / "out" / "feature_kd_gradients_det.md").read_text()
    for state in ("init", "trained"):
        assert re.search(rf"\| srd \| {state} \| task \| [\d.]+ \| 1\.00 \| \+1\.00 \|", table)
        for term in ("distill.fpn.loss", "distill.cls.loss"):
            assert re.search(
                rf"\| srd \| {state} \| {term} \| -?[\d.]+ \| [\d.]+ \| [+-][\d.]+ \|", table
            )


def _projector_before_after(config: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Three optimizer steps of ``config``'s distiller, with the optimizer its config builds,
    on random 32-px images; the feature projector before and after, and whether the student's
    classifier changed."""
    cfg = Config.fromfile(REPO / config)
    cfg.model.teacher_ckpt = None  # the teacher keeps PyTorch's default init (see below)
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    proj = model.term("feat").connectors[0].projector.weight
    before, fc_before = proj.detach().clone(), model.student.head.fc.weight.detach().clone()
    model.train()
    for _ in range(3):
        images = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8) for _ in range(8)]
        samples = [DataSample().set_gt_label(i % 10) for i in range(8)]
        model.train_step(dict(inputs=images, data_samples=samples), optim_wrapper)
    fc_changed = not torch.equal(fc_before, model.student.head.fc.weight)
    return before, proj.detach().clone(), fc_changed


def test_frozen_projector_variant_trains_everything_but_its_projector(monkeypatch) -> None:
    # mmengine's init_weights of the teacher (it has no checkpoint here) is slow and irrelevant
    monkeypatch.setattr(BaseModule, "init_weights", lambda self: None)
    before, after, fc_changed = _projector_before_after(
        "configs/srd/srd-frozenproj_resnet18-w32-w8_30e_digits-cls.py"
    )
    assert fc_changed
    assert before.shape == (256, 64)
    assert torch.equal(before, after)  # lr 0 and no weight decay: exactly unchanged
    before, after, fc_changed = _projector_before_after(
        "configs/srd/srd_resnet18-w32-w8_30e_digits-cls.py"
    )
    assert fc_changed and not torch.equal(before, after)


def test_gap_closed_column_by_hand() -> None:
    records = [_rec("student", 0, 0.10), _rec("student", 1, 0.20), _rec("b", 0, 0.25)]
    table = mean_std_table(records, {"student": "alone", "b": "b"}, "mAP (%)", 100.0,
                           teacher=_rec("teacher", 0, 0.35), gap=True)  # fmt: skip
    # gap 35 - 15 = 20 points; b closes (25 - 15) / 20 = 50 %
    assert table.splitlines() == [
        "| variant | mAP (%) mean ± std | n | Δ vs student | gap closed (%) | per seed |",
        "|---|---|---|---|---|---|",
        "| teacher (seed 0, 2 ep) | 35.00 | 1 | | | |",
        "| student (alone) | 15.00 ± 7.07 | 2 |  | | 0: 10.00, 1: 20.00 |",
        "| b (b) | 25.00 ± 0.00 | 1 | +10.00 | 50 | 0: 25.00 |",
    ]
    # a teacher no better than the student leaves nothing to close (a 1-epoch sweep: all 0)
    assert gap_closed(25.0, 15.0, 0.0) == "–" and gap_closed(25.0, 15.0, -5.0) == "–"


def test_teacher_spread_by_hand(tmp_path: Path) -> None:
    task = feature_kd.TASKS["det"]
    t0 = feature_kd.Section(task, None, _rec("teacher", 0, 0.30),
                            [_rec("student", 0, 0.10), _rec("student", 1, 0.12),
                             _rec("fitnet", 0, 0.20), _rec("fitnet", 1, 0.22)])  # fmt: skip
    t1 = feature_kd.Section(task, None, _rec("teacher", 1, 0.40),
                            [_rec("student", 0, 0.10), _rec("student", 1, 0.12),
                             _rec("fitnet", 0, 0.14), _rec("fitnet", 1, 0.16)])  # fmt: skip
    rows = feature_kd.teacher_spread(task, [t0, t1]).splitlines()
    assert rows[0].startswith("| variant | teacher seed 0 | teacher seed 1 | all runs |")
    assert rows[2] == "| teacher | 30.00 | 40.00 | | | |"
    # fitnet: 21 ± 1.41 closes (21 - 11) / (30 - 11) = 53 %; 15 ± 1.41 closes 4 / 29 = 14 %;
    # all four runs 18 ± 3.65; the teacher means 21 and 15 differ by std 4.24
    fitnet = next(r for r in rows if r.startswith("| fitnet"))
    assert fitnet.endswith(
        "| 21.00 ± 1.41 (53 %) | 15.00 ± 1.41 (14 %) | 18.00 ± 3.65 | 4.24 | 1.41 |"
    )
    feature_kd.study_plot(task, [t0, t1], tmp_path / "study.png")  # one panel per teacher
    assert (tmp_path / "study.png").read_bytes().startswith(b"\x89PNG")


def test_several_teachers_lr_and_study_variants_are_planned(tmp_path: Path, capsys) -> None:
    study = ["student", "sigmoidkd-ts", "fitnet", "cwd", "pkd", "srd", "srd-mse-sigmoidkd"]
    argv = ["--task", "det", "--teacher-seed", "0", "1", "--seeds", "0", "1", "--epochs", "4",
            "--lr", "0.003", "--variants", *study, "--work-root", str(tmp_path / "w"),
            "--dry-run"]  # fmt: skip
    assert feature_kd.main(argv) == 0
    runs = _runs(capsys.readouterr().out)
    assert [(v, s) for _, v, s, _ in runs if v == "teacher"] == [("teacher", 0), ("teacher", 1)]
    assert len(runs) == 2 * (1 + len(study) * 2)
    for k in (0, 1):  # each teacher has its own folder and its own students
        mine = [c for _, v, _, c in runs if f"/w/t{k}/det/" in c]
        assert len(mine) == 1 + 2 * len(study)
        for cmd in mine:
            is_teacher = cmd.split("--work-dir ")[1].split()[0].endswith("/teacher")
            assert ("optim_wrapper.optimizer.lr=0.003" in cmd) != is_teacher  # students only
            if "teacher_ckpt" in cmd:
                assert f"model.teacher_ckpt={tmp_path}/w/t{k}/det/teacher/epoch_4.pth" in cmd
    configs = {re.search(r"tools/train\.py (\S+)", c)[1] for *_, c in runs}
    assert all((REPO / c).is_file() for c in configs), sorted(configs)
    assert not (tmp_path / "w").exists()


def test_variant_without_a_config_for_the_task_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        feature_kd.parse_args(["--task", "cls", "--variants", "cwd"])
    assert "--variants cwd: no cls config; cls has student, logitkd" in capsys.readouterr().err


def test_report_of_two_teachers_writes_tables_figure_and_readme(tmp_path: Path) -> None:
    args = feature_kd.parse_args(["--task", "det", "--teacher-seed", "0", "1", "--seeds", "0",
                                  "1", "--epochs", "4", "--lr", "0.003", "--variants",
                                  "student", "cwd", "--out", str(tmp_path / "out"),
                                  "--readme", str(tmp_path / "doc.md")])  # fmt: skip
    (tmp_path / "doc.md").write_text("a\n<!-- feature_kd:det-4ep-t0-1 -->\n"
                                     "<!-- /feature_kd:det-4ep-t0-1 -->\nb\n")  # fmt: skip
    task = feature_kd.TASKS["det"]
    sections = [
        feature_kd.Section(task, feature_kd.plan(task, args, k)[0],
                           {**_rec("teacher", k, 0.3 + k / 10), "seconds": 60.0},
                           [{**_rec(v, s, x + s / 100), "seconds": 30.0}
                            for v, x in (("student", 0.1), ("cwd", 0.2)) for s in (0, 1)])
        for k in (0, 1)
    ]  # fmt: skip
    md = feature_kd.write_report(args, "python feature_kd.py ...", sections).read_text()
    assert md.count("| cwd (CWD") == 3  # one row per teacher, one over both
    assert "students 4 epochs, lr 0.003, teacher 4 epochs (seed 0, 1)" in md
    assert "Teacher seed 0:" in md and "Teacher seed 1:" in md
    for name in ("feature_kd_det_t0.csv", "feature_kd_det_t1.csv", "feature_kd_det.png"):
        assert (tmp_path / "out" / name).is_file(), name
    doc = (tmp_path / "doc.md").read_text()
    assert doc.startswith("a\n<!-- feature_kd:det-4ep-t0-1 -->\n```bash\npython feature_kd.py")
    assert doc.endswith("<!-- /feature_kd:det-4ep-t0-1 -->\nb\n")
    assert (
        "| cwd (CWD: projector, channel-wise spatial softmax KL, tau 1) | 20.50 ± 0.71 (51 %)"
        in doc
    )


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--lr", "0", "--lr must be > 0, got 0.0"),
    ("--lr", "nan", "--lr must be > 0, got nan"),
    ("--lanes", "0", "--lanes must be >= 1, got 0"),
])  # fmt: skip
def test_bad_study_options_are_refused(option: str, value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        feature_kd.parse_args(["--task", "det", option, value])
    assert message in capsys.readouterr().err
