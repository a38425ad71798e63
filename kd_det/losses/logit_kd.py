"""Hinton-style logit distillation with a softmax over the class dimension."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.losses.feature import check_pair, to_samples
from kd_det.registry import MODELS, check_number

__all__ = ["LogitKDLoss"]


@MODELS.register_module()
class LogitKDLoss(nn.Module):
    """Softmax knowledge distillation: "Distilling the Knowledge in a Neural Network" (Hinton,
    Vinyals & Dean, 2015, arXiv:1503.02531).

    ``L = w · τ² · mean_n KL( softmax(t_n/τ) ‖ softmax(s_n/τ) )``

    with the softmax over the class dimension 1 and ``n`` running over the rows of ``[B, K]``
    logits, or over every location of every image of dense ``[B, K, H, W]`` logits.

    Args:
        tau: temperature ``τ`` (SRD pairs its feature loss with ``τ = 1``).
        loss_weight: ``w``.
    """

    input_kind: ClassVar[str] = "logits"

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = check_number("LogitKDLoss", "tau", tau, strict=True)
        self.loss_weight = check_number("LogitKDLoss", "loss_weight", loss_weight)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return the weighted, ``τ²``-scaled mean KL divergence from teacher to student."""
        s, t = check_pair(student, teacher, min_ndim=2, name=type(self).__name__)
        log_p_s = F.log_softmax(to_samples(s) / self.tau, dim=1)
        log_p_t = F.log_softmax(to_samples(t) / self.tau, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return self.loss_weight * self.tau**2 * kl
