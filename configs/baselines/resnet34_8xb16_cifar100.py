# The CIFAR-100 teacher: mmpretrain's CIFAR ResNet-34 with a 100-class head, trained with
# mmpretrain's CIFAR-100 recipe (as resnet18_8xb16_cifar100.py). mmpretrain publishes no
# CIFAR-100 ResNet-34 checkpoint; train it first:
#   python tools/train.py configs/baselines/resnet34_8xb16_cifar100.py
# and copy work_dirs/resnet34_8xb16_cifar100/epoch_200.pth to checkpoints/resnet34_8xb16_cifar100.pth
_base_ = ['mmpretrain::resnet/resnet50_8xb16_cifar100.py']
model = dict(
    backbone=dict(depth=34),
    head=dict(num_classes=100, in_channels=512))
