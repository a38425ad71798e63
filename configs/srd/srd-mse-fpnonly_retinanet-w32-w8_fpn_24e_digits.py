# The recipe `make demo` distils with: srd-mse_retinanet-w32-w8_fpn_24e_digits.py without its
# logit term: a bias-free 1x1-conv projector (32 -> 96), affine-free BatchNorm on both sides and
# the mean squared error (weight 2) on the three FPN levels, nothing on the class logits.
_base_ = ['./srd-mse_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(cls=None))
