# Two RetinaNet R-50 trained together on COCO2017, 1x schedule: everything a mutual-learning
# config of this pair shares. A method config inherits it and adds its terms only:
#   _base_ = ['../_base_/mutual/retinanet_r50-r50_fpn_1x_coco.py']
#   model = dict(distill=dict(logits=dict(net1='bbox_head.retina_cls', ...)))
#
# Data, evaluation, schedule and runtime are mmdet's R-50 1x recipe (data under data/coco/);
# each network has its own SGD optimizer with the recipe's settings (lr 0.01, momentum 0.9,
# weight decay 1e-4) and both are evaluated: net1/coco/bbox_mAP and net2/coco/bbox_mAP.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['kd_det'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='kd_det.MutualDistiller',
    net1=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    net2=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'))
# one optimizer per network, both with the recipe's settings above
optim_wrapper = dict(constructor='kd_det.MutualOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='kd_det.MutualMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
