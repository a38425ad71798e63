# The digits RetinaNets, ResNet-18 at base width 32 with FPN 96 (teacher) -> base width 8 with
# FPN 32 (student), AdamW, 24 epochs on the digits detection set: everything a distillation
# config of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/retinanet_w32-w8_fpn_24e_digits.py']
#   model = dict(distill=dict(fpn=dict(student='neck.fpn_convs.*', ...)))
# Train the teacher first:
#   python tools/train.py configs/baselines/retinanet_r18-w32_fpn_24e_digits.py
_base_ = [
    '../models/digits_retinanet.py', '../datasets/digits_detection.py',
    '../schedules/digits_adamw.py', '../digits_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.retinanet_student}},
    teacher={{_base_.retinanet_teacher}},
    teacher_ckpt='work_dirs/retinanet_r18-w32_fpn_24e_digits/epoch_24.pth')
