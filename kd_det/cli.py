"""What the tools share: common arguments, config loading, input checks and the Runner."""

from __future__ import annotations

import argparse
import gc
import os
import os.path as osp
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import HOOKS, MODELS, RUNNERS
from mmengine.runner import Runner

from kd_det.registry import HOOKS as KD_HOOKS
from kd_det.registry import check_type

DATALOADERS = {
    "train": ("train_dataloader",),
    "val": ("val_dataloader", "val_evaluator"),
    "test": ("test_dataloader", "test_evaluator"),
}


class MissingInput(SystemExit):
    """A file or folder a tool needs does not exist: one line naming it and how to make it."""

    def __init__(self, path: str, what: str, how: str) -> None:
        super().__init__(f"kd_det: {what} {path!r} does not exist. {how}")


class BadConfig(SystemExit):
    """A config names something that does not exist (a registered type): one line naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"kd_det: {message}")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``config``, ``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument("config", help="config file path")
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config entries, e.g. train_cfg.max_epochs=2",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def read_config(path: str, cfg_options: dict[str, Any] | None = None) -> Config:
    """``Config.fromfile(path)`` with ``cfg_options`` merged; a missing file is one clear line."""
    if not osp.isfile(path):
        raise MissingInput(path, "config file", "Configs live under configs/<method>/.")
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_config(args: argparse.Namespace) -> Config:
    """The config with the common arguments applied (work dir defaults to work_dirs/<name>)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = read_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg


def how_to_make(path: str) -> str:
    """What a user runs to create a missing data file or folder."""
    if "digits" in path:
        return "Write the digits sets with: python tools/make_digits.py --out data/digits"
    if "coco" in path:
        return "Put COCO2017 under data/coco/ (annotations/, train2017/, val2017/)."
    return "Point the config at an existing data set (data_root, ann_file, data_prefix)."


def _datasets(dataset: Any) -> Iterator[Any]:
    """The dataset dict and those it wraps (RepeatDataset, ClassBalancedDataset, Concat...)."""
    if not isinstance(dataset, dict):
        return
    yield dataset
    yield from _datasets(dataset.get("dataset"))
    for inner in dataset.get("datasets", []) or []:
        yield from _datasets(inner)


def _join(root: str | None, path: str) -> str:
    return osp.join(root, path) if root and not osp.isabs(path) else path


def check_inputs(cfg: Config, stages: Sequence[str] = ("train", "val")) -> None:
    """Raise :class:`MissingInput` for the first missing input the ``stages`` would read.

    Checked: each dataset's annotation file and image folder, each evaluator's annotation file,
    ``load_from``, and a distiller's ``teacher_ckpt``. Called by the tools before the Runner is
    built, so a missing file is one line naming it and the command that makes it, not a
    traceback from deep inside pycocotools or ``torch.load`` after minutes of set-up. The
    model's and the custom hooks' types are checked first (:func:`check_types`).
    """
    check_types(cfg)
    for stage in stages:
        loader_key, *evaluator_key = DATALOADERS[stage]
        loader = cfg.get(loader_key)
        if not loader:
            continue
        for dataset in _datasets(loader.get("dataset")):
            root = dataset.get("data_root")
            if root and not osp.isdir(root):
                raise MissingInput(root, f"{loader_key} data folder", how_to_make(root))
            ann = dataset.get("ann_file")
            if ann:
                path = _join(root, ann)
                if not osp.isfile(path):
                    raise MissingInput(path, f"{loader_key} annotation file", how_to_make(path))
            prefix = dataset.get("data_prefix") or {}
            for folder in prefix.values() if isinstance(prefix, dict) else [prefix]:
                path = _join(root, folder)
                if isinstance(folder, str) and folder and not osp.isdir(path):
                    raise MissingInput(path, f"{loader_key} image folder", how_to_make(path))
        for key in evaluator_key:
            evaluators = cfg.get(key) or []
            for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
                if isinstance(evaluator, dict) and isinstance(evaluator.get("metric"), dict):
                    evaluator = evaluator["metric"]  # a wrapper such as kd_det.MutualMetric
                ann = evaluator.get("ann_file") if isinstance(evaluator, dict) else None
                if ann and not osp.isfile(ann):
                    raise MissingInput(ann, f"{key} annotation file", how_to_make(ann))
    check_checkpoints(cfg)


def check_types(cfg: Config) -> None:
    """Raise :class:`BadConfig` if ``model.type`` or a ``custom_hooks`` type is not registered.

    The Runner would stop at the same place with mmengine's ``KeyError``; this one line adds
    the closest registered name (kd_det's and every loaded scope's, e.g. ``'kd_det.X'`` for a
    kd_det hook named without its scope in an mmdet config) and kd_det's hooks.
    """
    scope = cfg.get("default_scope")
    model = cfg.get("model")
    if isinstance(model, dict) and isinstance(model.get("type"), str):
        try:
            check_type(model["type"], MODELS, "model", model.get("_scope_", scope), valid=[])
        except ValueError as err:
            raise BadConfig(f"model: {err}") from None
    hooks = cfg.get("custom_hooks") or []
    KD_HOOKS.import_from_location()
    for n, hook in enumerate(hooks if isinstance(hooks, list) else [hooks]):
        if not isinstance(hook, dict) or not isinstance(hook.get("type"), str):
            continue
        try:
            check_type(
                hook["type"],
                HOOKS,
                "hook",
                hook.get("_scope_", scope),
                valid=[f"kd_det.{name}" for name in sorted(KD_HOOKS.module_dict)],
                valid_label="kd_det's hooks",
            )
        except ValueError as err:
            raise BadConfig(f"custom_hooks[{n}]: {err}") from None


def check_checkpoints(cfg: Config) -> None:
    """``load_from`` and a distiller's ``teacher_ckpt`` must exist where they are local files."""
    load_from = cfg.get("load_from")
    if load_from and "://" not in load_from and not osp.isfile(load_from):
        raise MissingInput(load_from, "checkpoint", "Check the path (load_from / --resume).")
    model = cfg.get("model") or {}
    teacher_ckpt = model.get("teacher_ckpt") if isinstance(model, dict) else None
    if teacher_ckpt and "://" not in teacher_ckpt and not osp.isfile(teacher_ckpt):
        raise MissingInput(
            teacher_ckpt,
            "teacher checkpoint",
            "Train the teacher first (python tools/train.py TEACHER_CONFIG; its config is in "
            "configs/baselines/) or set model.teacher_ckpt to its checkpoint.",
        )


def build_runner(cfg: Config) -> Runner:
    return Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)


def close_process_group() -> None:
    """End a distributed run (torchrun ``--launcher pytorch``): no-op in a single process.

    torch asks every process of a group to call ``destroy_process_group`` once it is done
    communicating; mmengine's Runner does not. Without it gloo's worker threads can outlive
    the interpreter and abort a rank that finished ("terminate called without an active
    exception"), so a finished run exits non-zero. Call it after the Runner is gone: its
    DDP wrapper holds the group too. The ranks meet at a barrier first, so none closes its
    end of a connection another still uses.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    gc.collect()  # the Runner's DDP wrapper, if a reference cycle still holds it
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
