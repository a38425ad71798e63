"""One distill term: student layers paired with teacher layers, a connector per pair, a loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.connectors import (
    BaseConnector,
    BaseNorm,
    BaseProjector,
    ProjectNorm,
    build_part,
    width_mismatch_message,
)
from kd_det.mappers import build_mapper
from kd_det.registry import build_kd_module

ALIGN_MODES = ("resize", "none")


def _parameter_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype of ``module``'s parameters; fp32 for a module without any."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


class DistillTerm(nn.Module):
    """Pairs student layer ``i`` with teacher layer ``g(i)`` (the mapper) and sums a loss.

    For every pair ``(i, j)`` with connector ``C_k``::

        s, t = C_k(f_S[i], align(f_T[j]))
        loss += L(s, t)

    ``align`` resizes a teacher map to the student's spatial size (bilinear) when strides
    differ. The teacher side is a constant target: it is aligned under ``no_grad`` and what the
    connector returns for it is detached. An omitted connector is the identity. The term is
    computed in fp32 outside autocast whatever precision the models ran in (bf16/fp16 features
    are cast up; a connector whose parameters were cast to half gets its own dtype and its
    outputs are cast up for the loss), so mixed-precision training cannot hand a connector
    features of another dtype than its weights. The sum is
    multiplied by ``scale``, which :class:`kd_det.hooks.DistillWeightScheduler` sets per
    iteration.

    The pairs are fixed at construction (seeded mappers) and kept as a buffer, so a resumed run
    checks that it uses the mapping it was trained with.

    Args:
        name: the term's name (its key in the distiller's ``distill``).
        student_labels: readable names of the student layers, in order.
        teacher_labels: the same for the teacher layers.
        student_shapes: shapes of the student layers (from a probe batch).
        teacher_shapes: shapes of the teacher layers.
        loss: loss config, built from kd_det's ``MODELS``.
        mapper: mapper config (``None``: :class:`~kd_det.mappers.ForwardMapper`).
        connector: connector config, built per pair with ``in_channels``, ``out_channels``
            and ``spatial`` (``None``: identity).
        align: ``'resize'`` or ``'none'`` (spatial sizes must then agree).
    """

    def __init__(
        self,
        name: str,
        student_labels: list[str],
        teacher_labels: list[str],
        student_shapes: list[tuple[int, ...]],
        teacher_shapes: list[tuple[int, ...]],
        loss: dict[str, Any],
        mapper: dict[str, Any] | None = None,
        connector: dict[str, Any] | None = None,
        align: str = "resize",
    ) -> None:
        super().__init__()
        self.name = name
        self.scale = 1.0
        if align not in ALIGN_MODES:
            raise ValueError(
                f"distill term {name!r}: align must be one of {ALIGN_MODES}, got {align!r}"
            )
        self.align = align
        try:
            self.loss = build_kd_module(loss)
            mapper_obj = build_mapper(mapper)
        except ValueError as err:
            raise ValueError(f"distill term {name!r}: {err}") from None
        try:
            pairs = mapper_obj(len(student_labels), len(teacher_labels))
        except ValueError as err:
            raise ValueError(f"distill term {name!r}: {err}") from err
        self.register_buffer("pairs", torch.tensor(pairs, dtype=torch.long).reshape(-1, 2))
        self._pairs = [tuple(p) for p in pairs]
        self.pair_labels = [(student_labels[i], teacher_labels[j]) for i, j in pairs]

        self.connectors = nn.ModuleList()
        for i, j in pairs:
            where = f"distill term {name!r}, {student_labels[i]} <- {teacher_labels[j]}"
            s_shape, t_shape = tuple(student_shapes[i]), tuple(teacher_shapes[j])
            self._check_shapes(where, s_shape, t_shape)
            conn = self._build_connector(where, s_shape, t_shape, connector)
            self._check_connector(where, conn, s_shape, t_shape)
            self.connectors.append(conn)

    # -- construction ------------------------------------------------------------------------

    def _check_shapes(self, where: str, s_shape: tuple[int, ...], t_shape: tuple[int, ...]):
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise ValueError(
                f"{where}: shapes {s_shape} and {t_shape} cannot be matched; both must be "
                "vectors [B, C] or both maps [B, C, H, W]"
            )
        if s_shape[2:] != t_shape[2:] and self.align == "none":
            raise ValueError(
                f"{where}: spatial sizes {s_shape[2:]} and {t_shape[2:]} differ and align='none'; "
                "use align='resize' to resize the teacher map to the student's"
            )
        if self._compares_logits and s_shape[1] != t_shape[1]:
            raise ValueError(
                f"{where}: {type(self.loss).__name__} compares logits, but the student head "
                f"has {s_shape[1]} classes and the teacher head {t_shape[1]}; logit KD needs "
                "heads with the same classes"
            )

    @property
    def _compares_logits(self) -> bool:
        return getattr(self.loss, "input_kind", "features") == "logits"

    @staticmethod
    def _build_connector(
        where: str,
        s_shape: tuple[int, ...],
        t_shape: tuple[int, ...],
        cfg: dict[str, Any] | None,
    ) -> nn.Module:
        in_channels, out_channels, spatial = s_shape[1], t_shape[1], len(s_shape) == 4
        if cfg is None:
            if in_channels != out_channels:
                raise ValueError(f"{where}: {width_mismatch_message(in_channels, out_channels)}")
            return ProjectNorm(in_channels, out_channels, spatial)
        try:
            conn = build_part(
                cfg,
                BaseConnector,
                "connector",
                in_channels=in_channels,
                out_channels=out_channels,
                spatial=spatial,
            )
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        for base, kind, key in (
            (BaseProjector, "projector", "projector"),
            (BaseNorm, "norm", "norm"),
        ):
            if isinstance(conn, base):
                raise ValueError(
                    f"{where}: {type(conn).__name__} is a {kind}, not a connector; use "
                    f"connector=dict(type='ProjectNorm', {key}=dict(type="
                    f"'{type(conn).__name__}'))"
                )
        return conn

    def _check_connector(
        self, where: str, conn: nn.Module, s_shape: tuple[int, ...], t_shape: tuple[int, ...]
    ) -> None:
        """Run ``conn`` once on a zero batch of two: both sides must come out with one shape."""
        if self._compares_logits and any(p.requires_grad for p in conn.parameters()):
            raise ValueError(
                f"{where}: {type(self.loss).__name__} compares logits, and logit losses take no "
                f"projector; {type(conn).__name__} has trainable parameters. Drop the connector"
            )
        s_shape = (2, *s_shape[1:])
        t_aligned = (2, t_shape[1], *s_shape[2:])
        was_training = conn.training
        conn.eval()
        try:
            with torch.no_grad():
                s, t = conn(torch.zeros(s_shape), torch.zeros(t_aligned))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{where}: connector {type(conn).__name__} failed on student {s_shape} and "
                f"teacher {t_aligned} features; a connector maps (student, teacher) to "
                f"(student', teacher'): {err}"
            ) from err
        finally:
            conn.train(was_training)
        if s.shape != t.shape:
            raise ValueError(
                f"{where}: connector {type(conn).__name__} gives the student {tuple(s.shape)} "
                f"and the teacher {tuple(t.shape)}; the loss needs equal shapes"
            )
        try:  # the loss's own needs (maps, not vectors ...) on what the connector gives it
            with torch.no_grad():
                self.loss(s.float(), t.float())
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    # -- forward -----------------------------------------------------------------------------

    def forward(self, student_layers: list[Tensor], teacher_layers: list[Tensor]) -> Tensor:
        total: Tensor | None = None
        device_type = student_layers[0].device.type if student_layers else "cpu"
        # Mixed precision (AmpOptimWrapper's autocast, a bf16/fp16 teacher, a student cast to
        # half) reaches here as bf16/fp16 features. The term runs outside autocast, in fp32:
        # features are cast to the dtype of the connector's parameters (fp32 unless the model
        # was cast as a whole) and the loss is computed on fp32 tensors.
        with torch.autocast(device_type, enabled=False):
            for k, (i, j) in enumerate(self._pairs):
                connector = self.connectors[k]
                dtype = _parameter_dtype(connector)
                s = student_layers[i].to(dtype)
                with torch.no_grad():
                    t = teacher_layers[j].to(dtype)
                    if t.dim() == 4 and t.shape[2:] != s.shape[2:]:
                        t = F.interpolate(t, size=s.shape[2:], mode="bilinear", align_corners=False)
                s, t = connector(s, t)
                value = self.loss(s.float(), t.detach().float())
                total = value if total is None else total + value
        if total is None:  # a NoneMapper term: logit-only setups keep the term for logging
            return student_layers[0].new_zeros((), dtype=torch.float32)
        return total * self.scale

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        saved = state_dict.get(prefix + "pairs")
        if saved is not None and not torch.equal(saved.to(self.pairs.device), self.pairs):
            raise ValueError(
                f"distill term {self.name!r}: the checkpoint was trained with layer pairs "
                f"{saved.tolist()}, the config now maps {self.pairs.tolist()}; restore the "
                "mapper and its seed the run started with"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
