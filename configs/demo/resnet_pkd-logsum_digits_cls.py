# Seed 001 on the digits classification set: logit KD (tau 1, weight 1) plus the pooled vector
# (`neck`, GlobalAveragePooling) matched through a bias-free Linear projector (64 -> 256),
# affine-free BatchNorm on both sides and the log-sum distance (alpha 4, weight 2).
# Train the teacher first: python tools/train.py configs/demo/resnet_teacher_digits_cls.py
_base_ = [
    '../_base_/models/digits_classifiers.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.resnet_student}},
    teacher={{_base_.resnet_teacher}},
    teacher_ckpt='work_dirs/resnet_teacher_digits_cls/epoch_30.pth',
    probe_size=(32, 32),
    distill=[
        dict(name='logits', student='head.fc', teacher='head.fc',
             loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
        dict(name='feat', student='neck', teacher='neck',
             connector=dict(projector='linear', norm='batchnorm'),
             loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
    ])
