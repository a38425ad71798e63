"""Build a model from a config, and read a finished run's metrics: the two entry points that
tools, experiments and tests share instead of repeating the Runner's steps by hand.

    >>> from kd_det.apis import build_model_from_cfg, read_metrics
    >>> model = build_model_from_cfg('configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py',
    ...                              cfg_options={'model.teacher_ckpt': None})
    >>> read_metrics('work_dirs/srd_retinanet-w32-w8_fpn_24e_digits')['coco/bbox_mAP']
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import import_modules_from_strings
from torch import nn

__all__ = ["build_model_from_cfg", "read_metrics", "read_scalars"]

#: Keys of a validation record that describe the loop, not the model.
_NOT_METRICS = frozenset({"step", "time", "data_time", "iter", "epoch", "memory"})


def build_model_from_cfg(
    cfg: Config | str | os.PathLike, cfg_options: dict[str, Any] | None = None
) -> nn.Module:
    """Build ``cfg.model`` the way mmengine's Runner does, without a Runner.

    Imports kd_det (so ``kd_det.*`` types resolve) and the config's ``custom_imports``, sets the
    config's ``default_scope`` as the process's default scope (as the Runner does), merges
    ``cfg_options`` (dotted keys, as ``--cfg-options``) into a copy of the config and builds
    its ``model``. The model is returned as built: in training mode, on the CPU, with the
    weights its constructor gave it — the Runner's ``init_weights()`` (e.g. RetinaNet's
    classifier bias prior) is left to the caller, who may be about to load a checkpoint.

    Args:
        cfg: a config, or the path of a config file.
        cfg_options: overrides such as ``{'model.teacher_ckpt': None}``.

    Raises:
        ValueError: the config has no ``model``.
    """
    import kd_det  # noqa: F401  (registers kd_det's modules and its checkpoint-loading fix)

    cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config.fromfile(os.fspath(cfg))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if "model" not in cfg:
        raise ValueError(f"config {cfg.filename!r} has no 'model' to build")
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    if cfg.get("default_scope"):
        init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def read_scalars(work_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record a Runner logged to ``work_dir/<timestamp>/vis_data/scalars.json``, runs in
    chronological order (a resumed run adds a timestamp folder), records in logged order.

    Training records carry ``iter`` (and ``lr``, the losses); a validation record carries the
    metrics, ``time``, ``data_time`` and ``step`` (the epoch or iteration).

    Raises:
        FileNotFoundError: ``work_dir`` holds no ``*/vis_data/scalars.json``.
    """
    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))  # timestamps sort in time
    if not files:
        raise FileNotFoundError(
            f"no */vis_data/scalars.json under {os.fspath(work_dir)!r}: not a Runner work dir, "
            "or the run logged nothing yet"
        )
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def read_metrics(work_dir: str | os.PathLike) -> dict[str, float]:
    """The last validation (or test) metrics of the Runner run(s) in ``work_dir``.

    Reads :func:`read_scalars` and returns the last validation record (one without ``iter``)
    with the loop's bookkeeping (``step``, ``time``, ``data_time``) and any non-numeric value
    left out, e.g. ``{'coco/bbox_mAP': 0.412, 'coco/bbox_mAP_50': 0.71, ...}`` or
    ``{'accuracy/top1': 83.2}``. An evaluation-only run (``tools/test.py``, mmdet's
    ``test.py``) writes no ``scalars.json`` but ``<timestamp>/<timestamp>.json``; its last record
    is read instead. Empty when no evaluation ran, or when it logged no metric (mmdet's
    ``CocoMetric`` logs none for a model that made no detection at all).

    Raises:
        FileNotFoundError: ``work_dir`` holds neither kind of log.
    """
    try:
        records = [r for r in read_scalars(work_dir) if "iter" not in r]
    except FileNotFoundError:
        tests = sorted(p for p in Path(work_dir).glob("*/*.json") if p.stem == p.parent.name)
        if not tests:
            raise
        records = [json.loads(line) for line in tests[-1].read_text().splitlines() if line]
    if not records:
        return {}
    return {
        key: float(value)
        for key, value in records[-1].items()
        if key not in _NOT_METRICS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    }
