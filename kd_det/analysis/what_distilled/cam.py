"""Localization: Grad-CAM maps of the ground-truth class, and how much more a distilled
student's maps resemble the teacher's than an independent student's do.

Grad-CAM ("Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
Selvaraju et al., ICCV 2017, arXiv:1610.02391) of a score ``y`` at a layer with activations
``A ∈ R^{C×h×w}``:

    α_c = (1 / hw) Σ_{i,j} ∂y / ∂A_{c,i,j},      CAM = ReLU(Σ_c α_c A_c)   ∈ R^{h×w}.

It is computed by captum's :class:`captum.attr.LayerGradCam`, whose ``forward_func`` may be any
callable: here a small module that runs the rest of the network from a tapped layer (an
``nn.Identity``) to the score, so the same captum call serves mmpretrain classifiers and mmdet
detectors.

* **Classifiers** (per image): the layer is the backbone's last output (the map the neck pools),
  ``y`` the logit of the ground-truth class.
* **Detectors** (per ground-truth box, single-stage detectors with an anchor head such as
  RetinaNet): the layer is the FPN level the box is assigned to, ``y`` the mean over the box's
  positive anchors at that level of the classification branch's logit of the box's class. The
  box's level is the level of its highest-IoU anchor, its positive anchors at that level those
  with IoU ``>= pos_iou_thr`` (the head's ``train_cfg.assigner.pos_iou_thr``, 0.5 when it has
  none) and the highest-IoU anchor itself — the anchors the head's max-IoU assigner makes
  positive, restricted to one level. Each box is one example of a batch (the level features of
  its image, repeated), so every box gets its own gradient in one captum call.

Maps are upsampled bilinearly to the input size before they are compared, so models with
different feature strides can be compared. With ``cos(a, b) = ⟨a, b⟩ / (‖a‖ ‖b‖)`` (0 when a
map is all zero) the score of a distilled student ``S_d`` against an independent ``S_i`` is

    score = 100 · mean_n [ 1(cos(T_n, S_d,n) > cos(T_n, S_i,n)) + ½ · 1(cos(…) = cos(…)) ]

over images (boxes): 50 means ``S_d`` is no more teacher-like than ``S_i`` (ties, e.g. two
all-zero maps, count half).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn
from torchvision.ops import box_iou

from kd_det.analysis.what_distilled.models import LoadedModel

__all__ = [
    "BoxTargets",
    "box_targets",
    "cam_cosine",
    "check_box_cam_support",
    "classifier_cams",
    "detector_box_cams",
    "localization_score",
    "upsample_cams",
]

DEFAULT_POS_IOU_THR = 0.5


class _ClassifierFromBackbone(nn.Module):
    """Logits of an mmpretrain classifier with an identity tap on the backbone's last output."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.tap = nn.Identity()

    def forward(self, inputs: Tensor) -> Tensor:
        model = self.classifier
        feats = model.backbone(inputs)
        last = self.tap(feats if isinstance(feats, Tensor) else feats[-1])
        feats = last if isinstance(feats, Tensor) else (*feats[:-1], last)
        if getattr(model, "with_neck", False):
            feats = model.neck(feats)
        logits = model.head(feats)
        return logits[-1] if isinstance(logits, (tuple, list)) else logits


def classifier_cams(model: LoadedModel, pixels: Tensor, labels: Tensor) -> Tensor:
    """``[B, h, w]`` Grad-CAM of class ``labels[b]`` at the backbone's last output."""
    net = _ClassifierFromBackbone(model.model)
    cams = LayerGradCam(net, net.tap).attribute(
        model.normalize(pixels), target=labels.tolist(), relu_attributions=True
    )
    return cams.detach()[:, 0]


def check_box_cam_support(model: LoadedModel) -> None:
    """Raise ``ValueError`` unless per-box Grad-CAM can be computed for ``model``: a
    single-stage detector whose dense head generates anchors (``prior_generator`` with
    ``base_anchors``)."""
    from mmdet.models.detectors import SingleStageDetector

    head = getattr(model.model, "bbox_head", None)
    generator = getattr(head, "prior_generator", None)
    if not isinstance(model.model, SingleStageDetector) or not hasattr(generator, "base_anchors"):
        raise ValueError(
            f"localization of detectors needs a single-stage detector with an anchor head "
            f"(RetinaNet, ATSS, GFL, ...); {model.role} {model.name!r} is a "
            f"{type(model.model).__name__} with {type(head).__name__}. Leave 'localization' "
            "out of the properties for this model"
        )


@dataclass
class BoxTargets:
    """Where each ground-truth box of a batch is scored: its image, FPN level, class and the
    weights of its positive anchors (``weights[l]`` is ``[N, A, h_l, w_l]``, ``1/#positives``
    at the box's positive anchors of its level, 0 elsewhere and at every other level)."""

    image: Tensor
    level: Tensor
    label: Tensor
    weights: list[Tensor]


def _pos_iou_thr(head: nn.Module) -> float:
    assigner = (getattr(head, "train_cfg", None) or {}).get("assigner", {}) or {}
    thr = assigner.get("pos_iou_thr") if hasattr(assigner, "get") else None
    return float(thr) if isinstance(thr, (int, float)) else DEFAULT_POS_IOU_THR


