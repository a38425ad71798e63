# Logit KD alone with seed 001's setting (KL at tau 1, weight 1): the logit term of
# resnet_pkd-logsum_digits_cls.py without its feature term. (resnet_logitkd_digits_cls.py is
# the Hinton-style tau 4 variant.)
_base_ = ['./resnet_pkd-logsum_digits_cls.py']
model = dict(distill=[
    dict(name='logits', student='head.fc', teacher='head.fc',
         loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
])
