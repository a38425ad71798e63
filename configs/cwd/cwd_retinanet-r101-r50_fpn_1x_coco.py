# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017:
# RetinaNet R-101 (teacher) -> R-50 (student), 1x schedule.
#
# * FPN P3-P7 (the five `neck` outputs): every channel of every image becomes a softmax over its
#   positions (tau 1), KL(teacher || student) times tau^2, averaged over images and channels
#   (ChannelWiseDivergence), weight 10 per level -- MMRazor's CWD FPN configs. Both FPNs are 256
#   wide, so there is no projector.
_base_ = ['../_base_/distill/retinanet_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10.0))))
