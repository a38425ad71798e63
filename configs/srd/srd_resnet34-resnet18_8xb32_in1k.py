# SRD ("Understanding the Role of the Projector in Knowledge Distillation",
# arXiv:2303.11098) on ImageNet-1k: ResNet-34 (teacher) -> ResNet-18 (student), mmpretrain's
# 8xb32 recipe (100 epochs, SGD lr 0.1, data under data/imagenet/). The paper reports
# 71.6-71.9 top-1 for this pair against a 69.8 baseline (mmpretrain's R-18: 69.90).
#
# * Logits (`head.fc`): KL divergence at tau 1, weight 1.
# * Pooled vector (`neck`, GlobalAveragePooling, 512-d on both): bias-free nn.Linear projector,
#   affine-free BatchNorm1d on both sides, log-sum distance (alpha 4, weight 2).
#
# Teacher checkpoint (mmpretrain's R-34, 73.62 top-1); download it first:
#   mkdir -p checkpoints && wget -P checkpoints https://download.openmmlab.com/mmclassification/v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.SingleTeacherDistiller',
    # mmpretrain keeps the data preprocessor at the top level of its configs; the distiller
    # takes the student's, so it moves into the student (and is removed at the top level below).
    student=dict(
        cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py',
        data_preprocessor={{_base_.data_preprocessor}}),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
    teacher_ckpt='checkpoints/resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    probe_size=(64, 64),
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
# The Runner would otherwise hand the top-level preprocessor to the distiller, which refuses it.
data_preprocessor = None
