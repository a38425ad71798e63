# SRD on the digits classification set: logit KD (tau 1, weight 1) plus the pooled vector
# (`neck`, GlobalAveragePooling) matched through a bias-free Linear projector (64 -> 256),
# affine-free BatchNorm on both sides and the log-sum distance (alpha 4, weight 2).
_base_ = ['../_base_/distill/resnet18_w32-w8_30e_digits-cls.py']
model = dict(
    distill=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
        feat=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))))
