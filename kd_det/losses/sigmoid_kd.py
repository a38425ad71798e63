"""Distillation for sigmoid classification heads (RetinaNet, FCOS, GFL)."""

from __future__ import annotations

import difflib
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.losses._fused import fused_sigmoid_bce_sum
from kd_det.losses.feature import check_pair
from kd_det.registry import MODELS, check_number

__all__ = ["NORMALIZE_MODES", "SigmoidKDLoss"]

NORMALIZE_MODES = ("teacher_sum", "num_images", "mean")


@MODELS.register_module()
class SigmoidKDLoss(nn.Module):
    """Binary cross-entropy to the teacher's sigmoid scores, normalised like a dense head's loss.

    Elementwise (every class of every anchor/location of every image), with the teacher's soft
    target ``p = σ(t/τ)`` and the student's score ``q = σ(s/τ)``::

        ℓ = BCE(q, p) · |q − p|^β,     BCE(q, p) = −p·log q − (1 − p)·log(1 − q)
        L = w · τ² · Σ ℓ / Z

    ``β > 0`` is the quality-focal weighting of GFL's QFL ("Generalized Focal Loss",
    arXiv:2006.04388) and of CrossKD's KD-QFL ("CrossKD: Cross-Head Knowledge Distillation for
    Object Detection", arXiv:2306.11369, which uses ``β = 1``): elements the student already
    matches are weighted down, so the many easy background anchors do not swamp the sum. As in
    both, the factor is not detached. ``β = 0`` is plain BCE.

    The normaliser ``Z`` (``normalize``):

    * ``'teacher_sum'`` (default): ``Z = max(Σ σ(t), 1)``, the teacher's summed confidence at
      ``τ = 1`` over the same elements — a label-free proxy for the number of positive anchors.
    * ``'num_images'``: ``Z = B``, a sum per image.
    * ``'mean'``: ``Z`` = the number of elements (``B·A·K·H·W`` for a ``[B, A·K, H, W]`` level
      of ``A`` anchors and ``K`` classes; kd_det's behaviour before ``normalize`` existed).

    Why the default: a dense head's own classification loss (focal loss, QFL) is a *sum* over
    anchors × classes divided by the number of positive anchors, and detection KD terms that act
    are normalised the same way (CrossKD's KD-QFL divides by that number too). ``'mean'``
    divides by every element instead — for RetinaNet thousands of times more elements than
    positives — and on the digits RetinaNet its gradient measured 1–2 % of the focal loss's:
    the term barely acts. The positives come from the head's assigner, which this term does not
    see, so the teacher's summed confidence stands in for them; the clamp at 1 keeps an image or
    level the teacher finds empty from dividing by almost nothing.

    kd_det's distill term calls the loss once per layer pair — once per FPN level for a head
    shared across levels — so ``Σ`` and ``Z`` run over one level at a time (each level is
    normalised by its own teacher mass), and the term sums the levels.

    ``χ``, the teacher's share in a mixed target ``(1 − χ)·y + χ·σ(t/τ)``, must be 1:
    ground-truth targets ``y`` for a dense head need its assigner (which anchor is matched to
    which box), which this term cannot supply; the head's own task loss already carries the
    labels. The loss is computed
    from the logits (stable for saturated ones); with soft targets its minimum is the targets'
    entropy, not 0 (0 when ``β > 0``).

    Args:
        tau: temperature ``τ`` applied to both student and teacher logits.
        chi: must be 1 (pure distillation); kept so that configs can state it.
        loss_weight: ``w``.
        normalize: ``'teacher_sum'``, ``'num_images'`` or ``'mean'`` (see above).
        beta: exponent ``β ≥ 1`` of the quality-focal weighting, or 0 for none.
    """

    input_kind: ClassVar[str] = "logits"

    def __init__(
        self,
        tau: float = 1.0,
        chi: float = 1.0,
        loss_weight: float = 1.0,
        normalize: str = "teacher_sum",
        beta: float = 0.0,
    ) -> None:
        super().__init__()
        self.tau = check_number("SigmoidKDLoss", "tau", tau, strict=True)
        if chi != 1.0:
            if isinstance(chi, (int, float)) and 0.0 <= chi < 1.0:
                raise ValueError(
                    f"SigmoidKDLoss: chi={chi} < 1 would mix ground-truth labels into the "
                    "targets, but a dense head's labels need its assigner (which anchor matches "
                    "which box), which a distill term does not have; use chi=1 and let the "
                    "head's own classification loss carry the labels"
                )
            raise ValueError(f"SigmoidKDLoss: chi must be 1 (pure distillation), got {chi!r}")
        self.loss_weight = check_number("SigmoidKDLoss", "loss_weight", loss_weight)
        if normalize not in NORMALIZE_MODES:
            close = difflib.get_close_matches(str(normalize), NORMALIZE_MODES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"SigmoidKDLoss: normalize must be one of {NORMALIZE_MODES}, got "
                f"{normalize!r}{hint}"
            )
        # 0 < β < 1 has an infinite slope at q = p, where the gradient would be NaN.
        self.beta = check_number("SigmoidKDLoss", "beta", beta, valid="0 (off) or a number >= 1")
        if 0 < beta < 1:
            raise ValueError(f"SigmoidKDLoss: beta must be 0 (off) or a number >= 1, got {beta!r}")
        self.chi = 1.0
        self.normalize = normalize

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Return ``w · τ² · Σ BCE(σ(s/τ), σ(t/τ)) · |σ(s/τ) − σ(t/τ)|^β / Z``."""
        s, t = check_pair(student, teacher, name=type(self).__name__)
        teacher_sum = self.normalize == "teacher_sum"
        if self.beta == 0:
            # σ(t/τ) once, the BCE sum and Σ σ(t) in one function with the analytic gradient
            # (σ(s/τ) − σ(t/τ)) / τ: a few passes over the logits instead of a dozen
            total, conf = fused_sigmoid_bce_sum(s, t, self.tau, teacher_sum=teacher_sum)
        else:
            z = s / self.tau if self.tau != 1.0 else s
            with torch.no_grad():
                target = torch.sigmoid(t / self.tau if self.tau != 1.0 else t)
                conf = (
                    (target if self.tau == 1.0 else torch.sigmoid(t)).sum() if teacher_sum else None
                )
            # PyTorch's BCE with logits: stable for saturated logits, and its analytic
            # gradient σ(z) − p is exact at z = 0 (a hand-written max(z, 0) + log1p(exp(−|z|))
            # form gets the kink's subgradients wrong there).
            bce = F.binary_cross_entropy_with_logits(z, target, reduction="none")
            total = (bce * (torch.sigmoid(z) - target).abs().pow(self.beta)).sum()
        if teacher_sum:
            denom: Tensor | float = conf.clamp_min(1.0)  # type: ignore[union-attr]
        elif self.normalize == "num_images":
            denom = float(s.shape[0]) if s.ndim > 1 else 1.0
        else:
            denom = float(s.numel())
        return self.loss_weight * self.tau**2 * total / denom
