"""Turn a distillation checkpoint into a plain student checkpoint and config."""

from __future__ import annotations

import copy
import os
import os.path as osp

import torch
from mmengine.config import Config

from kd_det.compat import load_local_checkpoint
from kd_det.distillers.models import resolve_model_cfg

STUDENT_PREFIX = "student."


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student's model and kd_det's
    distillation hooks removed — a config mmdet's/mmpretrain's own tools accept."""
    if "student" not in cfg.model:
        raise ValueError(f"config model {cfg.model.get('type')!r} is not a distiller (no student)")
    out = copy.deepcopy(cfg)
    model = resolve_model_cfg(cfg.model.student, "student")
    if model.get("_scope_") == cfg.get("default_scope"):
        model.pop("_scope_")
    out.model = model
    hooks = [h for h in cfg.get("custom_hooks", []) if "DistillWeightScheduler" not in h["type"]]
    out.custom_hooks = hooks
    return out


def export_student(config: str | Config, checkpoint: str, out: str) -> tuple[str, str]:
    """Write ``out`` (.pth, the student's weights under ``state_dict``) and the matching
    student config beside it (``out`` with ``.py``). Returns both paths."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    ckpt = load_local_checkpoint(checkpoint, map_location="cpu")
    state = ckpt.get("state_dict", ckpt)
    student = {
        k[len(STUDENT_PREFIX) :]: v for k, v in state.items() if k.startswith(STUDENT_PREFIX)
    }
    if not student:
        raise ValueError(
            f"{checkpoint!r} holds no '{STUDENT_PREFIX}*' keys: not a distiller checkpoint"
        )
    meta = dict(ckpt.get("meta", {}), exported_from=osp.abspath(checkpoint))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save({"meta": meta, "state_dict": student}, out)
    cfg_out = osp.splitext(out)[0] + ".py"
    student_config(cfg).dump(cfg_out)
    return out, cfg_out
