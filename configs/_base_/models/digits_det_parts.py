# Shared pieces of the small digits detectors (configs/_base_/models/digits_<family>.py):
# the student is ResNet-18 at base width 8 with a 32-wide FPN, the teacher ResNet-18 at base
# width 32 with a 96-wide FPN; three FPN levels at strides 8/16/32 for 8-28 px digits.
digits_det_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    bgr_to_rgb=True,
    pad_size_divisor=32)


def _backbone(width):
    return dict(
        type='ResNet',
        depth=18,
        base_channels=width,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch')


def _fpn(width, out_channels):
    return dict(
        type='FPN',
        in_channels=[2 * width, 4 * width, 8 * width],
        out_channels=out_channels,
        start_level=0,
        num_outs=3)


digits_student_backbone = _backbone(8)
digits_teacher_backbone = _backbone(32)
digits_student_fpn = _fpn(8, 32)
digits_teacher_fpn = _fpn(32, 96)
digits_strides = [8, 16, 32]
digits_dense_test_cfg = dict(
    nms_pre=1000, min_bbox_size=0, score_thr=0.05,
    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
