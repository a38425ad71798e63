# SRD on the digits classification set: logit KD (tau 1, weight 1) plus the pooled vector
# (`neck`, GlobalAveragePooling) matched through a bias-free Linear projector (64 -> 256),
# affine-free BatchNorm on both sides and the log-sum distance (alpha 4, weight 2).
# Train the teacher first:
#   python tools/train.py configs/baselines/resnet18-w32_30e_digits-cls.py
_base_ = [
    '../_base_/models/digits_classifiers.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.resnet_student}},
    teacher={{_base_.resnet_teacher}},
    teacher_ckpt='work_dirs/resnet18-w32_30e_digits-cls/epoch_30.pth',
    probe_size=(32, 32),
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
