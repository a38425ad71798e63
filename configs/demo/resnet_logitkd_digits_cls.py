# Logit KD (KL at temperature 4, tau^2 scaling) from the wide classifier to the narrow one.
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
             loss=dict(type='LogitKDLoss', tau=4.0, loss_weight=1.0)),
    ])
