# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017: GFL R-101 (teacher) -> R-50 (student), 1x schedule for the student.
#
# * FPN P3-P7 (`neck` outputs): bias-free 1x1-conv projector (256 -> 256), affine-free
#   BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * Classification (quality) logits (`bbox_head.gfl_cls`, one anchor per location, 80 sigmoid
#   classes on both): sigmoid KD (chi 1, tau 1, weight 1). The DFL box distributions are left
#   to the student's own losses.
#
# Data, evaluation, schedule and runtime are the student's own 1x recipe (data under
# data/coco/); GFL R-50 1x is 40.2 mAP in mmdet's model zoo. mmdet publishes no R-101 1x GFL,
# so the teacher is the R-101 multi-scale 2x model (44.7 mAP; the same architecture):
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth',
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
            student='bbox_head.gfl_cls',
            teacher='bbox_head.gfl_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, chi=1.0, loss_weight=1.0))))
