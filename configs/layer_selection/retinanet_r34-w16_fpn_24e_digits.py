# Teacher of the layer-selection study on the digits detection set: RetinaNet with a ResNet-34 at
# base width 16 (16 residual blocks `backbone.layer*.*`: 3, 4, 6, 3 per stage, widths
# 16/32/64/128), FPN 64, AdamW, 24 epochs.
_base_ = [
    './_base_/digits_det_teacher.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = {{_base_.ls_det_teacher}}
