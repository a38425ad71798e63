"""IE-KD: "Revisiting Knowledge Distillation: An Inheritance and Exploration Framework"
(Huang et al., CVPR 2021, arXiv:2107.00181).

Two stages, each trained by ``tools/train.py`` with a config:

1. :class:`TeacherAutoEncoder` trains an auto-encoder (:class:`FactorAutoEncoder`, encoder and
   decoder each a :class:`FactorCoder`) on a frozen teacher's layer(s); its validation metric
   is the reconstruction error (:class:`ReconstructionMetric`, ``recon/l1``).
2. A distill term of :class:`~kd_det.distillers.SingleTeacherDistiller` with
   :class:`InheritExploreConnector` (the student map split by :class:`ChannelSplit`, each part
   encoded by its own trained coder, the teacher map by the frozen encoder of stage 1) and
   :class:`InheritExploreLoss` (``λ_inh · L_inh + λ_exp · L_exp``).

The coders, the split and the loss are registered and standalone, so other methods (mutual
learning with the inheritance/exploration split) build them too.
"""

from kd_det.inherit_explore.autoencoder import TeacherAutoEncoder
from kd_det.inherit_explore.connector import (
    InheritExploreConnector,
    load_teacher_encoder,
    read_autoencoders,
)
from kd_det.inherit_explore.encoder import FactorAutoEncoder, FactorCoder, FrozenModule
from kd_det.inherit_explore.loss import WEIGHTINGS, InheritExploreLoss, factor_distance
from kd_det.inherit_explore.metric import ReconstructionMetric
from kd_det.inherit_explore.split import ChannelSplit, split_width

__all__ = [
    "WEIGHTINGS",
    "ChannelSplit",
    "FactorAutoEncoder",
    "FactorCoder",
    "FrozenModule",
    "InheritExploreConnector",
    "InheritExploreLoss",
    "ReconstructionMetric",
    "TeacherAutoEncoder",
    "factor_distance",
    "load_teacher_encoder",
    "read_autoencoders",
    "split_width",
]
