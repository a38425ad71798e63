# Small FCOS detectors for the 128-px digits set: `fcos_student` and `fcos_teacher`
# (see digits_det_parts.py). Refer to them as {{_base_.fcos_student}} etc.
_base_ = ['./digits_det_parts.py']


def _fcos(backbone, neck, channels, stacked):
    return dict(
        type='FCOS',
        data_preprocessor={{_base_.digits_det_preprocessor}},
        backbone=backbone,
        neck=neck,
        bbox_head=dict(
            type='FCOSHead',
            num_classes=10,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            strides={{_base_.digits_strides}},
            regress_ranges=((-1, 24), (24, 48), (48, 1e8)),
            norm_on_bbox=True,
            centerness_on_reg=True,
            center_sampling=True,
            conv_bias=True,
            loss_cls=dict(
                type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
            loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        test_cfg={{_base_.digits_dense_test_cfg}})


fcos_student = _fcos({{_base_.digits_student_backbone}}, {{_base_.digits_student_fpn}}, 32, 2)
fcos_teacher = _fcos({{_base_.digits_teacher_backbone}}, {{_base_.digits_teacher_fpn}}, 96, 3)
