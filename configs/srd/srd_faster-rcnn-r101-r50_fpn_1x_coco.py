# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017, feature distillation only: Faster R-CNN R-101 (teacher) -> R-50
# (student), 1x schedule.
#
# * FPN P2-P6 (`neck` outputs): bias-free 1x1-conv projector (256 -> 256), affine-free
#   BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * No logit term: the RoI head's logits of two detectors are computed on different proposals
#   (each model's own RPN), so they are not paired sample by sample.
_base_ = ['../_base_/distill/faster-rcnn_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))))
