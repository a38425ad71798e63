# Layer-selection study on the digits classification set: all-to-one matching to a shallow teacher block, index 2 of 0-15 (layer1.2, the end of stage 1).
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='AllToOneMapper', teacher_index=2))))
