# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017, feature distillation only: FCOS R-101 (teacher) -> R-50 (student),
# both with caffe-style backbones (mmdet's FCOS checkpoints are caffe-style, so both models
# share one data preprocessor: BGR, mean subtraction, std 1), 1x schedule.
#
# * FPN P3-P7 (`neck` outputs): bias-free 1x1-conv projector (256 -> 256), affine-free
#   BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
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
    teacher=dict(
        cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py',
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth',
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))))
