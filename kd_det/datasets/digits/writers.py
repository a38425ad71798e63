"""Writers: the detection set in COCO format, the classification set in mmpretrain's
``CustomDataset`` format. Every image is drawn from its own random stream seeded by
``(seed, set, split, index)``, so the same seed gives byte-identical json and PNG files."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .glyphs import DIGIT_CLASSES, digit_pools, image_rng
from .render import render_classification_sample, render_detection_sample
from .spec import ClassificationSpec, DetectionSpec
from .stats import detection_stats

_IMAGE_NAME = re.compile(r"^\d{6}\.png$")
_DATE = "2025-01-01"  # fixed so that the json is byte-identical between runs


def _save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).convert("RGB").save(path, format="PNG")


def _prepare_dir(path: Path) -> None:
    """Create ``path`` and remove stale images with this module's naming (``NNNNNN.png``)."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.iterdir():
        if _IMAGE_NAME.match(old.name):
            old.unlink()


def _check_counts(num_train: int, num_val: int) -> None:
    for name, n in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative int, got {n!r}")


def _write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def _detection_split(
    root: Path, split: str, num: int, seed: int, spec: DetectionSpec
) -> dict[str, Any]:
    img_dir = root / split
    _prepare_dir(img_dir)
    pool = digit_pools()[split]
    images, annotations = [], []
    for i in range(num):
        sample = render_detection_sample(image_rng(seed, "det", split, i), spec, pool)
        image_id = i + 1
        file_name = f"{image_id:06d}.png"
        _save_png(sample.image, img_dir / file_name)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": spec.image_size,
                "height": spec.image_size,
            }
        )
        for box, label, index in zip(sample.boxes, sample.labels, sample.digit_indices):
            x, y, w, h = (int(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "digit_index": int(index),
                }
            )
    return {
        "info": {
            "description": f"kd_det handwritten-digit detection set ({split}) from sklearn load_digits",
            "version": "1.0",
            "year": 2025,
            "contributor": "kd_det",
            "url": "",
            "date_created": _DATE,
            "seed": seed,
            "spec": asdict(spec),
        },
        "licenses": [{"id": 1, "name": "BSD-3-Clause (scikit-learn digits)", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": d + 1, "name": name, "supercategory": "digit"}
            for d, name in enumerate(DIGIT_CLASSES)
        ],
    }


def make_detection_set(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    spec: DetectionSpec | None = None,
) -> dict[str, Any]:
    """Write a COCO-format detection set under ``root/det``.

    Layout: ``det/{train,val}/NNNNNN.png`` (RGB) and ``det/annotations/{train,val}.json``;
    stale ``NNNNNN.png`` files in those folders are removed first. Annotations carry an extra
    ``digit_index`` (source digit in ``load_glyphs()``). ``spec`` defaults to
    ``DetectionSpec()`` (the hard preset).

    Returns:
        ``data_root``, ``{train,val}_json``, ``{train,val}_images`` (absolute paths as str),
        ``num_{train,val}_images``, ``num_{train,val}_boxes`` and ``stats`` (per split, see
        :func:`detection_stats`).
    """
    _check_counts(num_train, num_val)
    spec = spec if spec is not None else DetectionSpec()
    if not isinstance(spec, DetectionSpec):
        raise ValueError(f"spec must be a DetectionSpec, got {type(spec).__name__}")
    data_root = Path(root).resolve() / "det"
    (data_root / "annotations").mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"data_root": str(data_root), "stats": {}}
    for split, num in (("train", num_train), ("val", num_val)):
        coco = _detection_split(data_root, split, num, seed, spec)
        ann_file = data_root / "annotations" / f"{split}.json"
        _write_json(coco, ann_file)
        result[f"{split}_json"] = str(ann_file)
        result[f"{split}_images"] = str(data_root / split)
        result[f"num_{split}_images"] = len(coco["images"])
        result[f"num_{split}_boxes"] = len(coco["annotations"])
        result["stats"][split] = detection_stats(coco)
    return result


def make_classification_set(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    spec: ClassificationSpec | None = None,
) -> dict[str, Any]:
    """Write an mmpretrain ``CustomDataset`` classification set under ``root/cls``.

    Layout: ``cls/{train,val}/NNNNNN.png`` (RGB), ``cls/annotations/{train,val}.txt`` with one
    ``NNNNNN.png <label>`` line per image (use ``data_prefix='{split}'``, ``ann_file`` the
    txt, ``metainfo=CLASSIFICATION_METAINFO``); image ``i`` shows digit class ``i % 10``, so
    classes are balanced; and ``cls/annotations/sources.json`` holding
    each split's source digit indices, the seed and the spec. ``spec`` defaults to
    ``ClassificationSpec()`` (the hard preset).

    Returns:
        ``data_root``, ``{train,val}_ann`` and ``{train,val}_images`` (absolute paths as str),
        ``num_{train,val}`` and ``{train,val}_class_counts`` (images per class).
    """
    _check_counts(num_train, num_val)
    spec = spec if spec is not None else ClassificationSpec()
    if not isinstance(spec, ClassificationSpec):
        raise ValueError(f"spec must be a ClassificationSpec, got {type(spec).__name__}")
    data_root = Path(root).resolve() / "cls"
    (data_root / "annotations").mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"data_root": str(data_root)}
    sources: dict[str, Any] = {"seed": seed, "spec": asdict(spec)}
    for split, num in (("train", num_train), ("val", num_val)):
        img_dir = data_root / split
        _prepare_dir(img_dir)
        pool = digit_pools()[split]
        lines, indices, counts = [], [], [0] * len(DIGIT_CLASSES)
        for i in range(num):
            image, label, index = render_classification_sample(
                image_rng(seed, "cls", split, i), spec, pool, label=i % len(DIGIT_CLASSES)
            )
            file_name = f"{i:06d}.png"
            _save_png(image, img_dir / file_name)
            lines.append(f"{file_name} {label}\n")
            indices.append(index)
            counts[label] += 1
        ann_file = data_root / "annotations" / f"{split}.txt"
        ann_file.write_text("".join(lines))
        sources[split] = indices
        result[f"{split}_ann"] = str(ann_file)
        result[f"{split}_images"] = str(img_dir)
        result[f"num_{split}"] = num
        result[f"{split}_class_counts"] = counts
    _write_json(sources, data_root / "annotations" / "sources.json")
    return result
