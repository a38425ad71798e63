# Logit KD alone for the sigmoid head: seed 002's mixed BCE at chi 1 (pure distillation), tau 1,
# weight 1, on the three per-level outputs of bbox_head.retina_cls — the logit term of
# retinanet_pkd-logsum_digits.py without its FPN term.
_base_ = ['./retinanet_pkd-logsum_digits.py']
model = dict(distill=[
    dict(name='cls', student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
         loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0)),
])
