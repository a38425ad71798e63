"""Issue 3: real training through the Runner, COCO evaluation, resume and tools/test.py."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import mmdet

from tests.conftest import (
    cls_data_overrides,
    det_data_overrides,
    metric_from_output,
    read_scalars,
    run_tool,
    short_schedule,
    write_config,
)

MMDET_TOOLS = Path(mmdet.__file__).parent / ".mim" / "tools"


def _check_train_resume_test(tmp_path: Path, cfg: Path, metric: str, epochs: int) -> float:
    work_dir = tmp_path / "work"
    run_tool("tools/train.py", cfg, "--work-dir", work_dir)
    scalars = read_scalars(work_dir)
    losses = [s["loss"] for s in scalars if "loss" in s]
    assert len(losses) >= 24, f"only {len(losses)} logged iterations"
    first, last = mean(losses[:4]), mean(losses[-4:])
    assert last < 0.85 * first, f"loss did not fall: first {first:.3f}, last {last:.3f}"
    assert any(metric in s for s in scalars), f"no {metric} after training"

    # stop-and-resume: one more epoch from the saved checkpoint
    out = run_tool(
        "tools/train.py", cfg, "--work-dir", work_dir, "--resume",
        "--cfg-options", f"train_cfg.max_epochs={epochs + 1}", f"train_cfg.val_interval={epochs + 1}",
    )  # fmt: skip
    assert f"resumed epoch: {epochs}" in out
    ckpt = work_dir / f"epoch_{epochs + 1}.pth"
    assert ckpt.is_file()
    val_metric = metric_from_output(out, metric)

    out = run_tool("tools/test.py", cfg, ckpt, "--work-dir", tmp_path / "test")
    assert metric_from_output(out, metric) == val_metric
    return val_metric


def test_retinanet_trains_evaluates_resumes_and_tests(tmp_path: Path, digits_root: Path) -> None:
    cfg = write_config(
        tmp_path / "retinanet.py",
        ["baselines/retinanet_r18-w8_fpn_24e_digits.py"],
        det_data_overrides(digits_root, batch_size=2) + short_schedule(epochs=3),
    )
    mAP = _check_train_resume_test(tmp_path, cfg, "coco/bbox_mAP", epochs=3)
    assert 0.0 <= mAP <= 1.0


def test_classifier_trains_evaluates_resumes_and_tests(tmp_path: Path, digits_root: Path) -> None:
    cfg = write_config(
        tmp_path / "resnet.py",
        ["baselines/resnet18-w8_30e_digits-cls.py"],
        cls_data_overrides(digits_root) + short_schedule(epochs=16),
    )
    top1 = _check_train_resume_test(tmp_path, cfg, "accuracy/top1", epochs=16)
    assert 0.0 <= top1 <= 100.0


def test_plugin_config_trains_with_mmdet_own_train_py(tmp_path: Path, digits_root: Path) -> None:
    """A config outside this repository: an mmdet config as base, kd_det by custom_imports,
    trained and resumed by the train.py shipped in the mmdet package."""
    shrink = """dict(
        backbone=dict(base_channels=8, init_cfg=None),
        neck=dict(in_channels=[8, 16, 32, 64], out_channels=32),
        bbox_head=dict(num_classes=10, in_channels=32, feat_channels=32, stacked_convs=1),
        # two epochs on 48 images: keep every detection so COCO evaluation has some to score
        test_cfg=dict(score_thr=0.0))"""
    body = f"""
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)
_tiny = {shrink}
model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', **_tiny),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', **_tiny),
    distill=dict(fpn=dict(student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
                          loss=dict(type='MSEFeatureLoss', loss_weight=1.0))))
_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
_metainfo = dict(classes=tuple(str(i) for i in range(10)))
_data_root = '{digits_root}/det/'
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=_data_root, metainfo=_metainfo, ann_file='annotations/train.json',
    data_prefix=dict(img='train/'), pipeline=_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=_data_root, metainfo=_metainfo, ann_file='annotations/val.json',
    data_prefix=dict(img='val/'), pipeline=_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_data_root + 'annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=5)]
optim_wrapper = dict(optimizer=dict(lr=0.005))
"""
    cfg = write_config(
        tmp_path / "plugin_cfg.py", ["mmdet::retinanet/retinanet_r18_fpn_1x_coco.py"], body
    )
    work_dir = tmp_path / "work"
    out = run_tool(MMDET_TOOLS / "train.py", cfg, "--work-dir", work_dir, cwd=tmp_path)
    assert "distill.fpn.loss" in out
    assert (work_dir / "epoch_1.pth").is_file()
    out = run_tool(
        MMDET_TOOLS / "train.py", cfg, "--work-dir", work_dir, "--resume",
        "--cfg-options", "train_cfg.max_epochs=2", cwd=tmp_path,
    )  # fmt: skip
    assert "resumed epoch: 1" in out
    out = run_tool(MMDET_TOOLS / "test.py", cfg, work_dir / "epoch_2.pth", cwd=tmp_path)
    assert 0.0 <= metric_from_output(out, "coco/bbox_mAP") <= 1.0
