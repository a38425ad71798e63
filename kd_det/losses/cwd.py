"""Channel-wise distillation (CWD): a spatial distribution per channel, matched by KL."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.losses.feature import check_pair
from kd_det.registry import MODELS, check_number

__all__ = ["ChannelWiseDivergence"]


@MODELS.register_module()
class ChannelWiseDivergence(nn.Module):
    """Channel-wise distillation for dense prediction (CWD).

    From "Channel-wise Knowledge Distillation for Dense Prediction" (Shu et al., ICCV 2021,
    arXiv:2011.13256). Every channel of every image becomes a distribution over its ``H·W``
    positions, ``φ(x_bc)_i = exp(x_bci / τ) / Σ_j exp(x_bcj / τ)``, and the student's is pulled
    to the teacher's::

        L = w · τ² / (C·B) · Σ_{b,c} KL(φ(t_bc) ‖ φ(s_bc))
          = w · τ² / (C·B) · Σ_{b,c} Σ_i φ(t_bc)_i · (log φ(t_bc)_i − log φ(s_bc)_i)

    a sum over positions and a mean over the ``B·C`` (image, channel) maps. This is the
    normalisation of MMRazor's ``ChannelWiseDivergence`` (``τ² · Σ KL / (C · N)`` with ``N`` the
    batch size). Adding a constant to a whole channel of one image changes nothing (softmax is
    shift-invariant); scaling it does, as it sharpens or flattens the distribution.

    Defaults are MMRazor's detection configs: ``τ = 1`` everywhere; ``loss_weight=10`` on each
    FPN level (its Faster R-CNN and RetinaNet R-101 → R-50 configs, all five levels) and
    ``loss_weight=5`` on the classification logits of GFL (``bbox_head.gfl_cls``, R-101 → R-50,
    the configuration behind its published 40.2 → 41.9 box AP).

    Student and teacher maps must have the same shape: the channels are paired one to one, so a
    narrower student needs a projector connector (the paper uses a 1×1 convolution).

    Args:
        tau: temperature ``τ`` of the spatial softmax.
        loss_weight: ``w``.
    """

    input_kind: ClassVar[str] = "features"

    def __init__(self, tau: float = 1.0, loss_weight: float = 10.0) -> None:
        super().__init__()
        self.tau = check_number("ChannelWiseDivergence", "tau", tau, strict=True)
        self.loss_weight = check_number("ChannelWiseDivergence", "loss_weight", loss_weight)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return ``w · τ² · mean_{b,c} KL(φ(t_bc) ‖ φ(s_bc))``."""
        s, t = check_pair(student, teacher, name=type(self).__name__)
        if s.ndim < 3:
            raise ValueError(
                "ChannelWiseDivergence: needs maps [B, C, H, W] (a softmax over each channel's "
                f"positions), got shape {tuple(s.shape)}"
            )
        b, c = s.shape[:2]
        log_p_s = F.log_softmax(s.reshape(b * c, -1) / self.tau, dim=1)
        log_p_t = F.log_softmax(t.reshape(b * c, -1) / self.tau, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
        return self.loss_weight * self.tau**2 * kl / (b * c)
