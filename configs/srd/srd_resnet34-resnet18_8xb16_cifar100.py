# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on CIFAR-100: CIFAR ResNet-34 (teacher) -> CIFAR ResNet-18 (student),
# mmpretrain's CIFAR-100 recipe (200 epochs, SGD lr 0.1; data under data/cifar100/).
#
# * Logits (`head.fc`): KL divergence at tau 1, weight 1.
# * Pooled vector (`neck`, GlobalAveragePooling, 512-d on both): bias-free nn.Linear projector,
#   affine-free BatchNorm1d on both sides, log-sum distance (alpha 4, weight 2).
_base_ = ['../_base_/distill/resnet34-resnet18_8xb16_cifar100.py']

model = dict(
    distill=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
        feat=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='ProjectNorm',
                projector=dict(type='LinearProjector'),
                norm=dict(type='AffineFreeBN')),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0))))
