# RetinaNet R-101 (teacher) -> R-50 (student) on COCO2017, 1x schedule: everything a distillation
# config of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/retinanet_r101-r50_fpn_1x_coco.py']
#   model = dict(distill=dict(fpn=dict(student='neck', teacher='neck', loss=dict(...))))
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
    teacher_ckpt='checkpoints/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth')
