# IE-DML ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on CIFAR-100: configs/dml/dml_resnet18-resnet34_8xb16_cifar100.py (KL between
# the two softmaxes) plus the inheritance/exploration split on both networks' last feature map
# (`backbone.layer4`, 512 x 4 x 4). Per network: an auto-encoder 512 -> 256 (the paper's
# factor of half the width), trained jointly with a mean-L1 reconstruction loss, a natural
# 256 + 256 split and two encoders; each network inherits from and explores away from its
# partner's factor; the paper's weights 50 / 50.
_base_ = ['../dml/dml_resnet18-resnet34_8xb16_cifar100.py']
model = dict(
    distill=dict(
        ie=dict(
            net1='backbone.layer4',
            net2='backbone.layer4',
            split='natural',
            ratio=0.5,
            factor_channels=256,
            recon='l1',
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