def box_targets(
    model: LoadedModel,
    featmap_sizes: list[tuple[int, int]],
    gt_boxes: list[Tensor],
    gt_labels: list[Tensor],
) -> BoxTargets:
    """Assign every ground-truth box of a batch to one level and its positive anchors there
    (see the module docstring)."""
    head = model.model.bbox_head
    num_anchors = head.num_base_priors
    priors = head.prior_generator.grid_priors(featmap_sizes, device="cpu")
    level_of = torch.cat([torch.full((len(p),), lvl) for lvl, p in enumerate(priors)])
    all_priors = torch.cat(priors)
    starts = torch.tensor([0] + [len(p) for p in priors]).cumsum(0)
    thr = _pos_iou_thr(head)
    images, levels, labels, flat = [], [], [], []
    for b, (boxes, cls) in enumerate(zip(gt_boxes, gt_labels)):
        if boxes.numel() == 0:
            continue
        iou = box_iou(boxes.float().cpu(), all_priors)
        best = iou.argmax(dim=1)
        for k in range(boxes.shape[0]):
            lvl = int(level_of[best[k]])
            lo, hi = int(starts[lvl]), int(starts[lvl + 1])
            pos = iou[k, lo:hi] >= thr
            pos[int(best[k]) - lo] = True
            images.append(b)
            levels.append(lvl)
            labels.append(int(cls[k]))
            flat.append(pos)
    n = len(images)
    weights = [torch.zeros(n, num_anchors, h, w) for h, w in featmap_sizes]
    for i, (lvl, pos) in enumerate(zip(levels, flat)):
        h, w = featmap_sizes[lvl]
        # anchors are ordered (y, x, anchor); the map is (anchor, y, x)
        mask = pos.reshape(h, w, num_anchors).permute(2, 0, 1).float()
        weights[lvl][i] = mask / mask.sum()
    as_long = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return BoxTargets(as_long(images), as_long(levels), as_long(labels), weights)


class _DenseHeadScore(nn.Module):
    """Per-example score of a dense head from FPN features, with an identity tap on them:
    ``Σ_l Σ_{a,y,x} weights_l[n, a, y, x] · cls_l[n, a, label_n, y, x]``."""

    def __init__(self, head: nn.Module, num_levels: int) -> None:
        super().__init__()
        self.head = head
        self.num_levels = num_levels
        self.tap = nn.Identity()

    def forward(self, *args: Tensor) -> Tensor:
        num = self.num_levels
        feats = self.tap(tuple(args[:num]))
        weights, labels = args[num : 2 * num], args[2 * num]
        cls_scores = self.head(feats)[0]
        anchors = self.head.num_base_priors
        score = feats[0].new_zeros(labels.shape[0])
        for cls, weight in zip(cls_scores, weights):
            n, _, h, w = cls.shape
            cls = cls.reshape(n, anchors, -1, h, w)
            index = labels.reshape(n, 1, 1, 1, 1).expand(n, anchors, 1, h, w)
            score = score + (cls.gather(2, index).squeeze(2) * weight).sum(dim=(1, 2, 3))
        return score


def detector_box_cams(
    model: LoadedModel,
    features: tuple[Tensor, ...],
    targets: BoxTargets,
    size: tuple[int, int],
    chunk: int = 64,
) -> Tensor:
    """``[N, H, W]`` Grad-CAM per ground-truth box at its FPN level, upsampled to ``size``.

    Args:
        features: the detector's neck outputs for the batch (no gradient needed).
        targets: :func:`box_targets` of the batch for this model.
        size: ``(H, W)`` of the input images.
        chunk: boxes per captum call (memory vs. speed).
    """
    num = targets.image.numel()
    out = torch.zeros(num, *size)
    if num == 0:
        return out
    feats = tuple(f.detach() for f in features)
    net = _DenseHeadScore(model.model.bbox_head, len(feats))
    cam = LayerGradCam(net, net.tap)
    for start in range(0, num, chunk):
        sl = slice(start, min(start + chunk, num))
        image = targets.image[sl]
        inputs = tuple(f[image] for f in feats)
        extra = (*(w[sl] for w in targets.weights), targets.label[sl])
        maps = cam.attribute(inputs, additional_forward_args=extra, relu_attributions=True)
        maps = maps if isinstance(maps, tuple) else (maps,)
        levels = targets.level[sl]
        for lvl, level_maps in enumerate(maps):
            rows = (levels == lvl).nonzero().flatten()
            if rows.numel():
                picked = level_maps.detach()[rows]
                out[start + rows] = upsample_cams(picked[:, 0], size)
    return out


def upsample_cams(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """``[N, h, w]`` maps resized bilinearly to ``size``."""
    if tuple(cams.shape[-2:]) == tuple(size):
        return cams
    return F.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def cam_cosine(a: Tensor, b: Tensor) -> Tensor:
    """``[N]`` cosine similarity of paired maps ``[N, ...]``; 0 where either map is all zero."""
    if a.shape != b.shape:
        raise ValueError(
            f"paired maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return torch.where(norms > 0, dots / norms.clamp_min(1e-300), torch.zeros_like(dots))


def localization_score(cos_distilled: Tensor, cos_independent: Tensor) -> float:
    """``100 · mean(1(cos_d > cos_i) + ½ 1(cos_d = cos_i))`` — % of images (boxes) where the
    distilled student's map is closer to the teacher's; 50 is chance."""
    if cos_distilled.shape != cos_independent.shape or cos_distilled.numel() == 0:
        raise ValueError(
            "cos_distilled and cos_independent must be non-empty and paired, got shapes "
            f"{tuple(cos_distilled.shape)} and {tuple(cos_independent.shape)}"
        )
    wins = (cos_distilled > cos_independent).double() + 0.5 * (
        cos_distilled == cos_independent
    ).double()
    return 100.0 * wins.mean().item()
