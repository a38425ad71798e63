# The student detector alone on the digits set: RetinaNet, ResNet-18 at base width 8, FPN 32
# (0.28 M parameters), AdamW, 24 epochs.
_base_ = [
    '../_base_/models/digits_retinanet.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = {{_base_.retinanet_student}}
