"""What only a Runner shows: weight schedules, resume, and export to a plain mmdet checkpoint."""

from __future__ import annotations

from pathlib import Path

import mmdet
import pytest
import torch

from kd_det.compat import load_local_checkpoint
from kd_det.hooks import DistillWeightScheduler, schedule_factor
from tests.conftest import CONFIGS, metric_from_output, read_scalars, run_tool
from tests.distill_helpers import FPN_TERM, det_distill_config, make_runner

MMDET_TOOLS = Path(mmdet.__file__).parent / ".mim" / "tools"


def test_schedule_factor_by_hand() -> None:
    assert schedule_factor(0, 0, 100, warmup_iters=10) == pytest.approx(0.1)
    assert schedule_factor(9, 0, 100, warmup_iters=10) == pytest.approx(1.0)
    assert schedule_factor(50, 0, 100) == 1.0
    # linear decay over the 90 iterations after warm-up: p = (55 - 10) / 90 = 0.5
    assert schedule_factor(55, 0, 100, warmup_iters=10, decay="linear") == pytest.approx(0.5)
    assert schedule_factor(55, 0, 100, warmup_iters=10, decay="cosine") == pytest.approx(0.5)
    assert schedule_factor(25, 0, 100, decay="cosine") == pytest.approx((1 + 2**-0.5) / 2)
    assert schedule_factor(30, 0, 100, stop_iter=30) == 0.0
    assert schedule_factor(5, 2, 100, stop_epoch=2) == 0.0
    with pytest.raises(ValueError, match="unknown keys"):
        DistillWeightScheduler(dict(fpn=dict(warmup=3)))


SCHEDULE = "custom_hooks = [dict(type='kd_det.DistillWeightScheduler', schedules=dict(fpn=dict(warmup_iters=100)))]"
FOUR_IMAGES = dict(train_dataloader=dict(dataset=dict(indices=8)))  # 2 iterations an epoch


def test_resume_restores_connectors_mapping_and_schedule(tmp_path: Path, digits_root: Path) -> None:
    terms = FPN_TERM.replace("connector=", "mapper=dict(type='RandomMapper', seed=5), connector=")
    cfg = det_distill_config(
        tmp_path / "cfg.py", digits_root, terms=terms, epochs=2, extra=SCHEDULE
    )
    work = tmp_path / "work"
    first = make_runner(cfg, work, **FOUR_IMAGES, train_cfg=dict(max_epochs=2, val_interval=9))
    first.train()
    saved = load_local_checkpoint(str(work / "epoch_2.pth"))["state_dict"]

    # resumed with nothing left to train: the model holds exactly what was saved
    again = make_runner(cfg, work, **FOUR_IMAGES, resume=True, load_from=str(work / "epoch_2.pth"),
                        train_cfg=dict(max_epochs=2, val_interval=9))  # fmt: skip
    again.train()
    assert again.iter == 4
    for key, value in again.model.state_dict().items():
        if key.startswith("terms."):
            assert torch.equal(value, saved[key]), key

    # resumed for one more epoch: the schedule goes on from iteration 4, not from 0
    more = make_runner(cfg, work, **FOUR_IMAGES, resume=True, load_from=str(work / "epoch_2.pth"),
                       train_cfg=dict(max_epochs=3, val_interval=9))  # fmt: skip
    more.train()
    weights = [s["distill.fpn.weight"] for s in read_scalars(work) if "distill.fpn.weight" in s]
    assert weights[:4] == pytest.approx([0.01, 0.02, 0.03, 0.04])  # first run
    assert weights[-2:] == pytest.approx([0.05, 0.06])  # resumed run


def test_unknown_scheduled_term_fails_before_training(tmp_path: Path, digits_root: Path) -> None:
    hook = "custom_hooks = [dict(type='kd_det.DistillWeightScheduler', schedules=dict(fnp=dict()))]"
    cfg = det_distill_config(tmp_path / "cfg.py", digits_root, extra=hook)
    runner = make_runner(cfg, tmp_path / "work", **FOUR_IMAGES)
    with pytest.raises(KeyError, match=r"no distill term 'fnp'; terms: \['fpn'\]"):
        runner.train()
    assert runner.iter == 0


def test_exported_student_scores_the_same_with_mmdet_test_py(
    tmp_path: Path, digits_root: Path
) -> None:
    student = (
        f"dict(cfg_path={str(CONFIGS / 'baselines/retinanet_r18-w8_fpn_24e_digits.py')!r}, "
        "test_cfg=dict(score_thr=0.0))"  # 1 epoch on 48 images: keep every detection
    )
    terms = (
        FPN_TERM
        + """,
    cls=dict(student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
             loss=dict(type='SigmoidKDLoss'))"""
    )
    cfg = det_distill_config(
        tmp_path / "cfg.py", digits_root, terms=terms, epochs=1, student=student
    )
    work = tmp_path / "work"
    run_tool("tools/train.py", cfg, "--work-dir", work)
    ckpt = work / "epoch_1.pth"
    distiller_out = run_tool("tools/test.py", cfg, ckpt, "--work-dir", tmp_path / "t1")

    out = tmp_path / "export" / "student.pth"
    run_tool("tools/export_student.py", cfg, ckpt, out)
    state = load_local_checkpoint(str(out))["state_dict"]
    assert state and all(
        k.startswith(("backbone.", "neck.", "bbox_head.", "data_preprocessor.")) for k in state
    )
    test_out = run_tool(
        MMDET_TOOLS / "test.py", out.with_suffix(".py"), out, "--work-dir", tmp_path / "t2"
    )
    for key in ("coco/bbox_mAP", "coco/bbox_mAP_50"):
        assert metric_from_output(test_out, key) == metric_from_output(distiller_out, key), key
