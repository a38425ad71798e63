"""Turn a distillation checkpoint into a plain student checkpoint and config.

A :class:`~kd_det.distillers.SingleTeacherDistiller` checkpoint holds one student (``student.*``);
a :class:`~kd_det.distillers.MutualDistiller` checkpoint holds two networks (``net1.*``,
``net2.*``), exported one at a time (``network='net1'|'net2'``). Either way the result is the
network's weights alone and a config that mmdet's / mmpretrain's own tools accept.
"""

from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Any

import torch
from mmengine.config import Config

from kd_det.compat import load_local_checkpoint
from kd_det.distillers.models import resolve_model_cfg
from kd_det.distillers.optim import NETWORKS, network_optim_wrapper_cfg

STUDENT_PREFIX = "student."


def is_mutual(cfg: Config) -> bool:
    """Whether ``cfg.model`` is a mutual distiller (two networks ``net1`` and ``net2``)."""
    model = cfg.get("model") or {}
    return isinstance(model, dict) and all(name in model for name in NETWORKS)


def _plain_model(cfg: Config, spec: Any, role: str) -> Any:
    model = resolve_model_cfg(spec, role)
    if model.get("_scope_") == cfg.get("default_scope"):
        model.pop("_scope_")
    return model


def _without_distill_hooks(cfg: Config) -> list:
    return [h for h in cfg.get("custom_hooks", []) if "DistillWeightScheduler" not in h["type"]]


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student's model and kd_det's
    distillation hooks removed — a config mmdet's/mmpretrain's own tools accept."""
    if "student" not in cfg.model:
        raise ValueError(f"config model {cfg.model.get('type')!r} is not a distiller (no student)")
    out = copy.deepcopy(cfg)
    out.model = _plain_model(cfg, cfg.model.student, "student")
    out.custom_hooks = _without_distill_hooks(cfg)
    return out


def network_config(cfg: Config, network: str) -> Config:
    """The mutual-learning config reduced to ``network`` alone: its model, its optimizer (the
    shared settings with its own entry merged in), the plain metric instead of
    ``kd_det.MutualMetric``, ``save_best`` without the network prefix, no distillation hooks."""
    if not is_mutual(cfg):
        raise ValueError(
            f"config model {cfg.model.get('type')!r} is not a mutual distiller (no net1/net2)"
        )
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {list(NETWORKS)}, got {network!r}")
    out = copy.deepcopy(cfg)
    out.model = _plain_model(cfg, cfg.model[network], network)
    if "optim_wrapper" in cfg:
        out.optim_wrapper = network_optim_wrapper_cfg(cfg.optim_wrapper, network)
    for key in ("val_evaluator", "test_evaluator"):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and str(evaluator.get("type", "")).endswith("MutualMetric"):
            out[key] = copy.deepcopy(evaluator["metric"])
    checkpoint = (cfg.get("default_hooks") or {}).get("checkpoint") or {}
    save_best = checkpoint.get("save_best") if isinstance(checkpoint, dict) else None
    if isinstance(save_best, str) and save_best.startswith(f"{network}/"):
        out.default_hooks.checkpoint.save_best = save_best[len(network) + 1 :]
    out.custom_hooks = _without_distill_hooks(cfg)
    return out


def export_student(
    config: str | Config, checkpoint: str, out: str, network: str | None = None
) -> tuple[str, str]:
    """Write ``out`` (.pth, the student's weights under ``state_dict``) and the matching
    student config beside it (``out`` with ``.py``). Returns both paths.

    For a mutual-learning config, ``network`` (``'net1'`` or ``'net2'``) names the network to
    export; it must be ``None`` for a single-teacher config.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if is_mutual(cfg):
        if network not in NETWORKS:
            raise ValueError(
                "a mutual-learning checkpoint holds two networks; choose the one to export with "
                f"network='net1' or 'net2' (tools/export_student.py --network), got {network!r}"
            )
        prefix, plain = f"{network}.", network_config(cfg, network)
    else:
        if network is not None:
            raise ValueError(
                f"network={network!r} applies to mutual-learning configs (net1/net2); this "
                f"config's model {cfg.model.get('type')!r} has one student"
            )
        prefix, plain = STUDENT_PREFIX, student_config(cfg)
    ckpt = load_local_checkpoint(checkpoint, map_location="cpu")
    state = ckpt.get("state_dict", ckpt)
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(
            f"{checkpoint!r} holds no '{prefix}*' keys: not a checkpoint of this config's model"
        )
    meta = dict(ckpt.get("meta", {}), exported_from=osp.abspath(checkpoint))
    if network is not None:
        meta["exported_network"] = network
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save({"meta": meta, "state_dict": weights}, out)
    cfg_out = osp.splitext(out)[0] + ".py"
    plain.dump(cfg_out)
    return out, cfg_out
