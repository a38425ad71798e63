# Ablation of retinanet_pkd-logsum_digits.py: the mean (MSE, weight 2 per level) instead of the
# log-sum soft maximum (projector + BatchNorm + MSE).
_base_ = ['./retinanet_pkd-logsum_digits.py']
model = dict(distill=[
    dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
         mapper=dict(type='ForwardMapper'),
         connector=dict(projector='linear', norm='batchnorm'),
         loss=dict(type='MSEFeatureLoss', loss_weight=2.0)),
    dict(name='cls', student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
         loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0)),
])
