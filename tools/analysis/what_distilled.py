"""What did the student learn from its teacher? Compare a teacher, distilled students and an
independent student (and optionally an unrelated control model) on localization (Grad-CAM),
adversarial transfer, invariance to colour jitter, CKA and agreement — the protocol of "What
Knowledge Gets Distilled in Knowledge Distillation?" (arXiv:2205.16004), for mmpretrain
classifiers and mmdet detectors.

    python tools/analysis/what_distilled.py \\
        --teacher configs/baselines/resnet18-w32_30e_digits-cls.py T.pth \\
        --distilled configs/kd/kd_resnet18-w32-w8_30e_digits-cls.py KD.pth \\
        --distilled configs/fitnet/fitnet_resnet18-w32-w8_30e_digits-cls.py FITNET.pth \\
        --independent configs/baselines/resnet18-w8_30e_digits-cls.py STUDENT.pth \\
        --control configs/baselines/convmixer-96-6_30e_digits-cls.py CONTROL.pth \\
        --num-images 500 --out outputs/what_distilled

Each model is ``CONFIG CHECKPOINT``: a plain or exported model, or a distiller config with its
checkpoint (the student is analysed). ``--distilled CONFIG CHECKPOINT [NAME [METHOD]]`` names a
student (default: its config's name) and its method (``kd``, ``fitnet``, ...; default: the
config name's first word); the others are named teacher, independent and control. Writes
``report.json``, ``report.md`` and PNG figures to ``--out``; see docs/what_distilled.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from mmengine.config import Config, DictAction

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from kd_det.analysis.what_distilled import (  # noqa: E402
    PROPERTIES,
    AnalysisOptions,
    AttackSpec,
    JitterSpec,
    ModelSpec,
    analyse,
    write_report,
)
from kd_det.analysis.what_distilled.models import model_config  # noqa: E402
from kd_det.cli import MissingInput, check_inputs, read_config  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", nargs=2, metavar=("CONFIG", "CKPT"), required=True)
    parser.add_argument(
        "--distilled", nargs="+", action="append", required=True,
        metavar="CONFIG CKPT [NAME [METHOD]]", help="a distilled student (repeat for more)",
    )  # fmt: skip
    parser.add_argument("--independent", nargs=2, metavar=("CONFIG", "CKPT"), required=True)
    parser.add_argument(
        "--control", nargs=2, metavar=("CONFIG", "CKPT"),
        help="an unrelated model of the same task: its attacks are the adversarial control",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("outputs/what_distilled"))
    parser.add_argument("--num-images", type=int, help="a seeded random subset of the split")
    parser.add_argument("--batch-size", type=int, help="default: the config's dataloader's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument(
        "--properties", nargs="+", choices=PROPERTIES, default=list(PROPERTIES),
        metavar="PROPERTY", help=f"subset of {', '.join(PROPERTIES)}",
    )  # fmt: skip
    parser.add_argument("--eps", type=float, default=8.0, help="attack radius, pixels 0-255")
    parser.add_argument("--step", type=float, default=2.0, help="attack step, pixels 0-255")
    parser.add_argument("--steps", type=int, default=5, help="attack steps (k)")
    parser.add_argument("--brightness", type=float, default=0.4)
    parser.add_argument("--contrast", type=float, default=0.4)
    parser.add_argument("--saturation", type=float, default=0.4)
    parser.add_argument("--hue", type=float, default=0.2)
    parser.add_argument("--score-thr", type=float, default=0.3, help="detections kept")
    parser.add_argument("--iou-thr", type=float, default=0.5, help="matching IoU")
    parser.add_argument("--cka-layers", nargs="+", metavar="MODULE", help="module paths")
    parser.add_argument("--cka-images", type=int, default=500)
    parser.add_argument("--cam-chunk", type=int, default=64, help="boxes per Grad-CAM call")
    parser.add_argument("--examples", type=int, default=4, help="images in the CAM figure")
    parser.add_argument(
        "--data-root", help="data_root of the split's dataset (default: the teacher config's)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={},
        help="overrides of the teacher config used to build the dataset",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for entry in args.distilled:
        if not 2 <= len(entry) <= 4:
            parser.error(
                f"--distilled takes CONFIG CKPT [NAME [METHOD]], got {len(entry)} values: {entry}"
            )
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def _spec(entry: list[str], what: str, name: str | None = None) -> ModelSpec:
    config, checkpoint, *rest = entry
    if not os.path.isfile(config):
        raise MissingInput(config, f"{what} config", "Configs live under configs/<method>/.")
    if not os.path.isfile(checkpoint):
        raise MissingInput(
            checkpoint, f"{what} checkpoint", f"Train it first: python tools/train.py {config}"
        )
    name = rest[0] if rest else name
    method = rest[1] if len(rest) > 1 else None
    return ModelSpec(config, checkpoint, name=name, method=method)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    teacher = _spec(args.teacher, "teacher", "teacher")
    distilled = [_spec(entry, "distilled") for entry in args.distilled]
    independent = _spec(args.independent, "independent", "independent")
    control = _spec(args.control, "control", "control") if args.control else None
    dataset_options = dict(args.cfg_options)
    if args.data_root:
        dataset_options[f"{args.split}_dataloader.dataset.data_root"] = args.data_root
    cfg = model_config(read_config(teacher.config_label, dataset_options))
    loader = cfg.get(f"{args.split}_dataloader")
    if loader:  # a missing image folder or annotation file: one line naming it
        check_inputs(Config({f"{args.split}_dataloader": loader.to_dict()}), (args.split,))
    try:
        options = AnalysisOptions(
            num_images=args.num_images,
            batch_size=args.batch_size,
            seed=args.seed,
            properties=tuple(args.properties),
            attack=AttackSpec(eps=args.eps, step=args.step, steps=args.steps),
            jitter=JitterSpec(args.brightness, args.contrast, args.saturation, args.hue),
            score_thr=args.score_thr,
            iou_thr=args.iou_thr,
            cka_layers=tuple(args.cka_layers) if args.cka_layers else None,
            cka_images=args.cka_images,
            cam_chunk=args.cam_chunk,
            num_examples=args.examples,
            split=args.split,
            dataset_options=dataset_options or None,
            progress=not args.no_progress,
        )
        result = analyse(teacher, distilled, independent, control, options)
    except ValueError as error:
        raise SystemExit(f"kd_det: {error}") from None
    paths = write_report(result, args.out)
    print(paths["markdown"].read_text())
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
