# IE-KD on the digits classifiers, inheritance only: the exploration loss is dropped
# (exp_weight=0), so the exploration half learns from the task and logit KD losses alone.
# Everything else (natural split, encoders, L_inh at weight 50) as
# iekd_resnet18-w32-w8_30e_digits-cls.py.
_base_ = ['./iekd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(ie=dict(loss=dict(exp_weight=0.0))))
