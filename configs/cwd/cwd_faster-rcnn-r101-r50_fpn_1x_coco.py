# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017:
# Faster R-CNN R-101 (teacher) -> R-50 (student), 1x schedule.
#
# * FPN P2-P6 (the five `neck` outputs): per channel a softmax over positions (tau 1),
#   KL(teacher || student) times tau^2, averaged over images and channels
#   (ChannelWiseDivergence), weight 10 per level -- MMRazor's Faster R-CNN CWD config. Both FPNs
#   are 256 wide, so there is no projector.
# * No logit term: the RoI head's logits of two detectors are computed on different proposals
#   (each model's own RPN), so they are not paired sample by sample.
_base_ = ['../_base_/distill/faster-rcnn_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10.0))))
