# RetinaNet R-18 (net1) and R-50 (net2) trained together on COCO2017, 1x schedule: everything a
# mutual-learning config of this pair shares (see retinanet_r50-r50_fpn_1x_coco.py). Both
# networks keep mmdet's data preprocessor, FPN width (256) and head, so their per-level
# classification logits match element by element; each has its own SGD optimizer (lr 0.01,
# momentum 0.9, weight decay 1e-4, the setting of both mmdet recipes).
_base_ = ['./retinanet_r50-r50_fpn_1x_coco.py']

model = dict(net1=dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'))
