# Teacher of the layer-selection study on the digits classification set: CIFAR-style ResNet-34
# at base width 16 with a strided first stage (16 residual blocks `backbone.layer*.*`: 3, 4, 6, 3
# per stage, widths 16/32/64/128, maps 16/8/4/2 px), AdamW, 30 epochs.
_base_ = [
    './_base_/digits_cls_teacher.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = {{_base_.ls_cls_teacher}}
