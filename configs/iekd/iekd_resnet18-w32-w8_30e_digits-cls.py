# IE-KD ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on the digits classifiers, natural split: the student's last feature map
# (`backbone.layer4`, 64 x 4 x 4) is split by channel into halves; the first 32 channels
# (inheritance) and the last 32 (exploration) are each encoded to a 32-channel factor by an
# encoder trained with the student, the teacher's map (256 x 4 x 4) by the frozen encoder of the
# auto-encoder stage (iekd-ae_resnet18-w32_10e_digits-cls.py), and
#   L_inh = mean |n(F_inh) - n(F_T)|,  L_exp = -mean |n(F_exp) - n(F_T)|,  n(x) = x / ||x||_2
# weighted 50 each (the paper's weighting). It keeps the logit KD term of
# kd_resnet18-w32-w8_30e_digits-cls.py (tau 1, weight 1).
# Train the teacher, then its auto-encoder:
#   python tools/train.py configs/baselines/resnet18-w32_30e_digits-cls.py
#   python tools/train.py configs/iekd/iekd-ae_resnet18-w32_10e_digits-cls.py
_base_ = ['../kd/kd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(
    distill=dict(
        ie=dict(
            student='backbone.layer4',
            teacher='backbone.layer4',
            connector=dict(
                type='InheritExploreConnector',
                split='natural',
                ratio=0.5,
                teacher_encoder=dict(
                    checkpoint='work_dirs/iekd-ae_resnet18-w32_10e_digits-cls/epoch_10.pth')),
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
