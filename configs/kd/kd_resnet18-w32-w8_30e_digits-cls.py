# Logit KD alone on the digits classifiers, KL at tau 1, weight 1: the SRD config without its
# feature term (kd-tau4_resnet18-w32-w8_30e_digits-cls.py is the tau 4 variant).
_base_ = ['../srd/srd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(feat=None))
