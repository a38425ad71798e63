"""Write the handwritten-digit detection and classification sets (nothing is downloaded).

Example::

    python tools/make_digits.py --out data/digits --num-train 2000 --num-val 500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from kd_det.datasets import (
    DIFFICULTIES,
    ClassificationSpec,
    DetectionSpec,
    make_classification_set,
    make_detection_set,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/digits", help="root folder (default data/digits)")
    parser.add_argument("--num-train", type=int, default=2000, help="train images per set")
    parser.add_argument("--num-val", type=int, default=500, help="val images per set")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument(
        "--image-size", type=int, default=128, help="detection canvas side in px (default 128)"
    )
    parser.add_argument(
        "--cls-image-size", type=int, default=32, help="classification image side (default 32)"
    )
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="hard")
    parser.add_argument(
        "--only", choices=("det", "cls"), default=None, help="write only one of the two sets"
    )
    args = parser.parse_args(argv)
    if args.num_train < 0 or args.num_val < 0:
        parser.error("--num-train and --num-val must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    """Write the sets and print what was written; returns the writers' summaries."""
    args = parse_args(argv)
    written: dict[str, dict] = {}
    if args.only in (None, "det"):
        start = time.perf_counter()
        spec = DetectionSpec.preset(args.difficulty, image_size=args.image_size)
        det = make_detection_set(args.out, args.num_train, args.num_val, args.seed, spec)
        written["det"] = det
        print(f"detection ({args.difficulty}, {time.perf_counter() - start:.1f} s):")
        for split in ("train", "val"):
            print(
                f"  {split}: {det[f'num_{split}_images']} images, {det[f'num_{split}_boxes']} boxes"
                f" -> {det[f'{split}_images']}, {det[f'{split}_json']}"
            )
            print(f"    stats: {json.dumps(det['stats'][split])}")
    if args.only in (None, "cls"):
        start = time.perf_counter()
        spec_c = ClassificationSpec.preset(args.difficulty, image_size=args.cls_image_size)
        cls = make_classification_set(args.out, args.num_train, args.num_val, args.seed, spec_c)
        written["cls"] = cls
        print(f"classification ({args.difficulty}, {time.perf_counter() - start:.1f} s):")
        for split in ("train", "val"):
            print(
                f"  {split}: {cls[f'num_{split}']} images -> {cls[f'{split}_images']},"
                f" {cls[f'{split}_ann']}; per class {cls[f'{split}_class_counts']}"
            )
    return written


if __name__ == "__main__":
    main()
