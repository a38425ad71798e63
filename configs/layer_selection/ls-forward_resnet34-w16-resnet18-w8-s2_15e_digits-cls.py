# Layer-selection study on the digits classification set, forward matching ("Revisiting
# Intermediate-Layer Matching in Knowledge Distillation: Layer-Selection Strategy Doesn't Matter
# (Much)", Yu, Wen & Mou, arXiv:2502.04499). Student: CIFAR-style ResNet-18 at base width 8
# (8 residual blocks); teacher: ResNet-34 at base width 16 (16 blocks); both with a strided first
# stage (see _base_/digits_cls_teacher.py). Losses, the same for every strategy:
#   logits: softmax KL at tau 1, weight 1, on head.fc;
#   hidden: each student block `backbone.layer*.*` matched to the teacher block the mapper picks,
#           through a learned bias-free 1x1-conv adapter (student width -> teacher width), the
#           teacher map resized bilinearly to the student's size, mean squared error at weight
#           1/8 per pair (the 8 pairs sum to weight 1).
# The other strategies inherit this file and change only `model.distill.hidden.mapper` (none
# removes the hidden term). AdamW lr 2e-3, cosine, 15 epochs.
# Train the teacher first:
#   python tools/train.py configs/layer_selection/resnet34-w16-s2_30e_digits-cls.py
_base_ = [
    './_base_/digits_cls_teacher.py', '../_base_/datasets/digits_classification.py',
    '../_base_/schedules/digits_cls_adamw.py', '../_base_/digits_cls_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.ls_cls_student}},
    teacher={{_base_.ls_cls_teacher}},
    teacher_ckpt='work_dirs/resnet34-w16-s2_30e_digits-cls/epoch_30.pth',
    probe_size=(32, 32),
    distill=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
        hidden=dict(
            student='backbone.layer*.*',
            teacher='backbone.layer*.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector')),
            loss=dict(type='MSEFeatureLoss', loss_weight=0.125))))
max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
