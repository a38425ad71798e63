# IE-KD on the digits RetinaNets with the random split: the inheritance and exploration halves
# of each FPN level take the student's channels in the order of a fixed permutation drawn from
# seed 0 (kept in the checkpoint). Everything else as iekd_retinanet-w32-w8_fpn_24e_digits.py.
_base_ = ['./iekd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(ie=dict(connector=dict(split='random', seed=0))))
