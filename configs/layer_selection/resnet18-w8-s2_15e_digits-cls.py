# The student of the layer-selection study alone on the digits classification set: CIFAR-style
# ResNet-18 at base width 8 with a strided first stage (8 residual blocks, widths 8/16/32/64,
# maps 16/8/4/2 px), AdamW, 15 epochs: the study's schedule.
_base_ = [
    './_base_/digits_cls_teacher.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = {{_base_.ls_cls_student}}
max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
