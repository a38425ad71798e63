# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017,
# on the FPN: GFL R-101 (teacher) -> R-50 (student), 1x schedule for the student.
#
# * FPN P3-P7 (the five `neck` outputs): per channel a softmax over positions (tau 1),
#   KL(teacher || student) times tau^2, averaged over images and channels
#   (ChannelWiseDivergence), weight 10 per level -- MMRazor's CWD FPN configs. Both FPNs are 256
#   wide, so there is no projector. For CWD on GFL's classification logits (MMRazor's published
#   GFL recipe) see cwd-cls_gfl-r101-r50_fpn_1x_coco.py.
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
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10.0))))
