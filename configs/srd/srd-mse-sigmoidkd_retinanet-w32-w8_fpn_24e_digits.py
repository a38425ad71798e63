# The best FPN term of the digits RetinaNet sweep (projector + affine-free BatchNorm + MSE, the
# recipe of `make demo`) together with sigmoid KD normalised by the teacher's summed confidence
# (weight 1, as configs/kd/sigmoidkd-teachersum_retinanet-w32-w8_fpn_24e_digits.py).
_base_ = ['./srd-mse_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(cls=dict(loss=dict(normalize='teacher_sum'))))
