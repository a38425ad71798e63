# Ablation of resnet_pkd-logsum_digits_cls.py: "no projector". The student's pooled vector is 64
# wide and the teacher's 256, so an identity projector cannot connect them, and widening the
# student's layer would change the student itself. Instead the projector stays at its random
# initialisation (seeded by randomness.seed): lr_mult=0 gives its parameters lr 0, and AdamW's
# decoupled weight decay is scaled by lr, so they never change. What is removed is exactly what
# seed 001 credits the projector with: learning the student-teacher cross-correlation.
_base_ = ['./resnet_pkd-logsum_digits_cls.py']
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'student_connectors': dict(lr_mult=0.0, decay_mult=0.0)}))
