# Layer-selection study on the digits classification set: all-to-one matching to a middle teacher block, index 7 of 0-15 (layer3.0).
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='AllToOneMapper', teacher_index=7))))
