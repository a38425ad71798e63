"""Export the student of a distillation checkpoint as a plain mmdet/mmpretrain checkpoint.

    python tools/export_student.py CONFIG CHECKPOINT OUT.pth [--network net1|net2]

Writes OUT.pth (the student's weights, no teacher, no connectors) and OUT.py (the student's
config), which mmdet's own ``tools/test.py OUT.py OUT.pth`` evaluates. A mutual-learning
checkpoint (``kd_det.MutualDistiller``) holds two networks: ``--network`` names the one to export.
"""

from __future__ import annotations

import argparse
import os

from kd_det.cli import MissingInput, read_config
from kd_det.distillers.optim import NETWORKS
from kd_det.export import export_student, is_mutual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("config", help="the distillation config")
    parser.add_argument("checkpoint", help="a checkpoint the distillation run saved")
    parser.add_argument("out", help="output .pth path; the config is written beside it as .py")
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        help="the network to export from a mutual-learning checkpoint (required there)",
    )
    args = parser.parse_args()
    config = read_config(args.config)
    if is_mutual(config) and args.network is None:
        parser.error(
            "this mutual-learning checkpoint holds two networks: add --network net1 or "
            "--network net2"
        )
    if not is_mutual(config) and args.network is not None:
        parser.error("--network applies to mutual-learning configs (kd_det.MutualDistiller)")
    if not os.path.isfile(args.checkpoint):
        raise MissingInput(args.checkpoint, "checkpoint", "Give a checkpoint the training saved.")
    ckpt, cfg = export_student(config, args.checkpoint, args.out, network=args.network)
    name = args.network or "student"
    print(f"{name} checkpoint: {ckpt}\n{name} config:     {cfg}")


if __name__ == "__main__":
    main()
