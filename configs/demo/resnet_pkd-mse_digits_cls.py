# Ablation of resnet_pkd-logsum_digits_cls.py: the mean (MSE, weight 2) instead of the log-sum
# soft maximum (projector + BatchNorm + MSE).
_base_ = ['./resnet_pkd-logsum_digits_cls.py']
model = dict(distill=[
    dict(name='logits', student='head.fc', teacher='head.fc',
         loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
    dict(name='feat', student='neck', teacher='neck',
         connector=dict(projector='linear', norm='batchnorm'),
         loss=dict(type='MSEFeatureLoss', loss_weight=2.0)),
])
