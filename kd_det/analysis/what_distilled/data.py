"""The images of the analysis: the teacher config's evaluation split, a seeded subset, batches
in pixel units and their ground truth."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, init_default_scope
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from kd_det.analysis.what_distilled.models import LoadedModel

__all__ = [
    "Batch",
    "batches",
    "build_dataset",
    "check_ground_truth",
    "choose_indices",
    "dataset_cfg",
]

SPLITS = ("val", "test")


def dataset_cfg(cfg: Config, split: str = "val") -> dict[str, Any]:
    """The dataset dict of ``cfg``'s ``<split>_dataloader``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    loader = cfg.get(f"{split}_dataloader")
    if not loader or "dataset" not in loader:
        raise ValueError(
            f"config {cfg.filename!r} has no {split}_dataloader.dataset to take images from"
        )
    return copy.deepcopy(loader["dataset"])


def build_dataset(cfg: Config, split: str = "val") -> Dataset:
    """Build the ``split`` dataset of ``cfg`` in the config's default scope."""
    if cfg.get("default_scope"):
        init_default_scope(cfg.default_scope)
    return DATASETS.build(dataset_cfg(cfg, split))


def choose_indices(total: int, num_images: int | None, seed: int) -> list[int]:
    """All ``total`` indices, or ``num_images`` of them drawn without replacement by a
    generator seeded with ``seed`` (in increasing order)."""
    if total < 1:
        raise ValueError("the dataset is empty")
    if num_images is None or num_images >= total:
        return list(range(total))
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(total, size=num_images, replace=False).tolist())


def check_ground_truth(dataset: Dataset, index: int, task: str, where: str) -> None:
    """Raise ``ValueError`` unless the sample at ``index`` carries ground truth for ``task``:
    a ``gt_label`` (classification) or ``gt_instances`` with boxes (detection)."""
    sample = dataset[index]
    data_sample = sample.get("data_samples") if isinstance(sample, dict) else None
    if data_sample is None:
        raise ValueError(f"{where}: samples have no 'data_samples'; cannot read ground truth")
    if task == "classification":
        ok = "gt_label" in data_sample
        needs = "a gt_label per image (an annotation file with labels)"
    else:
        gt = data_sample.get("gt_instances")
        ok = gt is not None and "bboxes" in gt and "labels" in gt
        needs = "gt_instances with boxes and labels (LoadAnnotations in the pipeline)"
    if not ok:
        raise ValueError(
            f"{where} has no ground truth: the analysis needs {needs}; give a split with "
            "annotations (the config's val or test split, or --cfg-options for its dataset)"
        )


@dataclass
class Batch:
    """A batch in pixel units (0–255, the preprocessor's channel order, padded as the
    teacher's preprocessor pads) with its data samples and ground truth."""

    pixels: Tensor
    data_samples: list[Any]
    labels: Tensor | None  # [B] class per image (classification)
    gt_boxes: list[Tensor] | None  # per image [n, 4] x1y1x2y2 in input pixels (detection)
    gt_labels: list[Tensor] | None  # per image [n]
    indices: list[int]


def _tensor(boxes: Any) -> Tensor:
    """mmdet box structures (``HorizontalBoxes``) or plain tensors as a tensor."""
    return boxes.tensor if hasattr(boxes, "tensor") else boxes


def batches(
    dataset: Dataset,
    indices: Sequence[int],
    batch_size: int,
    teacher: LoadedModel,
) -> Iterator[Batch]:
    """Batches of ``dataset[indices]`` through the teacher's data preprocessor (no training
    augmentation), turned back into pixel units."""
    loader = DataLoader(
        Subset(dataset, list(indices)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=pseudo_collate,
    )
    start = 0
    for data in loader:
        with torch.no_grad():
            out = teacher.model.data_preprocessor(data, training=False)
        inputs, samples = out["inputs"], out["data_samples"]
        pixels = (inputs.float() * teacher.std + teacher.mean).contiguous()
        n = pixels.shape[0]
        if teacher.task == "classification":
            labels = torch.cat([s.gt_label.reshape(-1)[:1] for s in samples]).long()
            boxes = gt_labels = None
        else:
            labels = None
            boxes = [_tensor(s.gt_instances.bboxes).float().reshape(-1, 4) for s in samples]
            gt_labels = [s.gt_instances.labels.long().reshape(-1) for s in samples]
        yield Batch(pixels, samples, labels, boxes, gt_labels, list(indices[start : start + n]))
        start += n
