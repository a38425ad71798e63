"""Train a model (a distiller, or a plain mmdet/mmpretrain model) from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Multi-GPU: ``torchrun --nproc-per-node N tools/train.py CONFIG --launcher pytorch``.
"""

from __future__ import annotations

import argparse

import torch
from mmengine.config import Config

import kd_det  # noqa: F401  (registers kd_det and its checkpoint-loading fix)
from kd_det.cli import (
    add_common_args,
    build_runner,
    check_inputs,
    close_process_group,
    load_config,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a model with kd_det available")
    add_common_args(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from CKPT, or from the latest checkpoint in the work dir if none is given",
    )
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (CUDA)")
    parser.add_argument(
        "--auto-scale-lr", action="store_true", help="scale the lr by the actual batch size"
    )
    return parser.parse_args()


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit("--amp needs a CUDA device (mmengine's AmpOptimWrapper); none found")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise SystemExit("--auto-scale-lr needs auto_scale_lr.base_batch_size in the config")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_inputs(cfg, ("train", "val") if cfg.get("val_dataloader") else ("train",))
    return cfg


def main() -> None:
    build_runner(build_cfg(parse_args())).train()


if __name__ == "__main__":
    main()
    close_process_group()  # after main: its Runner, holding the group, is gone
