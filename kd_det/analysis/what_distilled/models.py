"""The models of a what-gets-distilled analysis: build each from its config, load its
checkpoint, and check that they can be compared before anything is computed.

A model is given as ``CONFIG CHECKPOINT``:

* a plain mmpretrain classifier or mmdet detector config with its own checkpoint, or an
  exported student (``tools/export_student.py``);
* a distiller config (``model.type='kd_det.SingleTeacherDistiller'``): the student is built
  from ``model.student`` (the teacher is not built and ``teacher_ckpt`` is not read);
* a distiller checkpoint holds the student's weights under ``student.`` (beside the
  connectors' ``terms.``); those keys are taken with the prefix removed, so a distiller
  checkpoint also loads with the plain student config.

All models are compared in *pixel units*: the images as the data preprocessor sees them after
its channel conversion and before its normalisation (0–255). Each model normalises them with
its own ``mean``/``std``, so models whose preprocessors differ only in those still see the same
images.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from mmengine.config import Config
from torch import Tensor, nn

from kd_det.apis import build_model_from_cfg
from kd_det.compat import load_local_checkpoint
from kd_det.distillers.models import state_dict_problems
from kd_det.export import STUDENT_PREFIX, student_config

__all__ = [
    "ROLES",
    "TASKS",
    "LoadedModel",
    "ModelSpec",
    "check_comparable",
    "load_model",
    "load_weights",
    "model_config",
    "num_classes_of",
    "task_of",
]

TASKS = ("classification", "detection")
ROLES = ("teacher", "distilled", "independent", "control")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the analysis.

    Args:
        config: config file (or :class:`~mmengine.config.Config`) of the model or of the
            distiller that trained it.
        checkpoint: its checkpoint (a plain, exported or distiller checkpoint).
        name: label in the report (default: the config file's stem).
        method: what trained it, for the paper's reference column: ``'kd'``/``'logitkd'``
            (logit KD), ``'fitnet'``, ``'crd'``, ``'independent'``, or anything else (no
            reference). Default: the config stem's first ``_``-separated word.
        cfg_options: overrides merged into the config (dotted keys, as ``--cfg-options``).
    """

    config: str | os.PathLike | Config
    checkpoint: str | os.PathLike
    name: str | None = None
    method: str | None = None
    cfg_options: dict[str, Any] | None = None

    @property
    def config_label(self) -> str:
        if isinstance(self.config, Config):
            return self.config.filename or "<Config>"
        return os.fspath(self.config)

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.config_label))[0]

    def label(self) -> str:
        return self.name or self.stem

    def method_name(self) -> str:
        return (self.method or self.stem.split("_", 1)[0]).lower()


@dataclass(eq=False)
class LoadedModel:
    """A built model in eval mode with frozen parameters, and what the analysis needs of it."""

    name: str
    role: str
    model: nn.Module
    cfg: Config
    task: str
    num_classes: int
    spec: ModelSpec
    mean: Tensor = field(repr=False)
    std: Tensor = field(repr=False)
    channel_conversion: bool = False

    @property
    def method(self) -> str:
        """The role for the teacher, the independent student and the control; for a distilled
        student its method (``spec.method`` or the config stem's first word)."""
        return self.spec.method_name() if self.role == "distilled" else self.role

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def normalize(self, pixels: Tensor) -> Tensor:
        """Pixel units (0–255, the preprocessor's channel order) to this model's input."""
        return (pixels - self.mean) / self.std

    def describe(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            role=self.role,
            method=self.method,
            config=self.spec.config_label,
            checkpoint=os.fspath(self.spec.checkpoint),
            type=type(self.model).__name__,
            params=self.num_params,
        )


def model_config(cfg: Config) -> Config:
    """The config whose ``model`` is the network to analyse: a distiller config's student
    (:func:`kd_det.export.student_config`), any other config unchanged."""
    model = cfg.get("model")
    if model is None:
        raise ValueError(f"config {cfg.filename!r} has no 'model'")
    return student_config(cfg) if "student" in model else cfg


def task_of(model: nn.Module) -> str | None:
    """``'classification'`` for an mmpretrain classifier, ``'detection'`` for an mmdet
    detector, ``None`` otherwise."""
    from mmdet.models.detectors import BaseDetector
    from mmpretrain.models.classifiers import BaseClassifier

    if isinstance(model, BaseClassifier):
        return "classification"
    if isinstance(model, BaseDetector):
        return "detection"
    return None


def num_classes_of(model: nn.Module) -> int | None:
    """The class count of a classifier's head or a detector's (box) head."""
    heads = [
        getattr(model, "head", None),
        getattr(model, "bbox_head", None),
        getattr(getattr(model, "roi_head", None), "bbox_head", None),
    ]
    for head in heads:
        if head is not None and isinstance(getattr(head, "num_classes", None), int):
            return head.num_classes
    return None


