# PKD ("PKD: General Distillation Framework for Object Detectors via Pearson Correlation
# Coefficient", arXiv:2207.02039) on the digits detection set: the narrow RetinaNet (ResNet-18 at
# base width 8, FPN 32) learns from the wide one (width 32, FPN 96) on its three FPN levels.
# PKD compares channels one to one, so the student's 32 channels go through a bias-free 1x1-conv
# projector (32 -> 96) first; each level is then standardised per channel and compared with
# MSE / 2 (PKDLoss, weight 10 per level, MMRazor's value for RetinaNet students). No logit term.
_base_ = ['../_base_/distill/retinanet_w32-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        fpn=dict(
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector')),
            loss=dict(type='PKDLoss', loss_weight=10.0))))
