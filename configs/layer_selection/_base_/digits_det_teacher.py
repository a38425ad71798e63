# Teacher detector of the layer-selection study on the digits detection set: RetinaNet with a
# ResNet-34 at base width 16, 16 residual blocks (3, 4, 6, 3 per stage, widths 16/32/64/128),
# twice the 8 blocks of the ResNet-18 student of configs/_base_/models/; FPN 64 on stages 2-4
# (strides 8/16/32), 3 stacked head convs. Refer to it as {{_base_.ls_det_teacher}}.
_base_ = ['../../_base_/models/digits_retinanet.py']  # the student and the shared parts

ls_det_teacher = dict(
    type='RetinaNet',
    data_preprocessor={{_base_.digits_det_preprocessor}},
    backbone=dict(
        type='ResNet',
        depth=34,
        base_channels=16,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch'),
    neck=dict(
        type='FPN', in_channels=[32, 64, 128], out_channels=64, start_level=0, num_outs=3),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=10,
        in_channels=64,
        stacked_convs=3,
        feat_channels=64,
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
