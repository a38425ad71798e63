"""Adversarial transfer: images attacked on one model (the teacher, or an unrelated control
model), and how often they also fool each student.

Iterative FGSM ("Adversarial examples in the physical world", Kurakin et al., arXiv:1607.02533)
in pixel units (0–255, the data preprocessor's input), from the clean image ``x_0``:

    x_{t+1} = clip_[0, 255]( clip_{[x_0 − ε, x_0 + ε]}( x_t + α · sign(∇_x L(x_t)) ) ),
    t = 0 … k − 1,

with ``k = 5`` steps, ``ε = 8`` and ``α = 2`` by default (:class:`AttackSpec`). ``L`` is the
attacked model's own training loss against the ground truth: the cross-entropy of the
ground-truth class for a classifier (summed over the batch, so each image's gradient is its
own), the detection loss (``model.loss``: classification + box regression against the
ground-truth boxes) for a detector.

Units and "fooled":

* classifiers: a unit is an image; a model is fooled when its top-1 class on the attacked image
  differs from its top-1 class on the clean image;
* detectors: a unit is a ground-truth box and a model's prediction for it is its box prediction
  (:func:`~kd_det.analysis.what_distilled.agreement.box_predictions`): the class of its
  highest-scoring detection with IoU >= 0.5. A model is fooled on a box it detected on the clean
  image when that detection changes class or is lost on the attacked image; boxes it did not
  detect on the clean image do not count for it.

The units kept are those on which the attacked (source) model itself is fooled; a student's
fooling rate is the % of kept units (that count for it) on which it is fooled too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kd_det.analysis.what_distilled.agreement import classifier_logits
from kd_det.analysis.what_distilled.models import LoadedModel

__all__ = [
    "AttackSpec",
    "classifier_attack_loss",
    "detector_attack_loss",
    "fooled",
    "ifgsm",
    "transfer_rates",
]

PIXEL_MIN, PIXEL_MAX = 0.0, 255.0


@dataclass(frozen=True)
class AttackSpec:
    """Iterative FGSM in pixel units: ``eps`` (L∞ radius), ``step`` (α) and ``steps`` (k)."""

    eps: float = 8.0
    step: float = 2.0
    steps: int = 5

    def __post_init__(self) -> None:
        if not self.eps > 0:
            raise ValueError(f"attack eps must be > 0 (pixel units, 0-255), got {self.eps}")
        if not self.step > 0:
            raise ValueError(f"attack step must be > 0 (pixel units, 0-255), got {self.step}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"attack steps must be an integer >= 1, got {self.steps!r}")


def ifgsm(loss_fn: Callable[[Tensor], Tensor], pixels: Tensor, spec: AttackSpec) -> Tensor:
    """The attacked images: ``spec.steps`` signed-gradient ascent steps on ``loss_fn`` (a
    scalar of the pixel-unit batch) inside the ``eps`` ball around ``pixels`` and [0, 255]."""
    clean = pixels.detach()
    low = (clean - spec.eps).clamp_min(PIXEL_MIN)
    high = (clean + spec.eps).clamp_max(PIXEL_MAX)
    x = clean.clone()
    for _ in range(spec.steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(x), x)
        x = torch.min(torch.max(x.detach() + spec.step * grad.sign(), low), high)
    return x.detach()


def classifier_attack_loss(model: LoadedModel, labels: Tensor) -> Callable[[Tensor], Tensor]:
    """Summed cross-entropy of ``labels`` for the classifier, as a function of pixels."""

    def loss(pixels: Tensor) -> Tensor:
        return F.cross_entropy(classifier_logits(model, pixels), labels, reduction="sum")

    return loss


def detector_attack_loss(model: LoadedModel, data_samples: list) -> Callable[[Tensor], Tensor]:
    """The detector's total training loss against the samples' ground truth, of pixels."""

    def loss(pixels: Tensor) -> Tensor:
        losses = model.model.loss(model.normalize(pixels), data_samples)
        total, _ = model.model.parse_losses(losses)
        return total

    return loss


def fooled(clean: Tensor, attacked: Tensor, counts: Tensor | None = None) -> Tensor:
    """Per unit: the prediction changed (``-1`` = none/lost for detector boxes). Units where
    ``counts`` is False (a box the model did not detect on the clean image) are False."""
    out = clean != attacked
    return out if counts is None else out & counts


def transfer_rates(
    source_fooled: Tensor, model_fooled: Tensor, model_counts: Tensor | None = None
) -> tuple[float | None, int]:
    """The % of the units that fooled the source that also fool a model, and their number
    (units that do not count for the model left out); ``None`` when there are none."""
    kept = source_fooled.bool()
    if model_counts is not None:
        kept = kept & model_counts.bool()
    n = int(kept.sum())
    if n == 0:
        return None, 0
    return 100.0 * model_fooled.bool()[kept].double().mean().item(), n
