# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on COCO2017:
# FCOS R-101 (teacher) -> R-50 (student), both with caffe-style backbones (mmdet's FCOS
# checkpoints are caffe-style, so both models share one data preprocessor: BGR, mean
# subtraction, std 1), 1x schedule.
#
# * FPN P3-P7 (the five `neck` outputs): per channel a softmax over positions (tau 1),
#   KL(teacher || student) times tau^2, averaged over images and channels
#   (ChannelWiseDivergence), weight 10 per level -- MMRazor's CWD FPN configs. Both FPNs are 256
#   wide, so there is no projector.
_base_ = ['../_base_/distill/fcos_r101-r50-caffe_fpn_gn-head_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10.0))))
