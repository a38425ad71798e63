# Layer-selection study on the digits detection set: all-to-one matching to a shallow teacher block, index 2 of 0-15 (layer1.2, the end of stage 1).
# Everything else as the forward config it inherits (sigmoid KD + per-pair adapter MSE).
_base_ = ['./ls-forward_retinanet-r34-w16-r18-w8_fpn_24e_digits.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='AllToOneMapper', teacher_index=2))))
