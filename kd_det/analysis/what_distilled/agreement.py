"""Predictions of classifiers and detectors, the matching rules of the analysis, and how often
a student agrees with its teacher on clean images.

Matching rules (used by the invariance, adversarial and agreement measures):

* **Detections** are a model's boxes with score ``>= score_thr`` (default 0.3), after its own
  NMS, in input pixels (``rescale=False``).
* **Detection matching** (:func:`greedy_matches`), as COCO's evaluation matches: the detections
  of ``a`` in decreasing score each take the unmatched detection of ``b`` of the same class
  with the highest IoU, if that IoU is ``>= iou_thr`` (0.5); each detection of ``b`` is
  matched at most once.
* **Box prediction** (:func:`box_predictions`): a model's prediction for a ground-truth box is
  the class of its highest-scoring detection (of any class) whose IoU with the box is
  ``>= iou_thr``, or "none" (``-1``) when no detection overlaps it that much. A box then plays
  the role an image plays for a classifier.

Agreement with the teacher on clean images: classifiers — % of images whose top-1 class equals
the teacher's; detectors — % of the teacher's detections matched by the student's detections
(same class, IoU >= 0.5, :func:`greedy_matches`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou

from kd_det.analysis.what_distilled.models import LoadedModel

__all__ = [
    "Detections",
    "box_predictions",
    "classifier_logits",
    "detect",
    "detect_from_features",
    "greedy_matches",
]


@dataclass
class Detections:
    """One image's detections: ``boxes [n, 4]`` (x1, y1, x2, y2), ``labels [n]``, ``scores [n]``."""

    boxes: Tensor
    labels: Tensor
    scores: Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    @classmethod
    def empty(cls) -> Detections:
        return cls(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))


def classifier_logits(model: LoadedModel, pixels: Tensor) -> Tensor:
    """``[B, num_classes]`` logits of a classifier for pixel-unit images."""
    return model.model(model.normalize(pixels), mode="tensor")


def _to_detections(results: list, score_thr: float) -> list[Detections]:
    out = []
    for res in results:
        inst = res.pred_instances if hasattr(res, "pred_instances") else res
        boxes = inst.bboxes
        boxes = boxes.tensor if hasattr(boxes, "tensor") else boxes
        keep = inst.scores >= score_thr
        out.append(
            Detections(
                boxes[keep].detach().float().cpu(),
                inst.labels[keep].detach().long().cpu(),
                inst.scores[keep].detach().float().cpu(),
            )
        )
    return out


@torch.no_grad()
def detect(
    model: LoadedModel, pixels: Tensor, data_samples: list, score_thr: float
) -> list[Detections]:
    """A detector's detections (``score >= score_thr``) per image, in input pixels."""
    results = model.model.predict(model.normalize(pixels), data_samples, rescale=False)
    return _to_detections(results, score_thr)


@torch.no_grad()
def detect_from_features(
    model: LoadedModel, features: tuple[Tensor, ...], data_samples: list, score_thr: float
) -> list[Detections]:
    """A single-stage detector's detections from its neck's features (saves a forward pass
    when the features are needed anyway)."""
    results = model.model.bbox_head.predict(features, data_samples, rescale=False)
    return _to_detections(results, score_thr)


def greedy_matches(
    a: Detections, b: Detections, iou_thr: float = 0.5, same_class: bool = True
) -> Tensor:
    """``[len(a)]`` booleans: which detections of ``a`` find a partner in ``b`` (one-to-one,
    in decreasing score of ``a``, the unmatched partner of highest IoU ``>= iou_thr``, of the
    same class when ``same_class``)."""
    matched = torch.zeros(len(a), dtype=torch.bool)
    if len(a) == 0 or len(b) == 0:
        return matched
    iou = box_iou(a.boxes, b.boxes)
    if same_class:
        iou = iou.masked_fill(a.labels[:, None] != b.labels[None, :], -1.0)
    taken = torch.zeros(len(b), dtype=torch.bool)
    for i in torch.argsort(a.scores, descending=True).tolist():
        row = iou[i].masked_fill(taken, -1.0)
        j = int(row.argmax())
        if row[j] >= iou_thr:
            matched[i] = True
            taken[j] = True
    return matched


def box_predictions(dets: Detections, gt_boxes: Tensor, iou_thr: float = 0.5) -> Tensor:
    """``[num_gt]`` class of the highest-scoring detection with IoU ``>= iou_thr`` per box,
    ``-1`` where none overlaps that much."""
    out = torch.full((gt_boxes.shape[0],), -1, dtype=torch.long)
    if len(dets) == 0 or gt_boxes.numel() == 0:
        return out
    iou = box_iou(gt_boxes.float().cpu(), dets.boxes)
    scores = dets.scores[None, :].expand_as(iou).masked_fill(iou < iou_thr, -1.0)
    best = scores.argmax(dim=1)
    found = (iou >= iou_thr).any(dim=1)
    out[found] = dets.labels[best[found]]
    return out
