"""IE-KD as a connector of a distill term: split, encode, and the frozen teacher encoder.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181). For a (student map, teacher map) pair::

    f_inh, f_exp = split(f_S)                     (by channel, ChannelSplit)
    F_inh = E_inh(f_inh),  F_exp = E_exp(f_exp)   (trained with the student)
    F_T   = E_T(f_T)                              (frozen: the teacher auto-encoder's encoder)
    student' = stack([F_inh, F_exp], dim=1),  teacher' = stack([F_T, F_T], dim=1)

and :class:`~kd_det.inherit_explore.InheritExploreLoss` turns the two stacks into
``λ_inh · L_inh + λ_exp · L_exp``. ``E_T`` comes from a checkpoint of the auto-encoder stage
(:class:`~kd_det.inherit_explore.TeacherAutoEncoder`); it is a :class:`FrozenModule` (buffers,
eval mode, no gradient), so it never reaches an optimizer.
"""

from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from kd_det.connectors import BaseConnector
from kd_det.inherit_explore.encoder import FrozenModule, build_coder, decode_info
from kd_det.inherit_explore.split import ChannelSplit
from kd_det.registry import MODELS

__all__ = ["InheritExploreConnector", "read_autoencoders", "load_teacher_encoder"]

#: the state_dict prefix of a TeacherAutoEncoder's auto-encoders
AE_PREFIX = "autoencoders."
INFO = "info"
TEACHER_ENCODER_KEYS = ("checkpoint", "name")
AE_HINT = (
    "train the teacher's auto-encoder first: tools/train.py with a kd_det.TeacherAutoEncoder "
    "config (configs/iekd/iekd-ae_*.py), then name its checkpoint"
)


def _examples(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (" …" if len(keys) > n else "")


def read_autoencoders(path: str) -> dict[str, tuple[dict[str, Any], dict[str, Tensor]]]:
    """The auto-encoders of a :class:`~kd_det.inherit_explore.TeacherAutoEncoder` checkpoint:
    ``{name: (info, state_dict)}`` (``info``: the auto-encoder's description, see
    :class:`~kd_det.inherit_explore.FactorAutoEncoder`), the state dict's keys relative to the
    auto-encoder.

    Raises ``ValueError`` naming ``path`` when it does not exist, cannot be read or holds no
    auto-encoder.
    """
    if "://" not in str(path) and not osp.isfile(str(path)):
        raise ValueError(f"auto-encoder checkpoint {path!r} does not exist; {AE_HINT}")
    try:
        checkpoint = CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"auto-encoder checkpoint {path!r} cannot be read: {err}") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"auto-encoder checkpoint {path!r} holds no state_dict")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    found: dict[str, tuple[dict[str, Any], dict[str, Tensor]]] = {}
    for key, value in state.items():
        if not key.startswith(AE_PREFIX):
            continue
        name, _, rest = key[len(AE_PREFIX) :].partition(".")
        extra, weights = found.setdefault(name, ({}, {}))
        if rest == INFO and isinstance(value, Tensor):
            try:
                extra.update(decode_info(value))
            except ValueError as err:
                raise ValueError(f"{path!r}: {key} is {err}") from err
        else:
            weights[rest] = value
    if not found:
        keys = sorted(state)
        raise ValueError(
            f"{path!r} is not a checkpoint of kd_det.TeacherAutoEncoder: it has no "
            f"'{AE_PREFIX}*' keys (it has {len(keys)} keys, e.g. {_examples(keys)}); {AE_HINT}"
        )
    return found


