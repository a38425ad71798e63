# SRD on the digits detection set: the narrow RetinaNet (ResNet-18 at base width 8, FPN 32)
# learns from the wide one (width 32, FPN 96) on its three FPN levels through a bias-free 1x1-conv
# projector (32 -> 96), affine-free BatchNorm on both sides and the log-sum distance (alpha 4,
# weight 2 per level), plus sigmoid KD on the per-level classification logits (tau 1, the mean
# over every anchor and class).
_base_ = ['../_base_/distill/retinanet_w32-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        fpn=dict(
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
        # normalize='mean' (a mean over every anchor x class) is what the results of
        # configs/srd/README.md were measured with
        cls=dict(
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0, normalize='mean'))))
