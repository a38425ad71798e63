# Deep mutual learning ("Deep Mutual Learning", arXiv:1706.00384) of two digits classifiers,
# CIFAR-style ResNet-18 at base width 8, 30 epochs: each network learns from the labels and
# from the other's softmax, KL(p_other || p_self) at tau 1 with weight 1 (the paper's form).
_base_ = ['../_base_/mutual/resnet18_w8-w8_30e_digits-cls.py']
model = dict(
    distill=dict(
        logits=dict(
            net1='head.fc',
            net2='head.fc',
            loss=dict(type='LogitKDLoss', tau=1.0, loss_weight=1.0))))
