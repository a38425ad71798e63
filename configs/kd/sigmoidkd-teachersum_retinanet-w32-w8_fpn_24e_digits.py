# Sigmoid KD alone, normalised like the head's own focal loss: the binary cross-entropy to the
# teacher's scores summed over every anchor x class of a level and divided by the teacher's summed
# confidence there (normalize='teacher_sum', SigmoidKDLoss's default), tau 1, weight 1, beta 0.
# It is sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py with the normaliser of the dense-head fix.
_base_ = ['./sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py']
model = dict(distill=dict(cls=dict(loss=dict(normalize='teacher_sum'))))
