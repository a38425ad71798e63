# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017: RetinaNet R-101 (teacher) -> R-50 (student), 1x schedule.
#
# * FPN P3-P7 (the `neck` outputs, one layer per level): bias-free 1x1-conv projector (256 ->
#   256), affine-free BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * Classification logits (`bbox_head.retina_cls`, one layer per level, the same 9 anchors x 80
#   classes on both): sigmoid KD (the chi-mixed binary cross-entropy at chi 1, tau 1, weight 1).
#
# Data, evaluation, schedule and runtime are the student's own 1x recipe (mmdet's
# coco_detection / schedule_1x / default_runtime bases, data under data/coco/), so the result
# compares directly with the R-50 baseline (36.5 mAP in mmdet's model zoo).
# The teacher checkpoint is mmdet's R-101 1x model (38.5 mAP); download it first:
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    # all teacher weights come from teacher_ckpt: no ImageNet backbone initialisation
    teacher=dict(
        cfg_path='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py', backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth',
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
        cls=dict(
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, chi=1.0, loss_weight=1.0))))
