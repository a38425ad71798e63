"""One distill term: student layers matched to teacher layers, connectors and a loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.connectors import FeatureConnector
from kd_det.mappers import build_mapper
from kd_det.registry import build_kd_module

ALIGN_MODES = ("resize", "none")
CONNECTOR_KEYS = {"projector", "norm", "hidden_channels"}


class DistillTerm(nn.Module):
    """Pairs student layer ``i`` with teacher layer ``g(i)`` (the mapper) and sums a loss.

    For every pair ``(i, j)``::

        s = C_s(f_S[i]);   t = C_t(align(f_T[j]))
        loss += L(s, t)

    ``C_s`` is the student connector (projector, then normalisation), ``C_t`` the teacher
    connector (the same normalisation, no projector), ``align`` resizes a teacher map to the
    student's spatial size (bilinear) when strides differ. The term's value is multiplied by
    ``scale``, which :class:`kd_det.hooks.DistillWeightScheduler` sets per iteration.

    The pairs are fixed at construction (seeded mappers) and kept as a buffer, so a resumed run
    checks that it uses the mapping it was trained with.
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
            raise ValueError(f"distill term {name!r}: align must be one of {ALIGN_MODES}")
        self.align = align
        connector = dict(connector or {})
        unknown = set(connector) - CONNECTOR_KEYS
        if unknown:
            raise ValueError(
                f"distill term {name!r}: unknown connector keys {sorted(unknown)}; "
                f"valid: {sorted(CONNECTOR_KEYS)}"
            )
        self.loss = build_kd_module(loss)
        mapper_obj = build_mapper(mapper)
        try:
            pairs = mapper_obj(len(student_labels), len(teacher_labels))
        except ValueError as err:
            raise ValueError(f"distill term {name!r}: {err}") from err
        self.register_buffer("pairs", torch.tensor(pairs, dtype=torch.long).reshape(-1, 2))
        self._pairs = [tuple(p) for p in pairs]  # a load is checked to restore the same pairs
        self.pair_labels = [(student_labels[i], teacher_labels[j]) for i, j in pairs]

        self.student_connectors = nn.ModuleList()
        self.teacher_connectors = nn.ModuleList()
        for i, j in pairs:
            s_shape, t_shape = student_shapes[i], teacher_shapes[j]
            where = f"distill term {name!r}, {student_labels[i]} <- {teacher_labels[j]}"
            self._check_pair(where, s_shape, t_shape, connector)
            spatial = len(s_shape) == 4
            s_conn, t_conn = self._connectors(where, s_shape[1], t_shape[1], spatial, connector)
            self.student_connectors.append(s_conn)
            self.teacher_connectors.append(t_conn)

    def _check_pair(
        self,
        where: str,
        s_shape: tuple[int, ...],
        t_shape: tuple[int, ...],
        connector: dict[str, Any],
    ) -> None:
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
        if getattr(self.loss, "input_kind", "features") == "logits":
            if s_shape[1] != t_shape[1]:
                raise ValueError(
                    f"{where}: {type(self.loss).__name__} compares logits, but the student head "
                    f"has {s_shape[1]} classes and the teacher head {t_shape[1]}; logit KD needs "
                    "heads with the same classes"
                )
            if connector.get("projector", "identity") != "identity":
                raise ValueError(f"{where}: logit losses take no projector")
        elif s_shape[1] != t_shape[1] and connector.get("projector", "identity") == "identity":
            raise ValueError(
                f"{where}: student width {s_shape[1]} and teacher width {t_shape[1]} cannot be "
                "matched without an adapter; set connector=dict(projector='linear')"
            )

    @staticmethod
    def _connectors(
        where: str, s_width: int, t_width: int, spatial: bool, connector: dict[str, Any]
    ) -> tuple[nn.Module, nn.Module]:
        projector = connector.get("projector", "identity")
        norm = connector.get("norm", "none")
        try:
            student = FeatureConnector(
                s_width,
                t_width,
                spatial,
                projector=projector,
                norm=norm,
                hidden_channels=connector.get("hidden_channels"),
            )
            teacher = FeatureConnector(t_width, t_width, spatial, projector="identity", norm=norm)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        return student, teacher

    def forward(self, student_layers: list[Tensor], teacher_layers: list[Tensor]) -> Tensor:
        total: Tensor | None = None
        for k, (i, j) in enumerate(self._pairs):
            s = self.student_connectors[k](student_layers[i].float())
            with torch.no_grad():  # the teacher side is a constant target
                t = teacher_layers[j].float()
                if t.dim() == 4 and t.shape[2:] != s.shape[2:]:
                    t = F.interpolate(t, size=s.shape[2:], mode="bilinear", align_corners=False)
                t = self.teacher_connectors[k](t)
            value = self.loss(s, t)
            total = value if total is None else total + value
        if total is None:  # a 'none' mapping: logit-only setups keep the term for logging
            return student_layers[0].new_zeros(())
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
