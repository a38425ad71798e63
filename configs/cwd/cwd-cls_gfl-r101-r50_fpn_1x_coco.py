# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017,
# on the classification logits: GFL R-101 (teacher) -> R-50 (student), 1x schedule for the
# student. This is MMRazor's GFL CWD recipe (40.2 -> 41.9 box AP there).
#
# * Classification (quality) logits (`bbox_head.gfl_cls`, one layer per FPN level, 80 classes
#   on both): every class map of every image becomes a softmax over its positions (tau 1),
#   KL(teacher || student) times tau^2, averaged over images and classes
#   (ChannelWiseDivergence), weight 5 per level -- MMRazor's value. The heads have the same
#   classes, so there is no projector.
#
# Data, evaluation, schedule and runtime are the student's own 1x recipe (data under
# data/coco/); GFL R-50 1x is 40.2 mAP in mmdet's model zoo. Teacher: the R-101 multi-scale 2x
# model (44.7 mAP):
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth
_base_ = ['./cwd_gfl-r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=None,
        cls=dict(
            student='bbox_head.gfl_cls',
            teacher='bbox_head.gfl_cls',
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=5.0))))
