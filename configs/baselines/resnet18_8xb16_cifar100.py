# The student alone on CIFAR-100: mmpretrain's CIFAR ResNet-18 (3x3 stem, no max-pool) with a
# 100-class head, trained with mmpretrain's CIFAR-100 recipe (200 epochs, SGD lr 0.1, weight
# decay 5e-4, lr x0.2 at 60/120/160; data under data/cifar100/).
_base_ = ['mmpretrain::resnet/resnet50_8xb16_cifar100.py']
model = dict(
    backbone=dict(depth=18),
    head=dict(num_classes=100, in_channels=512))
