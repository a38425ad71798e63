# GFL R-101 (teacher) -> R-50 (student) on COCO2017, 1x schedule for the student: everything a
# distillation config of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/gfl_r101-r50_fpn_1x_coco.py']
#   model = dict(distill=dict(fpn=dict(student='neck', teacher='neck', loss=dict(...))))
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
    # all teacher weights come from teacher_ckpt: no ImageNet backbone initialisation
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth')
