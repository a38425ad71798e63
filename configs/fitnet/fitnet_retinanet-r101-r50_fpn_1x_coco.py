# FitNet hints ("FitNets: Hints for Thin Deep Nets", arXiv:1412.6550) on COCO2017: RetinaNet
# R-101 (teacher) -> R-50 (student), 1x schedule. The SRD config it inherits with its feature
# term made plain: FPN P3-P7 through a bias-free 1x1-conv projector (256 -> 256), no
# normalisation, mean squared error (weight 2 per level); the sigmoid KD on the per-level
# logits stays. `--cfg-options model.distill.cls=None` leaves the hint term alone.
_base_ = ['../srd/srd_retinanet-r101-r50_fpn_1x_coco.py']
model = dict(
    distill=dict(
        fpn=dict(
            connector=dict(norm=None),
            loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
