# Layer-selection study on the digits classification set: all-to-one matching to the deepest teacher block, index 15 of 0-15 (layer4.2).
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='AllToOneMapper', teacher_index=15))))
