"""Tests of the handwritten-digit detection and classification sets (kd_det.datasets)."""

from __future__ import annotations

import json
import runpy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kd_det.datasets import (
    CLASSIFICATION_METAINFO,
    DETECTION_METAINFO,
    DIGIT_CLASSES,
    ClassificationSpec,
    DetectionSpec,
    detection_stats,
    digit_pools,
    load_glyphs,
    make_classification_set,
    make_detection_set,
    render_detection_sample,
    render_glyph,
)
from kd_det.datasets.digits import MIN_ALPHA, RAMP_HIGH, RAMP_LOW

REPO = Path(__file__).resolve().parents[1]

# A spec whose pixels can be read back exactly: flat grey background, no noise, no
# distractors, non-overlapping boxes, effective contrast >= 0.5 (ink pixels differ from the
# background by >= MIN_ALPHA * 0.5 * 255 ~ 12 grey levels; every other pixel equals it).
CLEAN = DetectionSpec(
    digits_per_image=(3, 6),
    max_overlap_iou=0.0,
    max_covered=0.0,
    overlap_prob=0.0,
    distractors_per_image=(0, 0),
    noise_std=0.0,
    clutter=0.0,
    contrast=(0.6, 0.9),
    rgb_prob=0.0,
)


@pytest.fixture(scope="module")
def det_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_detection_set(tmp_path_factory.mktemp("digits"), 12, 6, seed=0)


@pytest.fixture(scope="module")
def cls_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_classification_set(tmp_path_factory.mktemp("digits"), 30, 10, seed=0)


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------------------------------
# Pools and determinism
# ------------------------------------------------------------------------------------------


def test_digit_pools_are_disjoint_complete_and_stratified() -> None:
    _, labels = load_glyphs()
    pools = digit_pools()
    train, val = set(pools["train"].tolist()), set(pools["val"].tolist())
    assert not train & val
    assert train | val == set(range(1797))
    for digit in range(10):
        n = int((labels == digit).sum())
        assert int((labels[pools["val"]] == digit).sum()) == round(n * 0.25)
    again = digit_pools.__wrapped__()  # recomputed, not the cached arrays
    assert np.array_equal(again["val"], pools["val"])


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        make_detection_set(tmp_path / name, 5, 3, seed=seed)
        make_classification_set(tmp_path / name, 6, 3, seed=seed)
    a, b, c = (_tree_bytes(tmp_path / n) for n in "abc")
    assert len(a) == 2 + 8 + 3 + 9  # 2 json + 8 det png + 2 txt + sources.json + 9 cls png
    assert a == b
    assert a.keys() == c.keys()
    assert a["det/annotations/train.json"] != c["det/annotations/train.json"]
    assert a["det/train/000001.png"] != c["det/train/000001.png"]
    assert a["cls/train/000000.png"] != c["cls/train/000000.png"]


def test_sets_draw_train_and_val_from_disjoint_pools(det_set: dict, cls_set: dict) -> None:
    _, labels = load_glyphs()
    pools = {k: set(v.tolist()) for k, v in digit_pools().items()}
    used = {}
    for split in ("train", "val"):
        anns = _load(det_set[f"{split}_json"])["annotations"]
        det_idx = [a["digit_index"] for a in anns]
        assert all(labels[i] == a["category_id"] - 1 for i, a in zip(det_idx, anns))
        cls_idx = _load(Path(cls_set["data_root"]) / "annotations" / "sources.json")[split]
        lines = Path(cls_set[f"{split}_ann"]).read_text().splitlines()
        assert [int(line.split()[1]) for line in lines] == [int(labels[i]) for i in cls_idx]
        used[split] = set(det_idx) | set(cls_idx)
        assert used[split] <= pools[split]
    assert not used["train"] & used["val"]


# ------------------------------------------------------------------------------------------
# COCO json validity and box tightness
# ------------------------------------------------------------------------------------------


def test_coco_json_is_valid(det_set: dict) -> None:
    from pycocotools.coco import COCO

    for split in ("train", "val"):
        raw = _load(det_set[f"{split}_json"])
        assert {"info", "licenses", "images", "annotations", "categories"} <= raw.keys()
        coco = COCO(det_set[f"{split}_json"])
        cats = coco.loadCats(coco.getCatIds())
        assert tuple(c["name"] for c in cats) == DIGIT_CLASSES
        img_ids = [img["id"] for img in raw["images"]]
        ann_ids = [ann["id"] for ann in raw["annotations"]]
        assert len(set(img_ids)) == len(img_ids) == det_set[f"num_{split}_images"]
        assert len(set(ann_ids)) == len(ann_ids) == det_set[f"num_{split}_boxes"]
        for img in raw["images"]:
            path = Path(det_set[f"{split}_images"]) / img["file_name"]
            with Image.open(path) as pil:
                assert pil.mode == "RGB" and pil.size == (img["width"], img["height"]) == (128, 128)
            assert coco.getAnnIds(imgIds=img["id"]), "every image holds at least one digit"
        for ann in raw["annotations"]:
            x, y, w, h = ann["bbox"]
            img = coco.imgs[ann["image_id"]]
            assert w >= 1 and h >= 1 and ann["area"] == w * h > 0 and ann["iscrowd"] == 0
            assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
            assert ann["category_id"] in coco.cats


