# IE-KD stage 1 on the digits detection set: one auto-encoder shared by the three FPN levels of
# the frozen teacher (RetinaNet, ResNet-18 at base width 32, FPN 96: `neck.fpn_convs.*`, strides
# 8/16/32), encoder and decoder each three bias-free 3x3 convs with BatchNorm and
# LeakyReLU(0.1), 96 -> 16 channels, mean L1 reconstruction loss averaged over the levels;
# AdamW lr 1e-3, cosine, 5 epochs. Shared rather than one per level: the levels feed one shared
# head, so they live in one feature space, and a distill term builds its connector per level
# pair without knowing the level. Validation metric: recon/l1 (and recon/l2). The checkpoint
# holds the auto-encoder only.
# Train the teacher first:
#   python tools/train.py configs/baselines/retinanet_r18-w32_fpn_24e_digits.py
_base_ = [
    '../_base_/models/digits_retinanet.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = dict(
    type='kd_det.TeacherAutoEncoder',
    teacher={{_base_.retinanet_teacher}},
    teacher_ckpt='work_dirs/retinanet_r18-w32_fpn_24e_digits/epoch_24.pth',
    autoencoders=dict(fpn=dict(layers='neck.fpn_convs.*', factor_channels=16)),
    loss='l1')
val_evaluator = dict(_delete_=True, type='kd_det.ReconstructionMetric')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=5, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=5, eta_min=1e-5),
]
