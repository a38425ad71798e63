# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on ImageNet-1k: ResNet-34 (teacher) -> ResNet-18 (student), mmpretrain's
# 8xb32 recipe (100 epochs, SGD lr 0.1, data under data/imagenet/). The paper reports
# 71.6-71.9 top-1 for this pair against a 69.8 baseline (mmpretrain's R-18: 69.90).
#
# * Logits (`head.fc`): KL divergence at tau 1, weight 1.
# * Pooled vector (`neck`, GlobalAveragePooling, 512-d on both): bias-free nn.Linear projector,
#   affine-free BatchNorm1d on both sides, log-sum distance (alpha 4, weight 2).
_base_ = ['../_base_/distill/resnet34-resnet18_8xb32_in1k.py']

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
