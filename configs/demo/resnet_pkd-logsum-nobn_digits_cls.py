# Ablation of resnet_pkd-logsum_digits_cls.py: no normalisation (projector + log-sum).
_base_ = ['./resnet_pkd-logsum_digits_cls.py']
model = dict(distill=[
    dict(name='logits', student='head.fc', teacher='head.fc',
         loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
    dict(name='feat', student='neck', teacher='neck',
         connector=dict(projector='linear', norm='none'),
         loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
])
