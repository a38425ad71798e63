# IE-KD ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on the digits RetinaNets, natural split, on the three FPN levels
# (`neck.fpn_convs.*`): each student level (32 channels) is split into halves of 16, each half
# encoded to a 16-channel factor by an encoder trained with the student (one pair of encoders
# per level), the teacher's level (96 channels) by the frozen encoder of the auto-encoder stage
# (iekd-ae_retinanet-w32_fpn_5e_digits.py, one auto-encoder shared by the three levels), and
#   L_inh = mean |n(F_inh) - n(F_T)|,  L_exp = -mean |n(F_exp) - n(F_T)|,  n(x) = x / ||x||_2
# weighted 50 each (the paper's weighting), per level. It keeps the sigmoid KD term of
# kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py (tau 1, weight 1, normalize='mean').
# Train the teacher, then its auto-encoder:
#   python tools/train.py configs/baselines/retinanet_r18-w32_fpn_24e_digits.py
#   python tools/train.py configs/iekd/iekd-ae_retinanet-w32_fpn_5e_digits.py
_base_ = ['../kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        ie=dict(
            student='neck.fpn_convs.*',
            teacher='neck.fpn_convs.*',
            connector=dict(
                type='InheritExploreConnector',
                split='natural',
                ratio=0.5,
                teacher_encoder=dict(
                    checkpoint='work_dirs/iekd-ae_retinanet-w32_fpn_5e_digits/epoch_5.pth')),
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