def load_teacher_encoder(
    path: str,
    in_channels: int,
    name: str | None = None,
    factor_channels: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder of auto-encoder ``name`` in checkpoint ``path``, loaded, with its extra state.

    Checks that the auto-encoder was trained on features of ``in_channels`` channels (and, when
    given, with a factor of ``factor_channels``) and that its encoder's weights are all there;
    raises a ``ValueError`` naming the file, the auto-encoder, its teacher layers and what was
    expected otherwise.
    """
    found = read_autoencoders(path)
    if name is None:
        if len(found) > 1:
            raise ValueError(
                f"auto-encoder checkpoint {path!r} holds {len(found)} auto-encoders "
                f"{sorted(found)}; choose one with teacher_encoder=dict(name=...)"
            )
        name = next(iter(found))
    if name not in found:
        raise ValueError(
            f"auto-encoder checkpoint {path!r} has no auto-encoder {name!r}; it holds "
            f"{sorted(found)}"
        )
    extra, weights = found[name]
    where = f"auto-encoder {name!r} of {path!r}"
    if "in_channels" not in extra or "factor_channels" not in extra:
        raise ValueError(
            f"{where} misses the key '{AE_PREFIX}{name}.{INFO}' (its widths and coder "
            "configs), which kd_det.TeacherAutoEncoder saves; it was not written by the "
            f"auto-encoder stage. {AE_HINT}"
        )
    layers = extra.get("layers") or ["(not recorded)"]
    if extra["in_channels"] != in_channels:
        raise ValueError(
            f"{where} was trained on teacher layer(s) {layers} of {extra['in_channels']} "
            f"channels; this term's teacher layer has {in_channels} channels. Train the "
            "auto-encoder on the layer the term distils"
        )
    if factor_channels is not None and extra["factor_channels"] != factor_channels:
        raise ValueError(
            f"{where} encodes to {extra['factor_channels']} channels, the config asks for "
            f"factor_channels={factor_channels}; drop factor_channels (it is read from the "
            "checkpoint) or retrain the auto-encoder"
        )
    try:
        encoder = build_coder(extra.get("encoder"), in_channels, extra["factor_channels"])
    except ValueError as err:
        raise ValueError(f"{where}: its encoder cannot be rebuilt: {err}") from err
    own = encoder.state_dict()
    saved = {k.removeprefix("encoder."): v for k, v in weights.items() if k.startswith("encoder.")}
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(saved[k].shape)} vs encoder {tuple(own[k].shape)}"
        for k in set(own) & set(saved)
        if tuple(saved[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or mismatched:
        full = [f"{AE_PREFIX}{name}.encoder.{k}" for k in missing + unexpected]
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {_examples(full[: len(missing)])})")
        if unexpected:
            problems.append(
                f"{len(unexpected)} unexpected keys (e.g. {_examples(full[len(missing) :])})"
            )
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches (e.g. {_examples(mismatched)})")
        raise ValueError(
            f"{where} does not fit its encoder {type(encoder).__name__} "
            f"({in_channels} -> {extra['factor_channels']}): {'; '.join(problems)}"
        )
    encoder.load_state_dict(saved)
    return encoder, dict(extra, name=name)


@MODELS.register_module()
class InheritExploreConnector(BaseConnector):
    """IE-KD's split + encoders: ``(f_S, f_T) -> (stack([F_inh, F_exp]), stack([F_T, F_T]))``.

    Use it with :class:`~kd_det.inherit_explore.InheritExploreLoss`::

        ie=dict(student='backbone.layer4', teacher='backbone.layer4',
                connector=dict(type='InheritExploreConnector', split='natural',
                               teacher_encoder=dict(checkpoint='work_dirs/<ae>/epoch_5.pth')),
                loss=dict(type='InheritExploreLoss', weighting='paper'))

    Args:
        in_channels: width of the student map (default argument of every connector).
        out_channels: width of the teacher map.
        spatial: must be ``True``: the coders are 3×3 convolutions on ``[B, C, H, W]`` maps.
        teacher_encoder: ``dict(checkpoint=PATH, name=None)``: a checkpoint of the
            auto-encoder stage and, when it holds several, the auto-encoder's name.
            ``checkpoint=None`` keeps a randomly initialised frozen encoder (logged; for
            checking a config without the checkpoint).
        factor_channels: factor width ``F``; read from the checkpoint (a different value is
            refused), else ``out_channels // 2``. At most the teacher's width.
        split: ``'natural'`` or ``'random'`` (:class:`ChannelSplit`).
        ratio: share of the student channels that inherit, in (0, 1); ``ratio · in_channels``
            must be whole.
        seed: seed of the random split's permutation.
        encoder: config of the two student encoders (``None``: ``FactorCoder``), built from
            each part's width to ``F``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial: bool,
        teacher_encoder: Mapping[str, Any] | None = None,
        factor_channels: int | None = None,
        split: str = "natural",
        ratio: float = 0.5,
        seed: int = 0,
        encoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        owner = "InheritExploreConnector"
        if not spatial:
            raise ValueError(
                f"{owner} needs feature maps [B, C, H, W] (its coders are 3x3 convolutions), "
                "got vectors [B, C]; name a convolutional layer (a backbone stage, an FPN level)"
            )
        spec = dict(teacher_encoder or {})
        unknown = [k for k in spec if k not in TEACHER_ENCODER_KEYS]
        if unknown:
            raise ValueError(
                f"{owner}: teacher_encoder has unknown keys {unknown}; valid keys: "
                f"{list(TEACHER_ENCODER_KEYS)}"
            )
        if factor_channels is not None and (
            isinstance(factor_channels, bool)
            or not isinstance(factor_channels, int)
            or factor_channels <= 0
        ):
            raise ValueError(
                f"{owner}: factor_channels must be a positive int, got {factor_channels!r}"
            )
        if factor_channels is not None and factor_channels > out_channels:
            raise ValueError(
                f"{owner}: factor_channels {factor_channels} is larger than the teacher feature "
                f"({out_channels} channels); the teacher's auto-encoder compresses, choose "
                f"factor_channels <= {out_channels}"
            )
        self.split = ChannelSplit(in_channels, ratio=ratio, mode=split, seed=seed)
        checkpoint = spec.get("checkpoint")
        if checkpoint is None:
            factor = factor_channels or max(1, out_channels // 2)
            teacher_coder = build_coder(encoder, out_channels, factor)
            self.autoencoder_info: dict[str, Any] = dict(checkpoint=None)
            print_log(
                f"{owner}: teacher_encoder.checkpoint is None: the frozen teacher encoder "
                f"({out_channels} -> {factor}) keeps its random initialisation",
                logger="current",
                level=logging.WARNING,
            )
        else:
            teacher_coder, extra = load_teacher_encoder(
                str(checkpoint), out_channels, spec.get("name"), factor_channels
            )
            factor = int(extra["factor_channels"])
            self.autoencoder_info = dict(checkpoint=str(checkpoint), **extra)
        self.in_channels, self.out_channels, self.factor_channels = (
            in_channels,
            out_channels,
            factor,
        )
        self.inherit_encoder = build_coder(encoder, self.split.inherit_channels, factor)
        self.explore_encoder = build_coder(encoder, self.split.explore_channels, factor)
        self.teacher_encoder = FrozenModule(teacher_coder)

    def forward(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        for role, x, width in (
            ("student", student, self.in_channels),
            ("teacher", teacher, self.out_channels),
        ):
            if x.ndim != 4 or x.shape[1] != width:
                raise ValueError(
                    f"InheritExploreConnector expects {role} maps [B, {width}, H, W], got shape "
                    f"{tuple(x.shape)}"
                )
        f_inh, f_exp = self.split(student)
        s = torch.stack([self.inherit_encoder(f_inh), self.explore_encoder(f_exp)], dim=1)
        t = self.teacher_encoder(teacher)  # FrozenModule: eval mode, no_grad
        return s, t.unsqueeze(1).expand_as(s)

    def extra_repr(self) -> str:
        source = self.autoencoder_info.get("checkpoint") or "random (no checkpoint)"
        return f"factor_channels={self.factor_channels}, teacher_encoder={source!r}"
