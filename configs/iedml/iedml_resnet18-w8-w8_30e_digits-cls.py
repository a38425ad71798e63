# IE-DML ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) of two digits classifiers, CIFAR-style ResNet-18 at base width 8, 30 epochs:
# the DML config (KL between the two softmaxes) plus the inheritance/exploration split on both
# networks' last feature map (`backbone.layer4`, 64 x 4 x 4 for a 32-px image). Each network
# splits its map into halves (32 + 32 channels), encodes each with its own encoder (three
# bias-free 3x3 convs, BatchNorm, LeakyReLU 0.1) to a 32-channel factor, inherits from and
# explores away from its partner's factor (the partner's own auto-encoder, 64 -> 32, trained
# jointly with a mean-L1 reconstruction loss); the paper's weights 50 / 50.
_base_ = ['../dml/dml_resnet18-w8-w8_30e_digits-cls.py']
model = dict(
    distill=dict(
        ie=dict(
            net1='backbone.layer4',
            net2='backbone.layer4',
            split='natural',
            ratio=0.5,
            factor_channels=32,
            recon='l1',
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
