# Layer-selection study on the digits detection set, forward matching ("Revisiting
# Intermediate-Layer Matching in Knowledge Distillation: Layer-Selection Strategy Doesn't Matter
# (Much)", Yu, Wen & Mou, arXiv:2502.04499). Student: the digits RetinaNet with a ResNet-18 at
# base width 8 (8 residual blocks, FPN 32); teacher: RetinaNet with a ResNet-34 at base width 16
# (16 blocks, FPN 64). Losses, the same for every strategy:
#   cls: sigmoid KD (chi 1, tau 1, mean over anchors and classes, weight 1) on the per-level
#        bbox_head.retina_cls logits;
#   hidden: each student block `backbone.layer*.*` matched to the teacher block the mapper picks,
#           through a learned bias-free 1x1-conv adapter (student width -> teacher width), the
#           teacher map resized bilinearly to the student's stride, mean squared error at
#           weight 1/8 per pair (the 8 pairs sum to weight 1).
# The other strategies inherit this file and change only `model.distill.hidden.mapper` (none
# removes the hidden term).
# Train the teacher first:
#   python tools/train.py configs/layer_selection/retinanet_r34-w16_fpn_24e_digits.py
_base_ = [
    './_base_/digits_det_teacher.py', '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/digits_adamw.py', '../_base_/digits_runtime.py'
]
model = dict(
    type='kd_det.SingleTeacherDistiller',
    student={{_base_.retinanet_student}},
    teacher={{_base_.ls_det_teacher}},
    teacher_ckpt='work_dirs/retinanet_r34-w16_fpn_24e_digits/epoch_24.pth',
    distill=dict(
        cls=dict(
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0, normalize='mean')),
        hidden=dict(
            student='backbone.layer*.*',
            teacher='backbone.layer*.*',
            mapper=dict(type='ForwardMapper'),
            connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector')),
            loss=dict(type='MSEFeatureLoss', loss_weight=0.125))))