def _edges_touched(ink: np.ndarray) -> bool:
    return bool(ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any())


def test_boxes_are_tight_around_each_digit_mask() -> None:
    spec = DetectionSpec()
    pool = digit_pools()["train"]
    n = 0
    for i in range(20):
        sample = render_detection_sample(np.random.default_rng(i), spec, pool)
        assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.uint8
        assert len(sample.boxes) == len(sample.masks) >= 1
        for (x, y, w, h), mask in zip(sample.boxes, sample.masks):
            assert _edges_touched(mask[y : y + h, x : x + w])
            assert mask.sum() == mask[y : y + h, x : x + w].sum(), "ink outside its box"
            n += 1
    assert n > 60


def _ink_from_pixels(path: Path) -> np.ndarray:
    img = np.asarray(Image.open(path), dtype=np.int16)
    values, counts = np.unique(img[..., 0], return_counts=True)
    background = values[counts.argmax()]  # flat background covers most of the canvas
    return np.abs(img - background).max(axis=2) > 2


def test_boxes_are_tight_in_the_written_pixels(tmp_path: Path) -> None:
    out = make_detection_set(tmp_path, 8, 0, seed=1, spec=CLEAN)
    coco = _load(out["train_json"])
    for img in coco["images"]:
        ink = _ink_from_pixels(Path(out["train_images"]) / img["file_name"])
        covered = np.zeros_like(ink)
        for ann in coco["annotations"]:
            if ann["image_id"] == img["id"]:
                x, y, w, h = ann["bbox"]
                assert _edges_touched(ink[y : y + h, x : x + w])
                covered[y : y + h, x : x + w] = True
        assert ink.any() and not (ink & ~covered).any(), "ink found outside every box"


def test_distractors_are_drawn_but_not_annotated(tmp_path: Path) -> None:
    spec = replace(CLEAN, distractors_per_image=(4, 6), max_covered=0.0)
    out = make_detection_set(tmp_path, 6, 0, seed=2, spec=spec)
    coco = _load(out["train_json"])
    outside = 0
    for img in coco["images"]:
        ink = _ink_from_pixels(Path(out["train_images"]) / img["file_name"])
        for ann in coco["annotations"]:
            if ann["image_id"] == img["id"]:
                x, y, w, h = ann["bbox"]
                ink[y : y + h, x : x + w] = False
        outside += int(ink.sum())
    assert outside > 100


def _pairwise(boxes: list[list[int]]) -> tuple[float, float]:
    """Largest IoU and largest covered fraction over pairs, computed pair by pair."""
    best_iou = best_cov = 0.0
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            iw = max(0, min(x1 + w1, x2 + w2) - max(x1, x2))
            ih = max(0, min(y1 + h1, y2 + h2) - max(y1, y2))
            inter = iw * ih
            best_iou = max(best_iou, inter / (w1 * h1 + w2 * h2 - inter))
            best_cov = max(best_cov, inter / min(w1 * h1, w2 * h2))
    return best_iou, best_cov


def test_hard_set_respects_overlap_limits_and_is_harder_than_easy(
    det_set: dict, tmp_path: Path
) -> None:
    spec = DetectionSpec()
    coco = _load(det_set["train_json"])
    overlapping = 0
    for img in coco["images"]:
        boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == img["id"]]
        iou, cov = _pairwise(boxes)
        assert iou <= spec.max_overlap_iou + 1e-9 and cov <= spec.max_covered + 1e-9
        overlapping += iou > 0
    assert overlapping >= 3
    easy = make_detection_set(tmp_path, 12, 0, seed=0, spec=DetectionSpec.preset("easy"))
    hard_stats, easy_stats = det_set["stats"]["train"], easy["stats"]["train"]
    assert easy_stats["overlap_frac_iou_0.1"] == 0.0 < hard_stats["overlap_frac_iou_0.1"]
    assert hard_stats["box_side_p50"] < easy_stats["box_side_p50"]
    assert hard_stats["digits_per_image"] > easy_stats["digits_per_image"]


def test_detection_stats_by_hand() -> None:
    coco = {
        "images": [{"id": 1}, {"id": 2}],
        "annotations": [
            {"image_id": 1, "bbox": [0, 0, 10, 10]},
            {"image_id": 1, "bbox": [5, 0, 10, 10]},  # IoU with the first: 50 / 150
            {"image_id": 2, "bbox": [0, 0, 4, 9]},  # side sqrt(36) = 6
        ],
    }
    stats = detection_stats(coco)
    assert stats["images"] == 2 and stats["boxes"] == 3
    assert stats["digits_per_image"] == pytest.approx(1.5)
    assert stats["overlap_frac_iou_0.1"] == pytest.approx(2 / 3)
    assert stats["box_side_p50"] == pytest.approx(10.0)
    assert stats["box_side_p5"] == pytest.approx(6.0 + 0.1 * 4.0)  # linear interpolation


