# Small Faster R-CNNs for the 128-px digits set: `faster_rcnn_student` and `faster_rcnn_teacher`
# (see digits_det_parts.py). Refer to them as {{_base_.faster_rcnn_student}} etc.
_base_ = ['./digits_det_parts.py']


def _faster_rcnn(backbone, neck, channels, fc_channels):
    return dict(
        type='FasterRCNN',
        data_preprocessor={{_base_.digits_det_preprocessor}},
        backbone=backbone,
        neck=neck,
        rpn_head=dict(
            type='RPNHead',
            in_channels=channels,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator', scales=[2, 4], ratios=[0.5, 1.0, 2.0], strides={{_base_.digits_strides}}),
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
                featmap_strides={{_base_.digits_strides}}),
            bbox_head=dict(
                type='Shared2FCBBoxHead',
                in_channels=channels,
                fc_out_channels=fc_channels,
                roi_feat_size=7,
                num_classes=10,
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


faster_rcnn_student = _faster_rcnn({{_base_.digits_student_backbone}}, {{_base_.digits_student_fpn}}, 32, 128)
faster_rcnn_teacher = _faster_rcnn({{_base_.digits_teacher_backbone}}, {{_base_.digits_teacher_fpn}}, 96, 512)
