# Ablation of srd_retinanet-w32-w8_fpn_24e_digits.py: no normalisation (projector + log-sum).
_base_ = ['./srd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(fpn=dict(connector=dict(norm=None))))
