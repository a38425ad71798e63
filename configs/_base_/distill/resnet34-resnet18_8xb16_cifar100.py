# CIFAR ResNet-34 (teacher) -> CIFAR ResNet-18 (student) on CIFAR-100, mmpretrain's CIFAR-100
# recipe (200 epochs, SGD lr 0.1; data under data/cifar100/): everything a distillation config of
# this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/resnet34-resnet18_8xb16_cifar100.py']
#   model = dict(distill=dict(logits=dict(student='head.fc', teacher='head.fc', loss=dict(...))))
#
# Teacher: train configs/baselines/resnet34_8xb16_cifar100.py first (mmpretrain has no
# CIFAR-100 R-34 checkpoint) and copy its last checkpoint to the path below.
_base_ = ['mmpretrain::resnet/resnet50_8xb16_cifar100.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

_head = dict(num_classes=100, in_channels=512)
model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    # mmpretrain keeps the data preprocessor at the top level of its configs; the distiller
    # takes the student's, so it moves into the student (and is removed at the top level below).
    student=dict(
        cfg_path='mmpretrain::resnet/resnet18_8xb16_cifar10.py',
        head=_head,
        data_preprocessor={{_base_.data_preprocessor}}),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb16_cifar10.py', head=_head),
    teacher_ckpt='checkpoints/resnet34_8xb16_cifar100.pth',
    probe_size=(32, 32))
# The Runner would otherwise hand the top-level preprocessor to the distiller, which refuses it.
data_preprocessor = None
