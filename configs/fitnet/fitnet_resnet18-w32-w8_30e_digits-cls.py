# FitNet hint on the pooled vector of the digits classifiers: a bias-free Linear projector
# (64 -> 256), no normalisation, mean squared error (weight 2, as the SRD term it is compared
# with), plus the same logit KD (tau 1) as the SRD config it inherits.
_base_ = ['../srd/srd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(
    distill=dict(
        feat=dict(
            connector=dict(norm=None),
            loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
