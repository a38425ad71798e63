# IE-KD on the digits classifiers with the random split: the inheritance and exploration halves
# take the student's channels in the order of a fixed permutation drawn from seed 0 (kept in the
# checkpoint). Everything else as iekd_resnet18-w32-w8_30e_digits-cls.py.
_base_ = ['./iekd_resnet18-w32-w8_30e_digits-cls.py']
model = dict(distill=dict(ie=dict(connector=dict(split='random', seed=0))))
