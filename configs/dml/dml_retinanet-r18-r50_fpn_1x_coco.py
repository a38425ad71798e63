# Deep mutual learning ("Deep Mutual Learning", arXiv:1706.00384) on COCO2017: RetinaNet R-18
# (net1) and R-50 (net2), mmdet's 1x recipes, trained together with the sigmoid KD of
# dml_retinanet-r50-r50_fpn_1x_coco.py on the per-level classification logits.
_base_ = ['../_base_/mutual/retinanet_r18-r50_fpn_1x_coco.py']
model = dict(
    distill=dict(
        logits=dict(
            net1='bbox_head.retina_cls',
            net2='bbox_head.retina_cls',
            loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0))))
