# CIFAR ResNet-18 (net1) and CIFAR ResNet-34 (net2) trained together on CIFAR-100 with
# mmpretrain's CIFAR-100 recipe (200 epochs, SGD lr 0.1, weight decay 5e-4; data under
# data/cifar100/): everything a mutual-learning config of this pair shares. A method config
# inherits it and adds its terms only:
#   _base_ = ['../_base_/mutual/resnet18-resnet34_8xb16_cifar100.py']
#   model = dict(distill=dict(logits=dict(net1='head.fc', net2='head.fc', loss=dict(...))))
_base_ = ['mmpretrain::resnet/resnet50_8xb16_cifar100.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

_head = dict(num_classes=100, in_channels=512)
model = dict(
    _delete_=True,
    type='kd_det.MutualDistiller',
    # mmpretrain keeps the data preprocessor at the top level of its configs; the networks
    # take it (the distiller uses net1's and checks that net2's is the same), and the
    # top-level one is removed below
    net1=dict(
        cfg_path='mmpretrain::resnet/resnet18_8xb16_cifar10.py',
        head=_head,
        data_preprocessor={{_base_.data_preprocessor}}),
    net2=dict(
        cfg_path='mmpretrain::resnet/resnet34_8xb16_cifar10.py',
        head=_head,
        data_preprocessor={{_base_.data_preprocessor}}),
    probe_size=(32, 32))
# The Runner would otherwise hand the top-level preprocessor to the distiller, which refuses it.
data_preprocessor = None
# one optimizer per network, both with the recipe's settings above
optim_wrapper = dict(constructor='kd_det.MutualOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='kd_det.MutualMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
