# Logit KD alone for the sigmoid head of the digits RetinaNets: the chi-mixed binary cross-entropy
# at chi 1 (pure distillation), tau 1, weight 1, on the three per-level outputs of
# bbox_head.retina_cls. It is the SRD config without its FPN term.
_base_ = ['../srd/srd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(fpn=None))
