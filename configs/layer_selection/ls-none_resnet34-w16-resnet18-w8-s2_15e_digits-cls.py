# Layer-selection study on the digits classification set: no intermediate matching (logit KD only): the hidden term is removed.
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=None))
