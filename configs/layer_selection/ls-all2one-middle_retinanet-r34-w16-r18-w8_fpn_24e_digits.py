# Layer-selection study on the digits detection set: all-to-one matching to a middle teacher block, index 7 of 0-15 (layer3.0).
# Everything else as the forward config it inherits (sigmoid KD + per-pair adapter MSE).
_base_ = ['./ls-forward_retinanet-r34-w16-r18-w8_fpn_24e_digits.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='AllToOneMapper', teacher_index=7))))
