# CWD ("Channel-wise Knowledge Distillation for Dense Prediction", arXiv:2011.13256) on the
# digits detection set: the narrow RetinaNet (ResNet-18 at base width 8, FPN 32) learns from the
# wide one (width 32, FPN 96) on its three FPN levels. CWD pairs channels one to one, so the
# student's 32 channels go through a bias-free 1x1-conv projector (32 -> 96) first, as the paper
# does for mismatched widths; then per channel a softmax over positions (tau 1) and
# KL(teacher || student), weight 10 per level (MMRazor's CWD FPN configs). No logit term.
_base_ = ['../_base_/distill/retinanet_w32-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        fpn=dict(
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector')),
            loss=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10.0))))
