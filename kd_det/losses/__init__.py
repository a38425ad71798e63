"""Distillation losses. Each is registered in :data:`kd_det.registry.MODELS`.

Every loss is an ``nn.Module`` with ``loss_weight``, a class attribute ``input_kind``
(``'logits'`` or ``'features'``) and ``forward(student, teacher) -> scalar`` (already weighted,
teacher detached, computed in float32, equal shapes required).
"""

from __future__ import annotations

from kd_det.losses.cwd import ChannelWiseDivergence
from kd_det.losses.feature import CorrelationLoss, CosineFeatureLoss, LogSumLoss, MSEFeatureLoss
from kd_det.losses.logit_kd import LogitKDLoss
from kd_det.losses.pkd import PKDLoss
from kd_det.losses.sigmoid_kd import SigmoidKDLoss

__all__ = [
    "ChannelWiseDivergence",
    "CorrelationLoss",
    "CosineFeatureLoss",
    "LogSumLoss",
    "LogitKDLoss",
    "MSEFeatureLoss",
    "PKDLoss",
    "SigmoidKDLoss",
]
