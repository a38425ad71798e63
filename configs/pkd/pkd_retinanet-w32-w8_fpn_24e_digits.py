# PKD ("PKD: General Distillation Framework for Object Detectors via Pearson Correlation
# Coefficient", arXiv:2207.02039) on the digits detection set: the narrow RetinaNet (ResNet-18 at
# base width 8, FPN 32) learns from the wide one (width 32, FPN 96) on its three FPN levels.
# PKD compares channels one to one, so the student's 32 channels go through a bias-free 1x1-conv
# projector (32 -> 96) first; each level is then standardised per channel and compared with
# MSE / 2 (PKDLoss, weight 10 per level, MMRazor's value for RetinaNet students). No logit term.
# Train the teacher first:
#   python tools/train.py configs/baselines/retinanet_r18-w32_fpn_24e_digits.py
_base_ = [
    '../_base_/models/digits_retinanet.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.retinanet_student}},
    teacher={{_base_.retinanet_teacher}},
    teacher_ckpt='work_dirs/retinanet_r18-w32_fpn_24e_digits/epoch_24.pth',
    distill=dict(
        fpn=dict(
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector')),
            loss=dict(type='PKDLoss', loss_weight=10.0))))
