"""Pearson-correlation feature distillation (PKD) for detector feature pyramids."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from kd_det.losses.feature import check_pair
from kd_det.registry import MODELS, check_number

__all__ = ["PKDLoss", "channel_standardize"]


def channel_standardize(x: Tensor, eps: float) -> Tensor:
    """Standardise every channel of ``x`` over the batch and all positions.

    ``x̂_c = (x_c − mean(x_c)) / (std(x_c) + eps)`` where the statistics of channel ``c`` run over
    every image and every location (``B·H·W`` values of a ``[B, C, H, W]`` map, ``B`` of a
    ``[B, C]`` batch) and ``std`` is the unbiased (``N − 1``) standard deviation.
    """
    dims = [d for d in range(x.ndim) if d != 1]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=True)
    return (x - mean) / (std + eps)


@MODELS.register_module()
class PKDLoss(nn.Module):
    """PKD: feature imitation with the Pearson correlation coefficient.

    From "PKD: General Distillation Framework for Object Detectors via Pearson Correlation
    Coefficient" (Cao et al., NeurIPS 2022, arXiv:2207.02039). Each map is standardised per
    channel, then compared with the mean squared error::

        ŝ_c = (s_c − μ(s_c)) / (σ(s_c) + ε),   t̂_c = (t_c − μ(t_c)) / (σ(t_c) + ε)
        L = w · (1 / (B·C·H·W)) · Σ (ŝ − t̂)² / 2

    ``μ`` and ``σ`` are the mean and the unbiased (``N − 1``) standard deviation of channel ``c``
    over the ``N = B·H·W`` values of the batch (every image, every location); ``ε = 1e-6`` is
    added to ``σ``, not to the variance. This is the normalisation of MMRazor's ``PKDLoss``
    (``feat.std`` with its default ``unbiased=True``, ``(feat − mean) / (std + 1e-6)``, then
    ``F.mse_loss(ŝ, t̂) / 2``). Up to ``ε``, the loss equals ``w · (N − 1)/N · (1 − r̄)`` with
    ``r̄`` the mean over channels of the Pearson correlation between ``s_c`` and ``t_c``, so it
    ignores each channel's scale and offset. The gradient flows through the student's
    statistics; the teacher is a constant.

    Student and teacher maps must have the same shape: PKD does not remove a width mismatch
    (the channels are compared one to one), so a narrower student needs a projector connector.

    The default weight is MMRazor's for one-stage students: its RetinaNet-R50 (teacher
    RetinaNet-X101, FCOS-X101 or Mask R-CNN-Swin) and RepPoints-R50 (teacher RepPoints-X101) PKD
    configs use ``loss_weight=10`` on each of FPN levels 0–3; its Faster R-CNN R-101 → R-50
    config uses ``loss_weight=6`` on levels 0–3.

    Args:
        loss_weight: ``w`` (10; 6 for Faster R-CNN in MMRazor's configs).
        eps: ``ε`` added to each channel's standard deviation.
    """

    input_kind: ClassVar[str] = "features"

    def __init__(self, loss_weight: float = 10.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.loss_weight = check_number("PKDLoss", "loss_weight", loss_weight)
        self.eps = check_number("PKDLoss", "eps", eps, strict=True)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return ``w · MSE(ŝ, t̂) / 2`` of the channel-standardised maps."""
        s, t = check_pair(student, teacher, min_ndim=2, name=type(self).__name__)
        samples = s.numel() // s.shape[1]
        if samples < 2:
            raise ValueError(
                f"PKDLoss: standardising a channel needs at least 2 values per channel (batch × "
                f"positions), got shape {tuple(s.shape)}"
            )
        s_hat = channel_standardize(s, self.eps)
        t_hat = channel_standardize(t, self.eps)
        return self.loss_weight * (s_hat - t_hat).pow(2).mean() / 2
