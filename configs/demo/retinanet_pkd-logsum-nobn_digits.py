# Ablation of retinanet_pkd-logsum_digits.py: no normalisation (projector + log-sum).
_base_ = ['./retinanet_pkd-logsum_digits.py']
model = dict(distill=[
    dict(name='fpn', student='neck.fpn_convs.*', teacher='neck.fpn_convs.*',
         mapper=dict(type='ForwardMapper'),
         connector=dict(projector='linear', norm='none'),
         loss=dict(type='LogSumLoss', alpha=4.0, loss_weight=2.0)),
    dict(name='cls', student='bbox_head.retina_cls', teacher='bbox_head.retina_cls',
         loss=dict(type='SigmoidKDLoss', tau=1.0, loss_weight=1.0)),
])
