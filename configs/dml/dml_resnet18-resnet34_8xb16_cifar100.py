# Deep mutual learning ("Deep Mutual Learning", arXiv:1706.00384) on CIFAR-100: CIFAR ResNet-18
# (net1) and ResNet-34 (net2), mmpretrain's CIFAR-100 recipe each, trained together; each learns
# from the labels and from the other's softmax, KL(p_other || p_self) at tau 1, weight 1.
_base_ = ['../_base_/mutual/resnet18-resnet34_8xb16_cifar100.py']
model = dict(
    distill=dict(
        logits=dict(
            net1='head.fc',
            net2='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0))))
