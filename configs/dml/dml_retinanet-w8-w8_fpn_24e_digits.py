# Deep mutual learning ("Deep Mutual Learning", arXiv:1706.00384) of two digits RetinaNets,
# ResNet-18 at base width 8 with FPN 32, 24 epochs: each network's classification logits
# (`bbox_head.retina_cls`, one layer per FPN level) learn the other's sigmoid scores with the
# sigmoid KD of dense heads (binary cross-entropy to the partner's scores, tau 1, weight 1,
# normalised by the partner's summed confidence), next to each network's own focal and box
# losses.
_base_ = ['../_base_/mutual/retinanet_w8-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        logits=dict(
            net1='bbox_head.retina_cls',
            net2='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0))))
