# Small RetinaNets for the 128-px digits set: `retinanet_student` and `retinanet_teacher`
# (see digits_det_parts.py). Refer to them as {{_base_.retinanet_student}} etc.
_base_ = ['./digits_det_parts.py']


def _retinanet(backbone, neck, channels, stacked):
    return dict(
        type='RetinaNet',
        data_preprocessor={{_base_.digits_det_preprocessor}},
        backbone=backbone,
        neck=neck,
        bbox_head=dict(
            type='RetinaHead',
            num_classes=10,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=1.5,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides={{_base_.digits_strides}}),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(
                type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        test_cfg={{_base_.digits_dense_test_cfg}})


retinanet_student = _retinanet({{_base_.digits_student_backbone}}, {{_base_.digits_student_fpn}}, 32, 2)
retinanet_teacher = _retinanet({{_base_.digits_teacher_backbone}}, {{_base_.digits_teacher_fpn}}, 96, 3)
