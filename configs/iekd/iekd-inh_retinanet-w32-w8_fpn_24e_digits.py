# IE-KD on the digits RetinaNets, inheritance only: the exploration loss is dropped
# (exp_weight=0), so the exploration halves learn from the task and sigmoid KD losses alone.
# Everything else (natural split, encoders, L_inh at weight 50 per level) as
# iekd_retinanet-w32-w8_fpn_24e_digits.py.
_base_ = ['./iekd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(ie=dict(loss=dict(exp_weight=0.0))))
