"""Build the student and teacher from model dicts or ``cfg_path`` references, load weights."""

from __future__ import annotations

import os.path as osp
from typing import Any

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from kd_det.registry import MODELS


def resolve_model_cfg(spec: dict[str, Any] | ConfigDict, role: str) -> ConfigDict:
    """The model dict for ``spec``: a full model dict, or ``dict(cfg_path=..., **overrides)``.

    ``cfg_path`` is ``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``,
    ``'mmpretrain::resnet/resnet18_8xb32_in1k.py'`` or a local config file; its ``model`` is
    taken and the other keys of ``spec`` are merged into it (nested dicts merge key by key).
    The result carries ``_scope_`` (the package of ``cfg_path``, or the config's
    ``default_scope``) so its bare type names resolve wherever it is built.
    """
    spec = dict(spec)
    if "cfg_path" not in spec:
        if "type" not in spec:
            raise ValueError(f"{role} must be a model dict with 'type' or a dict with 'cfg_path'")
        return ConfigDict(spec)  # mmdet reads nested train_cfg/test_cfg by attribute
    cfg_path = spec.pop("cfg_path")
    if "::" in cfg_path:
        cfg = get_config(cfg_path)
        scope = cfg_path.split("::", 1)[0]
    elif osp.isfile(cfg_path):
        cfg = Config.fromfile(cfg_path)
        scope = cfg.get("default_scope")
    else:
        raise ValueError(
            f"{role} cfg_path {cfg_path!r} is neither 'package::path' nor an existing file"
        )
    if "model" not in cfg:
        raise ValueError(f"{role} config {cfg_path!r} has no 'model'")
    merged = Config(dict(model=cfg.model.to_dict()))
    if spec:
        merged.merge_from_dict(dict(model=spec))
    model = merged.model
    if scope is not None:
        model.setdefault("_scope_", scope)
    return model


def build_model(spec: dict[str, Any] | ConfigDict | nn.Module, role: str) -> nn.Module:
    """Build the ``role`` ('student'/'teacher') model from a spec (or pass a module through)."""
    if isinstance(spec, nn.Module):
        return spec
    cfg = resolve_model_cfg(spec, role)
    try:
        return MODELS.build(cfg)
    except KeyError as err:
        raise KeyError(
            f"{role} type {cfg.get('type')!r} is not registered in the current scope: give the "
            "model dict `_scope_='mmdet'` (or 'mmpretrain'), or use cfg_path='mmdet::...' "
            f"({err})"
        ) from err


def _examples(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (" …" if len(keys) > n else "")


def load_teacher_weights(teacher: nn.Module, path: str, strict: bool = True) -> None:
    """Load ``path`` into ``teacher`` or raise a ``ValueError`` saying how it does not fit.

    Missing and unexpected keys are counted with examples; with ``strict=False`` they are
    allowed (a deliberate partial load) and logged. Shape mismatches are always an error.
    """
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location="cpu")
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"teacher checkpoint {path!r} holds no state_dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = teacher.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {_examples(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {_examples(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {_examples(mismatched, 3)})")
    if mismatched or (problems and strict):
        hint = "" if mismatched else "; pass teacher_strict=False for a deliberate partial load"
        raise ValueError(
            f"teacher checkpoint {path!r} does not fit the teacher "
            f"{type(teacher).__name__} ({len(own)} keys): {'; '.join(problems)}{hint}"
        )
    if problems:
        print_log(f"partial teacher load from {path}: {'; '.join(problems)}", logger="current")
    teacher.load_state_dict(state, strict=False)


def probe_data_samples(model: nn.Module, batch: int, height: int, width: int) -> list | None:
    """Data samples a model's ``mode='tensor'`` forward needs for a dummy batch (or None)."""
    try:
        from mmdet.models.detectors import BaseDetector
        from mmdet.structures import DetDataSample
    except ImportError:  # mmdet not installed: classifiers need no samples
        return None
    if not isinstance(model, BaseDetector):
        return None
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0),
    )
    return [DetDataSample(metainfo=meta) for _ in range(batch)]
