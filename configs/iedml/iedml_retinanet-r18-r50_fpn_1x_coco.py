# IE-DML ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) on COCO2017: configs/dml/dml_retinanet-r18-r50_fpn_1x_coco.py (sigmoid KD
# between the two heads' per-level logits) plus the inheritance/exploration split on both
# networks' FPN levels P3-P7 (`neck`, 256 channels each). Per network one auto-encoder
# (256 -> 32, trained jointly, mean-L1 reconstruction), one natural 128 + 128 split and two
# encoders, shared by the levels (they feed one shared head); each level inherits from and
# explores away from the partner's factor of the same level; the paper's weights 50 / 50.
_base_ = ['../dml/dml_retinanet-r18-r50_fpn_1x_coco.py']
model = dict(
    distill=dict(
        ie=dict(
            net1='neck',
            net2='neck',
            split='natural',
            ratio=0.5,
            factor_channels=32,
            recon='l1',
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
