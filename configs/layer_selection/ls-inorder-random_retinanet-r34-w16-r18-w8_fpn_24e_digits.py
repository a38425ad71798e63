# Layer-selection study on the digits detection set: in-order random matching, a random sorted subset of 8 of the 16 teacher blocks (the study sets the mapper's seed to the run's seed).
# Everything else as the forward config it inherits (sigmoid KD + per-pair adapter MSE).
_base_ = ['./ls-forward_retinanet-r34-w16-r18-w8_fpn_24e_digits.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='InOrderRandomMapper', seed=0))))
