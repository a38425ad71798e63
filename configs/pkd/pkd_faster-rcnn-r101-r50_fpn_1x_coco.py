# PKD ("PKD: General Distillation Framework for Object Detectors via Pearson Correlation
# Coefficient", arXiv:2207.02039) on COCO2017: Faster R-CNN R-101 (teacher) -> R-50
# (student), 1x schedule.
#
# * FPN P2-P5 (`neck` outputs 0-3, as MMRazor's Faster R-CNN PKD config; the max-pooled P6 is
#   left out): each level standardised per channel, then MSE / 2 (PKDLoss), weight 6 per level
#   (MMRazor's value for Faster R-CNN). Both FPNs are 256 wide, so there is no projector.
# * No logit term: the RoI head's logits of two detectors are computed on different proposals
#   (each model's own RPN), so they are not paired sample by sample.
_base_ = ['../_base_/distill/faster-rcnn_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            mapper=dict(type='ExplicitMapper', pairs=[[0, 0], [1, 1], [2, 2], [3, 3]]),
            loss=dict(type='PKDLoss', loss_weight=6.0))))
