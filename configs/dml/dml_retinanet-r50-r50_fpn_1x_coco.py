# Deep mutual learning ("Deep Mutual Learning", arXiv:1706.00384) on COCO2017: two RetinaNet
# R-50, mmdet's 1x recipe each, trained together. Each network's classification logits
# (`bbox_head.retina_cls`, one layer per FPN level, 9 anchors x 80 classes) learn the other's
# sigmoid scores: sigmoid KD (binary cross-entropy to the partner's detached scores, tau 1,
# weight 1), next to each network's focal and box losses.
_base_ = ['../_base_/mutual/retinanet_r50-r50_fpn_1x_coco.py']
model = dict(
    distill=dict(
        logits=dict(
            net1='bbox_head.retina_cls',
            net2='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0))))
