# IE-KD ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on COCO2017: RetinaNet R-101 (teacher) -> R-50 (student), 1x schedule.
#
# * FPN P3-P7 (the `neck` outputs, one layer per level, 256 channels): the student's level is
#   split by channel into halves of 128 (natural split); each half is encoded to a 32-channel
#   factor by an encoder trained with the student (one pair per level), the teacher's level by
#   the frozen encoder of iekd-ae_retinanet-r101_fpn_2e_coco.py (shared by the levels), and
#   L_inh = mean |n(F_inh) - n(F_T)|, L_exp = -mean |n(F_exp) - n(F_T)|, n(x) = x / ||x||_2,
#   weighted 50 each (the paper's weighting) per level.
# * Classification logits (`bbox_head.retina_cls`, one layer per level): sigmoid KD (chi 1,
#   tau 1, weight 1), as the SRD config of this pair.
# Train the auto-encoder stage first:
#   python tools/train.py configs/iekd/iekd-ae_retinanet-r101_fpn_2e_coco.py
_base_ = ['../_base_/distill/retinanet_r101-r50_fpn_1x_coco.py']

model = dict(
    distill=dict(
        ie=dict(
            student='neck',
            teacher='neck',
            connector=dict(
                type='InheritExploreConnector',
                split='natural',
                ratio=0.5,
                teacher_encoder=dict(
                    checkpoint='work_dirs/iekd-ae_retinanet-r101_fpn_2e_coco/epoch_2.pth')),
            loss=dict(type='InheritExploreLoss', weighting='paper')),
        cls=dict(
            student='bbox_head.retina_cls',
            teacher='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, chi=1.0, loss_weight=1.0))))
