# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017,
# on the classification logits: GFL R-101 (teacher) -> R-50 (student), 1x schedule for the
# student. This is MMRazor's GFL CWD recipe (40.2 -> 41.9 box AP there).
#
# * Classification (quality) logits (`bbox_head.gfl_cls`, one layer per FPN level, 80 classes
#   on both): every class map of every image becomes a softmax over its positions (tau 1),
#   KL(teacher || student) times tau^2, averaged over images and classes
#   (ChannelWiseDivergence), weight 5 per level -- MMRazor's value. The heads have the same
#   classes, so there is no projector.
_base_ = ['../_base_/distill/gfl_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        cls=dict(
            student='bbox_head.gfl_cls',
            teacher='bbox_head.gfl_cls',
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=5.0))))
