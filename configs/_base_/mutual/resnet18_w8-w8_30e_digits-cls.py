# Two digits classifiers, CIFAR-style ResNet-18 at base width 8 (176 k parameters each), trained
# together for 30 epochs on the digits classification set, each with its own AdamW (the schedule
# of configs/baselines/resnet18-w8_30e_digits-cls.py): everything a mutual-learning config of
# this pair shares. Both are evaluated: net1/accuracy/top1 and net2/accuracy/top1.
_base_ = [
    '../models/digits_classifiers.py', '../datasets/digits_classification.py',
    '../schedules/digits_cls_adamw.py', '../digits_cls_runtime.py'
]
model = dict(
    type='kd_det.MutualDistiller',
    net1={{_base_.resnet_student}},
    net2={{_base_.resnet_student}},
    probe_size=(32, 32))
optim_wrapper = dict(constructor='kd_det.MutualOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='kd_det.MutualMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