def load_weights(model: nn.Module, checkpoint: str | os.PathLike, what: str) -> None:
    """Load ``checkpoint`` into ``model`` exactly, or raise a ``ValueError`` saying how it does
    not fit (missing, unexpected and mis-shaped keys with examples).

    A distiller checkpoint's ``student.*`` keys are taken with the prefix removed.
    """
    path = os.fspath(checkpoint)
    ckpt = load_local_checkpoint(path, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, Tensor) for v in state.values())
    ):
        raise ValueError(f"{what}: checkpoint {path!r} holds no state_dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith(STUDENT_PREFIX) for k in state):
        state = {
            k[len(STUDENT_PREFIX) :]: v for k, v in state.items() if k.startswith(STUDENT_PREFIX)
        }
    own = model.state_dict()
    problems, _ = state_dict_problems(own, state, shown_mismatches=2, shown_keys=4)
    if problems:
        raise ValueError(
            f"{what}: checkpoint {path!r} does not fit the {type(model).__name__} of its config "
            f"({len(own)} keys): {'; '.join(problems)}. Give each model the config it was "
            "trained with (a distiller checkpoint with its distiller config or the student's)"
        )
    model.load_state_dict(state, strict=True)


def load_model(spec: ModelSpec, role: str) -> LoadedModel:
    """Build ``spec``'s model, load its checkpoint, put it in eval mode with frozen weights.

    Raises:
        ValueError: the config builds no classifier or detector, the checkpoint does not fit
            it, or its data preprocessor has no image normalisation attributes.
        FileNotFoundError: the config or checkpoint does not exist.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    what = f"{role} {spec.label()!r}"
    if isinstance(spec.config, Config):
        cfg = copy.deepcopy(spec.config)
    else:
        if not os.path.isfile(spec.config):
            raise FileNotFoundError(f"{what}: config {os.fspath(spec.config)!r} does not exist")
        cfg = Config.fromfile(os.fspath(spec.config))
    if spec.cfg_options:
        cfg.merge_from_dict(spec.cfg_options)
    cfg = model_config(cfg)
    model = build_model_from_cfg(cfg)
    task = task_of(model)
    if task is None:
        raise ValueError(
            f"{what}: config {spec.config_label!r} builds a {type(model).__name__}, neither an "
            "mmpretrain classifier nor an mmdet detector"
        )
    load_weights(model, spec.checkpoint, what)
    model.eval().requires_grad_(False)
    num_classes = num_classes_of(model)
    if num_classes is None:
        raise ValueError(f"{what}: cannot read the class count of {type(model).__name__}")
    pre = model.data_preprocessor
    channels = 3
    if getattr(pre, "_enable_normalize", False):
        mean = pre.mean.detach().reshape(1, -1, 1, 1).float()
        std = pre.std.detach().reshape(1, -1, 1, 1).float()
    else:
        mean, std = torch.zeros(1, channels, 1, 1), torch.ones(1, channels, 1, 1)
    conversion = bool(getattr(pre, "_channel_conversion", getattr(pre, "to_rgb", False)))
    return LoadedModel(
        name=spec.label(),
        role=role,
        model=model,
        cfg=cfg,
        task=task,
        num_classes=num_classes,
        spec=spec,
        mean=mean,
        std=std,
        channel_conversion=conversion,
    )


def check_comparable(models: list[LoadedModel]) -> None:
    """All models must solve the same task with the teacher's class count and read images in
    the same channel order; names must be unique. The first model is the teacher."""
    teacher = models[0]
    tasks = {m.task for m in models}
    if len(tasks) > 1:
        listing = ", ".join(f"{m.role} {m.name!r}: {m.task}" for m in models)
        raise ValueError(
            f"models of different tasks were given together ({listing}); compare classifiers "
            "with classifiers or detectors with detectors"
        )
    wrong = [m for m in models[1:] if m.num_classes != teacher.num_classes]
    if wrong:
        listing = ", ".join(f"{m.role} {m.name!r}: {m.num_classes}" for m in wrong)
        raise ValueError(
            f"class counts differ: the teacher {teacher.name!r} has {teacher.num_classes} "
            f"classes, {listing}; every model must predict the teacher's classes"
        )
    order = [m for m in models[1:] if m.channel_conversion != teacher.channel_conversion]
    if order:
        listing = ", ".join(f"{m.role} {m.name!r}" for m in order)
        raise ValueError(
            f"{listing} and the teacher {teacher.name!r} read images in a different channel "
            "order (data_preprocessor to_rgb / bgr_to_rgb differ); they cannot share inputs"
        )
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"model names must be unique, got {duplicates} more than once")
