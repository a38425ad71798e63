# PKD ("PKD: General Distillation Framework for Object Detectors via Pearson Correlation
# Coefficient", arXiv:2207.02039) on COCO2017: GFL R-101 (teacher) -> R-50 (student), 1x
# schedule for the student.
#
# * FPN P3-P6 (`neck` outputs 0-3, as MMRazor's PKD configs; P7 is left out): each level
#   standardised per channel, then MSE / 2 (PKDLoss), weight 10 per level (MMRazor's value for
#   one-stage students). Both FPNs are 256 wide, so there is no projector.
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
            mapper=dict(type='ExplicitMapper', pairs=[[0, 0], [1, 1], [2, 2], [3, 3]]),
            loss=dict(type='PKDLoss', loss_weight=10.0))))
