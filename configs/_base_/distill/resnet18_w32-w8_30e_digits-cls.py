# The digits classifiers, CIFAR-style ResNet-18 at base width 32 (teacher) -> base width 8
# (student), AdamW, 30 epochs on the digits classification set: everything a distillation config
# of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/distill/resnet18_w32-w8_30e_digits-cls.py']
#   model = dict(distill=dict(logits=dict(student='head.fc', teacher='head.fc', loss=dict(...))))
# Train the teacher first:
#   python tools/train.py configs/baselines/resnet18-w32_30e_digits-cls.py
_base_ = [
    '../models/digits_classifiers.py', '../datasets/digits_classification.py',
    '../schedules/digits_cls_adamw.py', '../digits_cls_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.resnet_student}},
    teacher={{_base_.resnet_teacher}},
    teacher_ckpt='work_dirs/resnet18-w32_30e_digits-cls/epoch_30.pth',
    probe_size=(32, 32))
