# Ablation of srd_resnet18-w32-w8_30e_digits-cls.py: the mean (MSE, weight 2) instead of the
# log-sum soft maximum (projector + BatchNorm + MSE).
_base_ = ['./srd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(feat=dict(loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
