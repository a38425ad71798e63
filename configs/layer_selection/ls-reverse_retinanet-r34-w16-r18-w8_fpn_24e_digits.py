# Layer-selection study on the digits detection set: reverse matching, the forward list reversed (student block 1 <-> teacher block 16, ...).
# Everything else as the forward config it inherits (sigmoid KD + per-pair adapter MSE).
_base_ = ['./ls-forward_retinanet-r34-w16-r18-w8_fpn_24e_digits.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='ReverseMapper'))))
