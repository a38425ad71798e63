# Layer-selection study on the digits classification set: reverse matching, the forward list reversed (student block 1 <-> teacher block 16, ...).
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='ReverseMapper'))))
