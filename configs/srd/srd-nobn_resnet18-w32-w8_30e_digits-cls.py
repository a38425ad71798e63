# Ablation of srd_resnet18-w32-w8_30e_digits-cls.py: no normalisation (projector + log-sum).
_base_ = ['./srd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(feat=dict(connector=dict(norm=None))))
