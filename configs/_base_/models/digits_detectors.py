# Small detectors for the 128-px digits canvases (kd_det.datasets), at two widths each:
# `<family>_student` (ResNet-18 with base width 8) and `<family>_teacher` (base width 32).
# Refer to them with {{_base_.retinanet_student}} etc. All three FPN levels have strides
# 8/16/32; digits are 8-32 px, so anchors are smaller than COCO's.

_num_classes = 10
_strides = [8, 16, 32]


def _preprocessor():
    return dict(
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


_dense_test_cfg = dict(
    nms_pre=1000, min_bbox_size=0, score_thr=0.05,
    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)


def _retinanet(width, channels, stacked):
    return dict(
        type='RetinaNet',
        data_preprocessor=_preprocessor(),
        backbone=_backbone(width),
        neck=_fpn(width, channels),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=_num_classes,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=1.5,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=_strides),
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
        test_cfg=_dense_test_cfg)


def _fcos(width, channels, stacked):
    return dict(
        type='FCOS',
        data_preprocessor=_preprocessor(),
        backbone=_backbone(width),
        neck=_fpn(width, channels),
        bbox_head=dict(
            type='FCOSHead',
            num_classes=_num_classes,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            strides=_strides,
            regress_ranges=((-1, 24), (24, 48), (48, 1e8)),
            norm_on_bbox=True,
            centerness_on_reg=True,
            center_sampling=True,
            conv_bias=True,
            loss_cls=dict(
                type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
            loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        test_cfg=_dense_test_cfg)


def _gfl(width, channels, stacked):
    return dict(
        type='GFL',
        data_preprocessor=_preprocessor(),
        backbone=_backbone(width),
        neck=_fpn(width, channels),
        bbox_head=dict(
            type='GFLHead',
            num_classes=_num_classes,
            in_channels=channels,
            stacked_convs=stacked,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator',
                ratios=[1.0],
                octave_base_scale=3,
                scales_per_octave=1,
                strides=_strides),
            loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
            loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
            reg_max=8,
            loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(
            assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
            debug=False),
        test_cfg=dict(_dense_test_cfg, nms=dict(type='nms', iou_threshold=0.6)))


def _faster_rcnn(width, channels, fc_channels):
    return dict(
        type='FasterRCNN',
        data_preprocessor=_preprocessor(),
        backbone=_backbone(width),
        neck=_fpn(width, channels),
        rpn_head=dict(
            type='RPNHead',
            in_channels=channels,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator', scales=[2, 4], ratios=[0.5, 1.0, 2.0], strides=_strides),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                out_channels=channels,
                featmap_strides=_strides),
            bbox_head=dict(
                type='Shared2FCBBoxHead',
                in_channels=channels,
                fc_out_channels=fc_channels,
                roi_feat_size=7,
                num_classes=_num_classes,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0.0, 0.0, 0.0, 0.0],
                    target_stds=[0.1, 0.1, 0.2, 0.2]),
                reg_class_agnostic=False,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(
                    type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                    match_low_quality=True, ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler', num=128, pos_fraction=0.5, neg_pos_ub=-1,
                    add_gt_as_proposals=False),
                allowed_border=-1,
                pos_weight=-1,
                debug=False),
            rpn_proposal=dict(
                nms_pre=1000, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7),
                min_bbox_size=0),
            rcnn=dict(
                assigner=dict(
                    type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                    match_low_quality=False, ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1,
                    add_gt_as_proposals=True),
                pos_weight=-1,
                debug=False)),
        test_cfg=dict(
            rpn=dict(
                nms_pre=500, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7),
                min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))


retinanet_student = _retinanet(8, 32, 2)
retinanet_teacher = _retinanet(32, 96, 3)
fcos_student = _fcos(8, 32, 2)
fcos_teacher = _fcos(32, 96, 3)
gfl_student = _gfl(8, 32, 2)
gfl_teacher = _gfl(32, 96, 3)
faster_rcnn_student = _faster_rcnn(8, 32, 128)
faster_rcnn_teacher = _faster_rcnn(32, 96, 512)
