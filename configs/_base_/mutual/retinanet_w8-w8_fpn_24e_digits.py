# Two digits RetinaNets, ResNet-18 at base width 8 with FPN 32 (0.28 M parameters each), trained
# together for 24 epochs on the digits detection set, each with its own AdamW (the schedule of
# configs/baselines/retinanet_r18-w8_fpn_24e_digits.py): everything a mutual-learning config of
# this pair shares. Both are evaluated: net1/coco/bbox_mAP and net2/coco/bbox_mAP.
_base_ = [
    '../models/digits_retinanet.py', '../datasets/digits_detection.py',
    '../schedules/digits_adamw.py', '../digits_runtime.py'
]
model = dict(
    type='kd_det.MutualDistiller',
    net1={{_base_.retinanet_student}},
    net2={{_base_.retinanet_student}})
optim_wrapper = dict(constructor='kd_det.MutualOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='kd_det.MutualMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
