# Layer-selection study on the digits detection set: no intermediate matching (sigmoid KD only): the hidden term is removed.
# Everything else as the forward config it inherits (sigmoid KD + per-pair adapter MSE).
_base_ = ['./ls-forward_retinanet-r34-w16-r18-w8_fpn_24e_digits.py']
model = dict(distill=dict(hidden=None))
