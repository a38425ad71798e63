"""Export the student of a distillation checkpoint as a plain mmdet/mmpretrain checkpoint.

    python tools/export_student.py CONFIG CHECKPOINT OUT.pth

Writes OUT.pth (the student's weights, no teacher, no connectors) and OUT.py (the student's
config), which mmdet's own ``tools/test.py OUT.py OUT.pth`` evaluates.
"""

from __future__ import annotations

import argparse
import os

from kd_det.cli import MissingInput, read_config
from kd_det.export import export_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("config", help="the distillation config")
    parser.add_argument("checkpoint", help="a checkpoint the distillation run saved")
    parser.add_argument("out", help="output .pth path; the config is written beside it as .py")
    args = parser.parse_args()
    config = read_config(args.config)
    if not os.path.isfile(args.checkpoint):
        raise MissingInput(args.checkpoint, "checkpoint", "Give a checkpoint the training saved.")
    ckpt, cfg = export_student(config, args.checkpoint, args.out)
    print(f"student checkpoint: {ckpt}\nstudent config:     {cfg}")


if __name__ == "__main__":
    main()
