# FCOS R-101 (teacher) -> R-50 (student) on COCO2017, both with caffe-style backbones (mmdet's
# FCOS checkpoints are caffe-style, so both models share one data preprocessor: BGR, mean
# subtraction, std 1), 1x schedule: everything a distillation config of this pair shares. A
# method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/fcos_r101-r50-caffe_fpn_gn-head_1x_coco.py']
#   model = dict(distill=dict(fpn=dict(student='neck', teacher='neck', loss=dict(...))))
#
# Data, evaluation, schedule and runtime are the student's own 1x recipe (data under
# data/coco/); FCOS R-50-caffe 1x is 36.6 mAP in mmdet's model zoo. Teacher: R-101-caffe 1x
# (39.1 mAP):
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_1x_coco/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    student=dict(cfg_path='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'),
    # all teacher weights come from teacher_ckpt: no ImageNet backbone initialisation
    teacher=dict(
        cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py',
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth')
