# PKD ("PKD: General Distillation Framework for Object Detectors via Pearson Correlation
# Coefficient", arXiv:2207.02039) on COCO2017: GFL R-101 (teacher) -> R-50 (student), 1x
# schedule for the student.
#
# * FPN P3-P6 (`neck` outputs 0-3, as MMRazor's PKD configs; P7 is left out): each level
#   standardised per channel, then MSE / 2 (PKDLoss), weight 10 per level (MMRazor's value for
#   one-stage students). Both FPNs are 256 wide, so there is no projector.
_base_ = ['../_base_/distill/gfl_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            mapper=dict(type='ExplicitMapper', pairs=[[0, 0], [1, 1], [2, 2], [3, 3]]),
            loss=dict(type='PKDLoss', loss_weight=10.0))))
