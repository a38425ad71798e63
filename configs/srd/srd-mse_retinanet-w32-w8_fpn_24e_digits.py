# Ablation of srd_retinanet-w32-w8_fpn_24e_digits.py: the mean (MSE, weight 2 per level) instead
# of the log-sum soft maximum (projector + BatchNorm + MSE).
_base_ = ['./srd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(fpn=dict(loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
