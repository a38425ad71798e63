# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017, feature distillation only: Faster R-CNN R-101 (teacher) -> R-50
# (student), 1x schedule.
#
# * FPN P2-P6 (`neck` outputs): bias-free 1x1-conv projector (256 -> 256), affine-free
#   BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * No logit term: the RoI head's logits of two detectors are computed on different proposals
#   (each model's own RPN), so they are not paired sample by sample.
#
# Data, evaluation, schedule and runtime are the student's own 1x recipe (data under
# data/coco/); Faster R-CNN R-50 1x is 37.4 mAP in mmdet's model zoo. Teacher: R-101 1x (39.4):
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth',
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))))
