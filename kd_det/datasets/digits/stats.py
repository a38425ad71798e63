"""Summary statistics of a COCO detection set."""

from __future__ import annotations

from typing import Any

import numpy as np

from .render import box_overlaps


def detection_stats(coco: dict[str, Any]) -> dict[str, float]:
    """Summary numbers of a COCO detection dict: images, boxes, mean digits per image, box
    side (``sqrt(w * h)``) percentiles 5/50/95 in px, and the fraction of boxes having an
    IoU > 0.1 with another box of the same image."""
    boxes_by_image: dict[int, list[list[float]]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        boxes_by_image[ann["image_id"]].append(ann["bbox"])
    sides, overlapped = [], 0
    for boxes in boxes_by_image.values():
        if not boxes:
            continue
        xywh = np.asarray(boxes, dtype=np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        sides.extend(np.sqrt(xywh[:, 2] * xywh[:, 3]).tolist())
        for i in range(len(xyxy)):
            iou, _ = box_overlaps(xyxy[i], np.delete(xyxy, i, axis=0))
            overlapped += int(len(iou) > 0 and iou.max() > 0.1)
    n_img, n_box = len(coco["images"]), len(coco["annotations"])
    p5, p50, p95 = np.percentile(sides, [5, 50, 95]) if sides else (0.0, 0.0, 0.0)
    return {
        "images": n_img,
        "boxes": n_box,
        "digits_per_image": n_box / max(n_img, 1),
        "box_side_p5": float(p5),
        "box_side_p50": float(p50),
        "box_side_p95": float(p95),
        "overlap_frac_iou_0.1": overlapped / max(n_box, 1),
    }