def test_render_glyph_ramp_matches_formula() -> None:
    glyph = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    alpha = render_glyph(glyph, 8, 8, bicubic=False)  # same size: no resampling
    expected = np.clip((glyph - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW), 0, 1)
    expected[expected < MIN_ALPHA] = 0
    np.testing.assert_allclose(alpha, expected, atol=1e-6)
    assert render_glyph(glyph, 23, 17, bicubic=True).shape == (23, 17)


# ------------------------------------------------------------------------------------------
# OpenMMLab loaders
# ------------------------------------------------------------------------------------------


def test_mmdet_coco_dataset_keeps_every_image_and_box(det_set: dict) -> None:
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    for split in ("train", "val"):
        cfg = dict(
            type="CocoDataset",
            data_root=det_set["data_root"],
            ann_file=f"annotations/{split}.json",
            data_prefix=dict(img=f"{split}/"),
            metainfo=dict(classes=DIGIT_CLASSES),
            filter_cfg=dict(filter_empty_gt=True),
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True),
                dict(type="PackDetInputs"),
            ],
        )
        with DefaultScope.overwrite_default_scope("mmdet"):
            dataset = DATASETS.build(cfg)
            items = [dataset[i] for i in range(len(dataset))]
        raw = _load(det_set[f"{split}_json"])
        assert len(dataset) == len(raw["images"])
        n_boxes = 0
        for item in items:
            sample = item["data_samples"]
            assert tuple(item["inputs"].shape) == (3, 128, 128)
            anns = [a for a in raw["annotations"] if a["image_id"] == sample.img_id]
            want = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
            np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), want)
            labels = sample.gt_instances.labels.numpy().tolist()
            assert labels == [a["category_id"] - 1 for a in anns]
            n_boxes += len(sample.gt_instances)
        assert n_boxes == len(raw["annotations"]) == det_set[f"num_{split}_boxes"]
    assert DETECTION_METAINFO["classes"] == DIGIT_CLASSES


def test_mmpretrain_custom_dataset_reads_classification_set(cls_set: dict) -> None:
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS

    for split, n in (("train", 30), ("val", 10)):
        cfg = dict(
            type="CustomDataset",
            data_root=cls_set["data_root"],
            ann_file=f"annotations/{split}.txt",
            data_prefix=split,
            metainfo=CLASSIFICATION_METAINFO,
            pipeline=[dict(type="LoadImageFromFile"), dict(type="PackInputs")],
        )
        with DefaultScope.overwrite_default_scope("mmpretrain"):
            dataset = DATASETS.build(cfg)
            first = dataset[0]
        assert len(dataset) == n == cls_set[f"num_{split}"]
        assert tuple(dataset.metainfo["classes"]) == DIGIT_CLASSES
        gt = dataset.get_gt_labels().tolist()
        assert gt == [i % 10 for i in range(n)]
        assert np.bincount(gt, minlength=10).tolist() == cls_set[f"{split}_class_counts"]
        assert tuple(first["inputs"].shape) == (3, 32, 32)
        assert int(first["data_samples"].gt_label) == 0


# ------------------------------------------------------------------------------------------
# Specs and CLI
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(digits_per_image=(5, 2)),
        dict(digit_size=(8.0, 200.0)),
        dict(max_overlap_iou=1.0),
        dict(overlap_prob=1.5),
        dict(noise_std=-0.1),
        dict(image_size=8),
        dict(contrast=(0.0, 0.5)),
    ],
)
def test_detection_spec_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DetectionSpec(**kwargs)


def test_presets_and_bad_arguments(tmp_path: Path) -> None:
    assert DetectionSpec.preset("hard") == DetectionSpec()
    assert DetectionSpec.preset("hard", image_size=256).digit_size == (16.0, 56.0)
    assert ClassificationSpec.preset("easy").distractors_per_image == (0, 0)
    with pytest.raises(ValueError, match="difficulty"):
        DetectionSpec.preset("medium")
    with pytest.raises(ValueError, match="digit_size"):
        ClassificationSpec(image_size=16)
    with pytest.raises(ValueError, match="num_train"):
        make_detection_set(tmp_path, -1, 2)
    with pytest.raises(ValueError, match="spec"):
        make_detection_set(tmp_path, 1, 1, spec=ClassificationSpec())


def test_cli_writes_both_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(REPO / "tools" / "make_digits.py"), run_name="make_digits")
    argv = ["--out", str(tmp_path), "--num-train", "3", "--num-val", "2", "--image-size", "64"]
    written = module["main"](argv + ["--difficulty", "easy"])
    printed = capsys.readouterr().out
    assert "detection (easy" in printed and "classification (easy" in printed
    train = _load(written["det"]["train_json"])
    assert len(train["images"]) == 3 and train["images"][0]["width"] == 64
    assert len((tmp_path / "cls" / "annotations" / "val.txt").read_text().splitlines()) == 2
