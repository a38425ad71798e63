# Logit KD on the digits classifiers at temperature 4 (KL scaled by tau^2, weight 1).
_base_ = ['./kd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(logits=dict(loss=dict(tau=4.0))))
