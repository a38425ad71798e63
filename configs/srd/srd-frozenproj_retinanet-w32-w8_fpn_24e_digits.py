# Ablation of srd_retinanet-w32-w8_fpn_24e_digits.py: "no projector". The student's FPN is 32
# wide and the teacher's 96, so an identity projector cannot connect them, and widening the
# student's FPN would change the student (and its head) itself. Instead the 1x1-conv projectors
# stay at their random initialisation (seeded by randomness.seed): lr_mult=0 gives them lr 0, and
# AdamW's decoupled weight decay is scaled by lr, so they never change. What is removed is what
# arXiv:2303.11098 credits the projector with: learning the student-teacher cross-correlation.
_base_ = ['./srd_retinanet-w32-w8_fpn_24e_digits.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.projector.': dict(lr_mult=0.0, decay_mult=0.0)}))
