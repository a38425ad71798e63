# The student classifier alone on the digits classification set: CIFAR-style ResNet-18 at base
# width 8 (176 k parameters), AdamW, 30 epochs.
_base_ = [
    '../_base_/models/digits_classifiers.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = {{_base_.resnet_student}}
