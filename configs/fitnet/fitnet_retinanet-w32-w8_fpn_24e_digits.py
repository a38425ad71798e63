# FitNet hints on the FPN levels of the digits RetinaNets: a bias-free 1x1-conv projector
# (32 -> 96), no normalisation, mean squared error (weight 2 per level, as the SRD term it is
# compared with), plus the same sigmoid KD on the logits as the SRD config it inherits.
_base_ = ['../srd/srd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        fpn=dict(
            connector=dict(norm=None),
            loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
