"""Build the student and teacher from model dicts or ``cfg_path`` references, load weights."""

from __future__ import annotations

import difflib
import glob
import importlib.util
import os.path as osp
import re
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.config import Config, ConfigDict
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.hub import get_config
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.utils import get_installed_path
from torch import nn

from kd_det.compat import CheckpointError
from kd_det.registry import MODELS, check_type

# how to make a teacher checkpoint, for the errors about a missing or unusable one
TRAIN_TEACHER = (
    "train the teacher first (python tools/train.py TEACHER_CONFIG; its config is in "
    "configs/baselines/) or set teacher_ckpt to its checkpoint"
)


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
        cfg = _package_config(cfg_path, role)
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


def _package_config(cfg_path: str, role: str) -> Config:
    """``get_config(cfg_path)`` for ``'package::path'``, with one clear error for a package that
    is not installed (mmengine would try to pip-install it) or a config it does not have."""
    package, rel = cfg_path.split("::", 1)
    if package not in MODULE2PACKAGE:
        raise ValueError(
            f"{role} cfg_path {cfg_path!r}: {package!r} is not an OpenMMLab package mmengine "
            f"reads configs from; valid: {sorted(MODULE2PACKAGE)}"
        )
    if importlib.util.find_spec(package) is None:
        raise ValueError(
            f"{role} cfg_path {cfg_path!r}: the package {package!r} is not installed (pip install "
            f"{MODULE2PACKAGE[package]}), or use a local config file"
        )
    root = osp.join(get_installed_path(package), ".mim", "configs")
    if not osp.isfile(osp.join(root, rel)):
        known = sorted(
            osp.relpath(p, root) for p in glob.glob(osp.join(root, "**", "*.py"), recursive=True)
        )
        close = difflib.get_close_matches(rel, known, n=1, cutoff=0.8)
        hint = f" (did you mean '{package}::{close[0]}'?)" if close else ""
        raise ValueError(
            f"{role} cfg_path {cfg_path!r}: {package} has no config {rel!r}{hint}; its configs "
            f"are the .py files under {root}"
        )
    return get_config(cfg_path)


_NOT_REGISTERED = re.compile(r"^'?(?P<name>\S+) is not in the (?P<scope>[\w.-]+)::\S+ registry")
_SCOPE_HINT = (
    "a model of mmdet or mmpretrain needs the model dict's _scope_='mmdet' (or 'mmpretrain'), "
    "a scoped type such as type='mmdet.RetinaNet', or cfg_path='mmdet::...'"
)


def build_model(spec: dict[str, Any] | ConfigDict | nn.Module, role: str) -> nn.Module:
    """Build the ``role`` ('student'/'teacher') model from a spec (or pass a module through).

    An unknown ``type``, at the top or nested (``backbone=dict(type=...)``), is one
    ``ValueError`` naming the role, the type and the closest registered name.
    """
    if isinstance(spec, nn.Module):
        return spec
    cfg = resolve_model_cfg(spec, role)
    try:
        check_type(cfg.get("type"), MODELS, kind="model", scope=cfg.get("_scope_"), valid=[])
    except ValueError as err:
        raise ValueError(f"{role} model: {err}; {_SCOPE_HINT}") from None
    try:
        return MODELS.build(cfg)
    except KeyError as err:
        found = _NOT_REGISTERED.match(str(err.args[0]) if err.args else "")
        if found is None:
            raise
        try:
            check_type(found["name"], MODELS, kind="module", scope=found["scope"], valid=[])
        except ValueError as unknown:
            raise ValueError(
                f"{role} model {cfg.get('type')!r}: one of its parts has an {unknown}"
            ) from None
        raise


def _examples(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (" …" if len(keys) > n else "")


def _state_dict(checkpoint: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: the dict itself or its ``'state_dict'``; else an error."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if (
        isinstance(state, Mapping)
        and state
        and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        return {k.removeprefix("module."): v for k, v in state.items()}
    if isinstance(state, Mapping):
        others = [
            f"{k!r} ({type(v).__name__})"
            for k, v in state.items()
            if not isinstance(v, torch.Tensor)
        ]
        held = (
            f"a dict with non-tensor entries ({_examples(others, 3)})"
            if others
            else "an empty dict"
        )
    else:
        held = f"a {type(checkpoint).__name__}"
    raise ValueError(
        f"teacher_ckpt {path!r} holds {held}, not a model's weights: a checkpoint is a dict of "
        "tensors by parameter name (a state_dict), alone or under 'state_dict' as mmengine saves "
        f"it; {TRAIN_TEACHER}"
    )


def _other_model_hint(state: Mapping[str, Any], own: Mapping[str, Any]) -> str:
    """Why a checkpoint shares no key with the teacher, when it can be told."""
    if set(state) & set(own):
        return ""
    prefixes = sorted({k.split(".", 1)[0] for k in state})
    if "student" in prefixes:
        return (
            f"; none of its keys is the teacher's and they start with {prefixes}: it is the "
            "checkpoint of a distillation run. Export its student first (python "
            "tools/export_student.py CONFIG CHECKPOINT OUT.pth) and set teacher_ckpt to OUT.pth"
        )
    return (
        f"; none of its {len(state)} keys is one of the teacher's: it is the checkpoint of "
        "another model. Check that teacher_ckpt was trained with the teacher's config"
    )


def state_dict_problems(
    own: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    shown_mismatches: int = 3,
    shown_keys: int = 5,
) -> tuple[list[str], list[str]]:
    """How ``state`` does not fit a model whose state dict is ``own``: one line per kind of
    problem (missing keys, unexpected keys, shape mismatches, each with examples), and the shape
    mismatches themselves."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {_examples(missing, shown_keys)})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys (e.g. {_examples(unexpected, shown_keys)})"
        )
    if mismatched:
        problems.append(
            f"{len(mismatched)} shape mismatches (e.g. {_examples(mismatched, shown_mismatches)})"
        )
    return problems, mismatched


def load_teacher_weights(teacher: nn.Module, path: str, strict: bool = True) -> None:
    """Load ``path`` into ``teacher`` or raise an error saying how it does not fit.

    A missing local file is a ``FileNotFoundError``; a file that is not a checkpoint, corrupt
    or refused by the safe loader (:mod:`kd_det.compat`) keeps its error type, prefixed with
    ``teacher_ckpt``. Missing and unexpected keys are counted with examples; with
    ``strict=False`` they are allowed (a deliberate partial load) and logged. Shape mismatches
    are always an error.
    """
    if "://" not in path and not osp.isfile(path):
        raise FileNotFoundError(f"teacher_ckpt {path!r} does not exist; {TRAIN_TEACHER}")
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location="cpu")
    except CheckpointError as err:
        raise type(err)(f"teacher_ckpt: {err}") from None
    state = _state_dict(checkpoint, path)
    own = teacher.state_dict()
    problems, mismatched = state_dict_problems(own, state, shown_mismatches=3)
    if mismatched or (problems and strict):
        hint = _other_model_hint(state, own)
        if not hint and not mismatched:
            hint = "; pass teacher_strict=False for a deliberate partial load"
        raise ValueError(
            f"teacher_ckpt {path!r} does not fit the teacher "
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
