# ResNet-34 (teacher) -> ResNet-18 (student) on ImageNet-1k, mmpretrain's 8xb32 recipe (100
# epochs, SGD lr 0.1, data under data/imagenet/): everything a distillation config of this pair
# shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/resnet34-resnet18_8xb32_in1k.py']
#   model = dict(distill=dict(logits=dict(student='head.fc', teacher='head.fc', loss=dict(...))))
#
# Teacher checkpoint (mmpretrain's R-34, 73.62 top-1; the student alone is 69.90); download it
# first:
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
    probe_size=(64, 64))
# The Runner would otherwise hand the top-level preprocessor to the distiller, which refuses it.
data_preprocessor = None
