# FitNet-style hint on the pooled vector: bias-free Linear projector (64 -> 256), no
# normalisation, mean squared error (weight 2, as the log-sum term it is compared with), plus the
# same logit KD (tau 1) as resnet_pkd-logsum_digits_cls.py.
_base_ = ['./resnet_pkd-logsum_digits_cls.py']
model = dict(distill=[
    dict(name='logits', student='head.fc', teacher='head.fc',
         loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
    dict(name='feat', student='neck', teacher='neck',
         connector=dict(projector='linear', norm='none'),
         loss=dict(type='MSEFeatureLoss', loss_weight=2.0)),
])
