# IE-DML with the weighting of the authors' released code (λ_inh = λ_exp = 1) instead of the
# paper's 50 / 50: at 50 the two digits networks of iedml_resnet18-w8-w8_30e_digits-cls.py lose their
# task (the inheritance/exploration terms outweigh it); see docs/inherit_explore.md.
_base_ = ['./iedml_resnet18-w8-w8_30e_digits-cls.py']
model = dict(distill=dict(ie=dict(loss=dict(weighting='code'))))
