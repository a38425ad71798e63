# IE-KD stage 1 on CIFAR-100: an auto-encoder on the last feature map of the frozen CIFAR
# ResNet-34 teacher (`backbone.layer4`, 512 x 4 x 4), encoder and decoder each three bias-free
# 3x3 convs with BatchNorm and LeakyReLU(0.1), 512 -> 256 channels (the paper's 64 -> 32 ratio),
# mean L1 reconstruction loss, 30 epochs as the authors' code trains it; SGD lr 0.1 (the
# recipe's optimizer), cosine. Validation metric: recon/l1 (and recon/l2). The checkpoint holds
# the auto-encoder only.
# Teacher: train configs/baselines/resnet34_8xb16_cifar100.py first and copy its last checkpoint
# to the path below (as configs/_base_/distill/resnet34-resnet18_8xb16_cifar100.py reads it).
_base_ = ['mmpretrain::resnet/resnet50_8xb16_cifar100.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.TeacherAutoEncoder',
    # mmpretrain keeps the data preprocessor at the top level of its configs; the auto-encoder
    # stage takes the teacher's, so it moves into the teacher (and is removed below).
    teacher=dict(
        cfg_path='mmpretrain::resnet/resnet34_8xb16_cifar10.py',
        head=dict(num_classes=100, in_channels=512),
        data_preprocessor={{_base_.data_preprocessor}}),
    teacher_ckpt='checkpoints/resnet34_8xb16_cifar100.pth',
    autoencoders=dict(feat=dict(layers='backbone.layer4', factor_channels=256)),
    loss='l1',
    probe_size=(32, 32))
data_preprocessor = None
val_evaluator = dict(_delete_=True, type='kd_det.ReconstructionMetric')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=30, val_interval=1)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=30)]
