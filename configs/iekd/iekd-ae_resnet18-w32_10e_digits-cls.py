# IE-KD stage 1 on the digits classification set: an auto-encoder on the last feature map of the
# frozen teacher (CIFAR ResNet-18 at base width 32, `backbone.layer4`, 256 x 4 x 4 for a 32-px
# image), encoder and decoder each three bias-free 3x3 convs with BatchNorm and LeakyReLU(0.1),
# 256 -> 32 channels, mean L1 reconstruction loss; AdamW lr 2e-3, cosine, 10 epochs.
# Validation metric: recon/l1 (and recon/l2). The checkpoint holds the auto-encoder only.
# Train the teacher first:
#   python tools/train.py configs/baselines/resnet18-w32_30e_digits-cls.py
_base_ = [
    '../_base_/models/digits_classifiers.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = dict(
    type='kd_det.TeacherAutoEncoder',
    teacher={{_base_.resnet_teacher}},
    teacher_ckpt='work_dirs/resnet18-w32_30e_digits-cls/epoch_30.pth',
    autoencoders=dict(feat=dict(layers='backbone.layer4', factor_channels=32)),
    loss='l1',
    probe_size=(32, 32))
val_evaluator = dict(_delete_=True, type='kd_det.ReconstructionMetric')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=10, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, eta_min=1e-5),
]
