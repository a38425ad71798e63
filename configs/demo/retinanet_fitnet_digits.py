# FitNet-style hints on the FPN levels: 1x1-conv projector (32 -> 96), no normalisation, mean
# squared error (weight 2 per level, as the log-sum term it is compared with), plus the same
# sigmoid KD as retinanet_pkd-logsum_digits.py.
_base_ = ['./retinanet_pkd-logsum_digits.py']
model = dict(distill=[
    dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
         mapper=dict(type='ForwardMapper'),
         connector=dict(projector='linear', norm='none'),
         loss=dict(type='MSEFeatureLoss', loss_weight=2.0)),
    dict(name='cls', student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
         loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0)),
])
