"""IE-KD's first stage: auto-encoders trained on a frozen teacher's features.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181) first trains an auto-encoder on the teacher's feature map: the
encoder compresses ``f_T`` (``C`` channels) to a factor ``F_T`` (``F`` channels), the decoder
reconstructs it, and the reconstruction error is minimised::

    F_T = E(f_T),   f̂_T = D(F_T)
    L = mean |f̂_T − f_T|          (loss='l1', the authors' choice)   or   mean (f̂_T − f_T)²

:class:`TeacherAutoEncoder` is that stage as an mmengine model, trained by ``tools/train.py``
with a config: it runs the frozen teacher (cut after the last layer it needs, the capture
machinery of the distiller) and trains one :class:`FactorAutoEncoder` per entry of
``autoencoders``. An entry that names several layers (``'neck.fpn_convs.*'``) trains one
auto-encoder shared by all of them: a detector's FPN levels feed one shared head, so they live
in one feature space, and a connector of a distill term is built per layer pair without knowing
which level it serves. Per-level auto-encoders are entries of their own (one term per level).
Its checkpoint holds the auto-encoders only, never the teacher.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from kd_det.capture import FeatureRecorder, Target, resolve_layers
from kd_det.inherit_explore.encoder import FactorAutoEncoder
from kd_det.registry import MODELS

__all__ = ["RECON_LOSSES", "TeacherAutoEncoder"]

#: the reconstruction losses, by name
RECON_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}
AE_KEYS = ("layers", "factor_channels", "encoder", "decoder", "capture")


def _per_image(diff: Tensor) -> Tensor:
    """Mean over every dimension but the first: ``[B, …] -> [B]``."""
    return diff.flatten(1).mean(dim=1)


@MODELS.register_module()
class TeacherAutoEncoder(BaseModel):
    """Auto-encoders of a frozen teacher's layers (IE-KD's first stage).

    * ``mode='loss'``: ``recon.<name>.loss`` per auto-encoder, the reconstruction loss averaged
      over its layers.
    * ``mode='predict'``: per image, ``dict(l1={'<name>/<layer>': e}, l2={...})``, its mean
      absolute and squared errors, which :class:`~kd_det.inherit_explore.ReconstructionMetric`
      turns into ``recon/l1`` and ``recon/l2``.
    * ``mode='tensor'``: ``{name: [factor of each layer]}``.

    The teacher is frozen and not a registered sub-module (never in ``parameters()``, the
    optimizer or ``state_dict()``); ``train()`` leaves it in eval mode. The data preprocessor is
    the teacher's.

    Args:
        teacher: model dict, or ``dict(cfg_path='mmdet::…'|'mmpretrain::…'|file, **overrides)``.
        autoencoders: dict keyed by auto-encoder name; each ``dict(layers, factor_channels=None,
            encoder=None, decoder=None, capture='output')``: ``layers`` a module path of the
            teacher or a list of them (``*`` matches one path component), every layer a map of
            one width ``C``; ``factor_channels`` the factor width ``F <= C`` (``None``:
            ``C // 2``, the paper's 64 -> 32); ``encoder`` / ``decoder`` coder configs
            (``None``: ``FactorCoder``). ``None`` entries are skipped.
        teacher_ckpt: the teacher's checkpoint (``None`` keeps its initial weights, logged).
        teacher_strict: refuse missing/unexpected checkpoint keys.
        loss: ``'l1'`` (mean absolute error) or ``'l2'`` (mean squared error).
        probe_size: ``(H, W)`` of the dummy batch that finds the layers' shapes.
    """

    def __init__(
        self,
        teacher: dict | nn.Module,
        autoencoders: Mapping[str, Mapping[str, Any] | None],
        teacher_ckpt: str | None = None,
        teacher_strict: bool = True,
        loss: str = "l1",
        probe_size: tuple[int, int] = (128, 128),
        init_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        if data_preprocessor is not None:
            raise ValueError(
                "TeacherAutoEncoder uses the teacher's data_preprocessor; set it in the teacher "
                "model instead of on the auto-encoder stage"
            )
        if loss not in RECON_LOSSES:
            raise ValueError(
                f"TeacherAutoEncoder: loss must be one of {list(RECON_LOSSES)}, got {loss!r}"
            )
        # imported here: kd_det.distillers may import this package (mutual learning reuses the
        # coders, the split and the loss), so this module must not import it at load time
        from kd_det.distillers.models import build_model, load_teacher_weights

        specs = self._specs(autoencoders)
        teacher_model = build_model(teacher, "teacher")
        super().__init__(data_preprocessor=teacher_model.data_preprocessor, init_cfg=init_cfg)
        if teacher_ckpt is None:
            print_log("teacher_ckpt is None: the teacher keeps its initial weights", "current")
            teacher_model.init_weights()
        else:
            load_teacher_weights(teacher_model, teacher_ckpt, strict=teacher_strict)
        teacher_model.requires_grad_(False).eval()
        # Not a registered sub-module: kept out of parameters(), state_dict() and DDP.
        object.__setattr__(self, "teacher", teacher_model)
        self.loss_name = loss
        self._targets: dict[str, list[Target]] = {
            name: [
                (p, spec.get("capture", "output"))
                for p in resolve_layers(teacher_model, spec["layers"], "teacher")
            ]
            for name, spec in specs.items()
        }
        self._recorder = FeatureRecorder(
            teacher_model, [t for targets in self._targets.values() for t in targets]
        )
        shapes = self._probe(tuple(probe_size))
        self.autoencoders = nn.ModuleDict()
        for name, spec in specs.items():
            self.autoencoders[name] = self._build_autoencoder(name, spec, shapes[name])

    # -- construction ------------------------------------------------------------------------

    @staticmethod
    def _specs(autoencoders: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(autoencoders, Mapping):
            raise ValueError(
                "TeacherAutoEncoder: autoencoders must be a dict keyed by auto-encoder name, "
                "e.g. autoencoders=dict(feat=dict(layers='backbone.layer4', factor_channels=32)), "
                f"got {type(autoencoders).__name__}"
            )
        specs: dict[str, dict[str, Any]] = {}
        for name, spec in autoencoders.items():
            if spec is None:
                continue
            if not isinstance(name, str) or not name or "." in name or "/" in name:
                raise ValueError(
                    f"TeacherAutoEncoder: auto-encoder name {name!r} cannot be used: a name is "
                    "a non-empty string without '.' or '/'"
                )
            if hasattr(nn.ModuleDict, name):
                raise ValueError(
                    f"TeacherAutoEncoder: auto-encoder name {name!r} is an attribute of "
                    "nn.ModuleDict; choose another"
                )
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"TeacherAutoEncoder: auto-encoder {name!r} must be a dict (or None to skip "
                    f"it), got {spec!r}"
                )
            unknown = [k for k in spec if k not in AE_KEYS]
            if unknown or "layers" not in spec:
                hints = [
                    f"{k!r}: did you mean {close[0]!r}?"
                    for k in unknown
                    if (close := difflib.get_close_matches(k, AE_KEYS, n=1, cutoff=0.5))
                ]
                raise ValueError(
                    f"TeacherAutoEncoder: auto-encoder {name!r}: "
                    + ("missing key 'layers'" if "layers" not in spec else "")
                    + ("; " if unknown and "layers" not in spec else "")
                    + (f"unknown keys {unknown}" if unknown else "")
                    + (f" ({'; '.join(hints)})" if hints else "")
                    + f"; valid keys: {list(AE_KEYS)}"
                )
            specs[name] = dict(spec)
        if not specs:
            raise ValueError("TeacherAutoEncoder: autoencoders names no auto-encoder to train")
        return specs

    @torch.no_grad()
    def _probe(self, size: tuple[int, int]) -> dict[str, list[tuple[int, ...]]]:
        """Run the teacher on a dummy batch: the shapes of every auto-encoder's layers, and
        where the teacher's forward may stop."""
        from kd_det.distillers.models import probe_data_samples

        inputs = torch.zeros(2, 3, *size)
        with self._recorder.recording():
            self.teacher(inputs, probe_data_samples(self.teacher, 2, *size), mode="tensor")
        self._recorder.set_stop_after_last()
        self._probe_counts = self._counts()
        self._probe_size = size
        return {
            name: [tuple(t.shape) for t in self._recorder.layers(targets)]
            for name, targets in self._targets.items()
        }

    def _counts(self) -> dict[Target, int]:
        return {t: len(self._recorder.records.get(t, ())) for t in self._recorder.targets}

    def _build_autoencoder(
        self, name: str, spec: dict[str, Any], shapes: list[tuple[int, ...]]
    ) -> FactorAutoEncoder:
        labels = self._recorder.labels(self._targets[name])
        where = f"TeacherAutoEncoder: auto-encoder {name!r}"
        flat = [(label, shape) for label, shape in zip(labels, shapes, strict=True)]
        not_maps = [f"{label} {list(shape)}" for label, shape in flat if len(shape) != 4]
        if not_maps:
            raise ValueError(
                f"{where}: its coders are 3x3 convolutions on maps [B, C, H, W]; teacher layers "
                f"{not_maps} are not maps"
            )
        widths = sorted({shape[1] for _, shape in flat})
        if len(widths) > 1:
            raise ValueError(
                f"{where} is shared by teacher layers of different widths "
                f"{[f'{label}: {shape[1]}' for label, shape in flat]}; give each width an "
                "auto-encoder of its own"
            )
        channels = widths[0]
        factor = spec.get("factor_channels")
        if factor is None:
            factor = max(1, channels // 2)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor <= 0:
            raise ValueError(f"{where}: factor_channels must be a positive int, got {factor!r}")
        if factor > channels:
            raise ValueError(
                f"{where}: factor_channels {factor} is larger than the feature of teacher "
                f"layer(s) {labels} ({channels} channels); an auto-encoder compresses, choose "
                f"factor_channels <= {channels}"
            )
        try:
            ae = FactorAutoEncoder(channels, factor, spec.get("encoder"), spec.get("decoder"))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        ae.layers = list(labels)
        return ae

    # -- mmengine BaseModel API --------------------------------------------------------------

    @torch.no_grad()
    def teacher_features(
        self, inputs: Tensor, data_samples: list | None
    ) -> dict[str, list[Tensor]]:
        """The teacher's layers of every auto-encoder, the forward cut after the last one."""
        with self._recorder.recording(stop=True):
            self.teacher(inputs, data_samples, mode="tensor")
        counts = self._counts()
        if counts != self._probe_counts:
            target = next(t for t in counts if counts[t] != self._probe_counts[t])
            raise RuntimeError(
                f"TeacherAutoEncoder: teacher layer {target[0]!r} recorded {counts[target]} "
                f"tensor(s), the probe at construction {self._probe_counts[target]}; name a "
                "layer that runs the same way for every input, or set probe_size (now "
                f"{self._probe_size}) to the training image size"
            )
        features = {
            name: [t.float() for t in self._recorder.layers(targets)]
            for name, targets in self._targets.items()
        }
        self._recorder.clear()
        return features

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        features = self.teacher_features(inputs, data_samples)
        if mode == "loss":
            return self._loss(features)
        if mode == "predict":
            return self._predict(features, inputs.shape[0])
        if mode == "tensor":
            return {
                name: [self.autoencoders[name].encoder(f) for f in layers]
                for name, layers in features.items()
            }
        raise ValueError(
            f"TeacherAutoEncoder: mode must be 'loss', 'predict' or 'tensor', got {mode!r}"
        )

    def _loss(self, features: dict[str, list[Tensor]]) -> dict[str, Tensor]:
        loss_fn = RECON_LOSSES[self.loss_name]
        losses = {}
        for name, layers in features.items():
            ae = self.autoencoders[name]
            values = [loss_fn(ae(f)[1], f) for f in layers]
            losses[f"recon.{name}.loss"] = torch.stack(values).mean()
        return losses

    @torch.no_grad()
    def _predict(self, features: dict[str, list[Tensor]], batch: int) -> list[dict[str, Any]]:
        l1: dict[str, Tensor] = {}
        l2: dict[str, Tensor] = {}
        for name, layers in features.items():
            ae = self.autoencoders[name]
            labels = ae.layers or [str(k) for k in range(len(layers))]
            for label, f in zip(labels, layers, strict=True):
                diff = ae(f)[1] - f
                l1[f"{name}/{label}"] = _per_image(diff.abs()).cpu()
                l2[f"{name}/{label}"] = _per_image(diff.square()).cpu()
        return [
            dict(
                l1={k: float(v[i]) for k, v in l1.items()},
                l2={k: float(v[i]) for k, v in l2.items()},
            )
            for i in range(batch)
        ]

    def train(self, mode: bool = True) -> TeacherAutoEncoder:
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        # .to()/.cuda()/.half() reach the teacher although it is not a registered sub-module.
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self
