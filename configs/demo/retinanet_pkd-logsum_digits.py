# Seed 001 on the digits set: the small RetinaNet learns from the wide one's FPN levels through
# a linear (1x1 conv) projector, affine-free BatchNorm on both sides and the log-sum distance,
# plus sigmoid KD on the classification logits. Train the teacher first:
#   python tools/train.py configs/demo/retinanet_teacher_digits.py
_base_ = [
    '../_base_/models/digits_retinanet.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.retinanet_student}},
    teacher={{_base_.retinanet_teacher}},
    teacher_ckpt='work_dirs/retinanet_teacher_digits/epoch_24.pth',
    distill=[
        dict(
            name='fpn',
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(projector='linear', norm='batchnorm'),
            loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
        dict(
            name='cls',
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0)),
    ])
