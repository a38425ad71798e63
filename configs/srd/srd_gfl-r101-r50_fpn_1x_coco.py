# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017: GFL R-101 (teacher) -> R-50 (student), 1x schedule for the student.
#
# * FPN P3-P7 (`neck` outputs): bias-free 1x1-conv projector (256 -> 256), affine-free
#   BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * Classification (quality) logits (`bbox_head.gfl_cls`, one anchor per location, 80 sigmoid
#   classes on both): sigmoid KD (chi 1, tau 1, weight 1). The DFL box distributions are left
#   to the student's own losses.
_base_ = ['../_base_/distill/gfl_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
        cls=dict(
            student='bbox_head.gfl_cls',
            teacher='bbox_head.gfl_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, chi=1.0, loss_weight=1.0))))
