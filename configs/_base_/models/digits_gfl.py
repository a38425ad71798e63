# Small GFL detectors for the 128-px digits set: `gfl_student` and `gfl_teacher`
# (see digits_det_parts.py). Refer to them as {{_base_.gfl_student}} etc.
_base_ = ['./digits_det_parts.py']


def _gfl(backbone, neck, channels, stacked):
    return dict(
        type='GFL',
        data_preprocessor={{_base_.digits_det_preprocessor}},
        backbone=backbone,
        neck=neck,
        bbox_head=dict(
            type='GFLHead',
            num_classes=10,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator',
                ratios=[1.0],
                octave_base_scale=3,
                scales_per_octave=1,
                strides={{_base_.digits_strides}}),
            loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
            loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
            reg_max=8,
            loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(
            assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
            debug=False),
        test_cfg=dict(
            nms_pre=1000, min_bbox_size=0, score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))


gfl_student = _gfl({{_base_.digits_student_backbone}}, {{_base_.digits_student_fpn}}, 32, 2)
gfl_teacher = _gfl({{_base_.digits_teacher_backbone}}, {{_base_.digits_teacher_fpn}}, 96, 3)
