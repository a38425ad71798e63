# IE-DML ("Revisiting Knowledge Distillation: An Inheritance and Exploration Framework",
# arXiv:2107.00181) of two digits RetinaNets, ResNet-18 at base width 8 with FPN 32, 24 epochs:
# the DML config (sigmoid KD between the two heads' per-level logits) plus the
# inheritance/exploration split on both networks' FPN levels (`neck`, three levels of 32
# channels). Per network one auto-encoder (32 -> 16, trained jointly, mean-L1 reconstruction),
# one natural 16 + 16 split and two encoders, shared by the levels (they feed one shared head);
# each level inherits from and explores away from the partner's factor of the same level; the
# paper's weights 50 / 50, summed over the levels.
_base_ = ['../dml/dml_retinanet-w8-w8_fpn_24e_digits.py']
model = dict(
    distill=dict(
        ie=dict(
            net1='neck',
            net2='neck',
            split='natural',
            ratio=0.5,
            factor_channels=16,
            recon='l1',
            loss=dict(type='InheritExploreLoss', weighting='paper'))))
