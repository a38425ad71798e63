# Layer-selection study on the digits classification set: in-order random matching, a random sorted subset of 8 of the 16 teacher blocks (the study sets the mapper's seed to the run's seed).
# Everything else as the forward config it inherits (logit KD + per-pair adapter MSE).
_base_ = ['./ls-forward_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py']
model = dict(distill=dict(hidden=dict(mapper=dict(type='InOrderRandomMapper', seed=0))))
