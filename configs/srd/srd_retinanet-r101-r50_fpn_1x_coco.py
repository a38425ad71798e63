# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on COCO2017: RetinaNet R-101 (teacher) -> R-50 (student), 1x schedule.
#
# * FPN P3-P7 (the `neck` outputs, one layer per level): bias-free 1x1-conv projector (256 ->
#   256), affine-free BatchNorm on both sides, log-sum distance (alpha 4, weight 2 per level).
# * Classification logits (`bbox_head.retina_cls`, one layer per level, the same 9 anchors x 80
#   classes on both): sigmoid KD (the chi-mixed binary cross-entropy at chi 1, tau 1, weight 1).
_base_ = ['../_base_/distill/retinanet_r101-r50_fpn_1x_coco.py']

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
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, chi=1.0, loss_weight=1.0))))
