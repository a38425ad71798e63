# Faster R-CNN R-101 (teacher) -> R-50 (student) on COCO2017, 1x schedule: everything a
# distillation config of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/faster-rcnn_r101-r50_fpn_1x_coco.py']
#   model = dict(distill=dict(fpn=dict(student='neck', teacher='neck', loss=dict(...))))
# The RoI head's logits of two detectors are computed on different proposals (each model's own
# RPN), so they are not paired sample by sample: distil the FPN (`neck`), not `roi_head`.
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
    # all teacher weights come from teacher_ckpt: no ImageNet backbone initialisation
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth')
