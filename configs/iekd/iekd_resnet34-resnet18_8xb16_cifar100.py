# IE-KD ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on CIFAR-100: CIFAR ResNet-34 (teacher) -> CIFAR ResNet-18 (student),
# mmpretrain's CIFAR-100 recipe (200 epochs, SGD lr 0.1; data under data/cifar100/).
#
# * Last feature map (`backbone.layer4`, 512 x 4 x 4 on both): the student's is split by channel
#   into halves of 256 (natural split); each half is encoded to a 256-channel factor by an
#   encoder trained with the student, the teacher's by the frozen encoder of
#   iekd-ae_resnet34_30e_cifar100.py, and
#   L_inh = mean |n(F_inh) - n(F_T)|, L_exp = -mean |n(F_exp) - n(F_T)|, n(x) = x / ||x||_2,
#   weighted 50 each (the paper's weighting).
# * Logits (`head.fc`): KL divergence at tau 1, weight 1.
# Train the auto-encoder stage first:
#   python tools/train.py configs/iekd/iekd-ae_resnet34_30e_cifar100.py
_base_ = ['../_base_/distill/resnet34-resnet18_8xb16_cifar100.py']

model = dict(
    distill=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0)),
        ie=dict(
            student='backbone.layer4',
            teacher='backbone.layer4',
            connector=dict(
                type='InheritExploreConnector',
                split='natural',
                ratio=0.5,
                teacher_encoder=dict(
                    checkpoint='work_dirs/iekd-ae_resnet34_30e_cifar100/epoch_30.pth')),
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
