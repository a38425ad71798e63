# Ablation of srd_resnet18-w32-w8_30e_digits-cls.py: "no projector". The student's pooled vector
# is 64 wide and the teacher's 256, so an identity projector cannot connect them, and widening the
# student's layer would change the student itself. Instead the projector stays at its random
# initialisation (seeded by randomness.seed): lr_mult=0 gives its parameters lr 0, and AdamW's
# decoupled weight decay is scaled by lr, so they never change. What is removed is what
# arXiv:2303.11098 credits the projector with: learning the student-teacher cross-correlation.
_base_ = ['./srd_resnet18-w32-w8_30e_digits-cls.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.projector.': dict(lr_mult=0.0, decay_mult=0.0)}))
