"""Connectors: what a distill term does to a (student, teacher) feature pair before its loss.

A connector maps the pair ``(f_S, f_T)`` to ``(s, t)``, the tensors the loss compares::

    s, t = connector(f_S, f_T)

The teacher side is a constant target: it is computed under ``no_grad`` (and
:class:`~kd_det.distillers.DistillTerm` detaches it). Omitting ``connector`` in a term gives the
identity, which needs the two widths to agree.

Every connector, projector and normalisation here is registered in kd_det's ``MODELS``
registry and built from a config dict, like losses and mappers:

* :class:`ProjectNorm` -- ``s = N(P(f_S))``, ``t = N(f_T)``: an optional projector ``P`` from the
  student's width to the teacher's, then an optional parameter-free normalisation ``N`` applied
  to both sides.
* projectors (``in_channels``, ``out_channels``, ``spatial``): :class:`LinearProjector` (a
  bias-free 1x1 conv on ``[B, C, H, W]`` maps, a bias-free ``nn.Linear`` on ``[B, C]`` vectors),
  :class:`MLPProjector` (linear, BatchNorm, ReLU, linear).
* normalisations (``channels``, ``spatial``): :class:`AffineFreeBN` (BatchNorm without affine
  parameters on batch statistics, as in "Understanding the Role of the Projector in Knowledge
  Distillation", arXiv:2303.11098), :class:`ChannelLayerNorm`, :class:`ChannelL2Norm`.

The projector + affine-free BatchNorm of arXiv:2303.11098 is::

    connector=dict(type='ProjectNorm',
                   projector=dict(type='LinearProjector'),
                   norm=dict(type='AffineFreeBN'))

A distill term builds one connector per (student layer, teacher layer) pair with the default
arguments ``in_channels`` (the student layer's width), ``out_channels`` (the teacher layer's
width) and ``spatial`` (``True`` for maps, ``False`` for vectors); the connector's parameters
belong to the distiller, so the student's optimizer trains them and checkpoints keep them.

Your own connector
------------------
Subclass :class:`BaseConnector`, accept the three default arguments and register the class in
kd_det's registry, in your own project::

    # my_project/connectors.py
    import torch
    from torch import nn
    from kd_det.connectors import BaseConnector
    from kd_det.registry import MODELS

    @MODELS.register_module()
    class GatedConnector(BaseConnector):
        def __init__(self, in_channels, out_channels, spatial, gate=0.5):
            super().__init__()
            self.proj = nn.Conv2d(in_channels, out_channels, 1, bias=False)
            self.gate = gate

        def forward(self, student, teacher):
            with torch.no_grad():
                teacher = teacher * self.gate
            return self.proj(student) * self.gate, teacher

and load it from the config with ``custom_imports``::

    custom_imports = dict(imports=['kd_det', 'my_project.connectors'], allow_failed_imports=False)
    model = dict(..., distill=dict(fpn=dict(..., connector=dict(type='GatedConnector', gate=0.3))))

Projectors (:class:`BaseProjector`) and normalisations (:class:`BaseNorm`) are registered the
same way and plug into :class:`ProjectNorm`.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.registry import MODELS, build_kd_module, check_number

__all__ = [
    "AffineFreeBN",
    "BaseConnector",
    "BaseNorm",
    "BaseProjector",
    "ChannelL2Norm",
    "ChannelLayerNorm",
    "LinearProjector",
    "MLPProjector",
    "ProjectNorm",
    "registered",
    "width_mismatch_message",
]

#: BatchNorm eps of arXiv:2303.11098's normalisation.
BN_EPS = 1e-4

LINEAR_CONNECTOR = "connector=dict(type='ProjectNorm', projector=dict(type='LinearProjector'))"


def width_mismatch_message(in_channels: int, out_channels: int) -> str:
    """The error for widths that differ where nothing projects one onto the other."""
    return (
        f"student width {in_channels} and teacher width {out_channels} cannot be matched "
        f"without a projector; set {LINEAR_CONNECTOR}"
    )


class BaseConnector(nn.Module):
    """Base class of connectors: ``forward(student, teacher) -> (student', teacher')``.

    Subclasses take ``in_channels``, ``out_channels`` and ``spatial`` (the default arguments a
    distill term builds them with) and compute the teacher side under ``no_grad``.
    """

    def forward(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class BaseProjector(nn.Module):
    """Base class of projectors: ``[B, in_channels, *]`` to ``[B, out_channels, *]``."""


class BaseNorm(nn.Module):
    """Base class of normalisations of ``[B, channels, *]`` features along the channels."""


def registered(base: type) -> list[str]:
    """Names of the classes in kd_det's ``MODELS`` registry that subclass ``base``."""
    MODELS.import_from_location()
    return sorted(
        name
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, base)
    )


def _check_channels(owner: str, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {key} must be a positive int, got {value!r}")


def _linear(in_channels: int, out_channels: int, spatial: bool) -> nn.Module:
    if spatial:
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    return nn.Linear(in_channels, out_channels, bias=False)


def build_part(cfg: dict[str, Any], base: type, kind: str, **default_args: Any) -> nn.Module:
    """Build a registered ``kind`` (connector, projector, norm) that subclasses ``base``.

    Raises ``ValueError`` naming the registered ones when ``cfg`` has no or an unknown ``type``.
    """
    valid = registered(base)
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"a {kind} is a config dict with a 'type' (one of {valid}), got {cfg!r}")
    type_ = cfg["type"]
    if isinstance(type_, str) and "." not in type_:
        with MODELS.switch_scope_and_registry("kd_det") as registry:
            known = registry.get(type_) is not None
        if not known:
            close = difflib.get_close_matches(type_, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {kind} type {type_!r}{hint}; registered {kind}s: {valid}")
    try:
        return build_kd_module(cfg, **default_args)
    except TypeError as err:
        raise ValueError(f"{kind} {cfg!r} cannot be built: {err}") from err


# -- projectors ---------------------------------------------------------------------------------


@MODELS.register_module()
class LinearProjector(BaseProjector):
    """Bias-free linear map ``y = W x``: a 1x1 conv on maps, ``nn.Linear`` on vectors.

    Args:
        in_channels: width of the student feature.
        out_channels: width of the teacher feature.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
    """

    def __init__(self, in_channels: int, out_channels: int, spatial: bool) -> None:
        super().__init__()
        _check_channels("LinearProjector", in_channels=in_channels, out_channels=out_channels)
        self.spatial = bool(spatial)
        shape = (out_channels, in_channels, 1, 1) if self.spatial else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's / nn.Linear's init

    def forward(self, x: Tensor) -> Tensor:
        # F.conv2d, not a matmul over the positions: measured faster on CPU for both the
        # digits (32 -> 96) and the COCO (256 -> 256) FPN widths, forward and backward
        return F.conv2d(x, self.weight) if self.spatial else F.linear(x, self.weight)

    def extra_repr(self) -> str:
        out_channels, in_channels = self.weight.shape[:2]
        return f"{in_channels}, {out_channels}, spatial={self.spatial}"


@MODELS.register_module()
class MLPProjector(BaseProjector):
    """Two bias-free linear maps with a learnable BatchNorm and a ReLU between them.

    ``y = W2 · relu(BN(W1 x))``, 1x1 convs on maps and ``nn.Linear`` on vectors.

    Args:
        in_channels: width of the student feature.
        out_channels: width of the teacher feature.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        hidden_channels: width of the hidden layer.
    """

    def __init__(
        self, in_channels: int, out_channels: int, spatial: bool, hidden_channels: int
    ) -> None:
        super().__init__()
        _check_channels(
            "MLPProjector",
            in_channels=in_channels,
            out_channels=out_channels,
            hidden_channels=hidden_channels,
        )
        bn = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        self.layers = nn.Sequential(
            _linear(in_channels, hidden_channels, spatial),
            bn(hidden_channels),
            nn.ReLU(inplace=True),
            _linear(hidden_channels, out_channels, spatial),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


# -- normalisations -----------------------------------------------------------------------------


@MODELS.register_module()
class AffineFreeBN(BaseNorm):
    """BatchNorm without affine parameters, on batch statistics in training *and* evaluation.

    ``y = (x − mean_B x) / sqrt(var_B x + eps)`` per channel, mean and biased variance over the
    batch (and every location of a map). Nothing is learned and nothing is tracked.

    Args:
        channels: feature width.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        eps: added to the variance (1e-4, as in arXiv:2303.11098).
    """

    def __init__(self, channels: int, spatial: bool, eps: float = BN_EPS) -> None:
        super().__init__()
        _check_channels("AffineFreeBN", channels=channels)
        eps = check_number("AffineFreeBN", "eps", eps, strict=True)
        bn = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        self.bn = bn(channels, eps=eps, affine=False, track_running_stats=False)
        self._dims = (4,) if spatial else (2, 3)

    def forward(self, x: Tensor) -> Tensor:
        bn = self.bn
        if type(bn) in (nn.BatchNorm1d, nn.BatchNorm2d) and x.dim() in self._dims:
            # what bn(x) computes without running stats, minus nn.BatchNorm's Python overhead
            # (a SyncBatchNorm swapped in for DDP, or a wrong shape, goes through bn itself)
            return F.batch_norm(x, None, None, training=True, eps=bn.eps)
        return bn(x)


@MODELS.register_module()
class ChannelLayerNorm(BaseNorm):
    """Affine-free LayerNorm over the channels, independently at each location.

    ``y = (x − mean_c x) / sqrt(var_c x + eps)`` (biased variance over channels).

    Args:
        channels: feature width.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        eps: added to the variance.
    """

    def __init__(self, channels: int, spatial: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        _check_channels("ChannelLayerNorm", channels=channels)
        self.channels = channels
        self.eps = check_number("ChannelLayerNorm", "eps", eps, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            return F.layer_norm(x, (self.channels,), eps=self.eps)
        return F.layer_norm(x.movedim(1, -1), (self.channels,), eps=self.eps).movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


@MODELS.register_module()
class ChannelL2Norm(BaseNorm):
    """Unit L2 norm along the channels at each location: ``y = x / max(‖x‖₂, eps)``.

    Args:
        channels: feature width (unused; accepted as every normalisation's default argument).
        spatial: unused, as ``channels``.
        eps: lower bound of the norm.
    """

    def __init__(self, channels: int | None = None, spatial: bool = True, eps: float = 1e-12):
        super().__init__()
        self.eps = check_number("ChannelL2Norm", "eps", eps, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


# -- connectors ---------------------------------------------------------------------------------


@MODELS.register_module()
class ProjectNorm(BaseConnector):
    """Projector, then normalisation: ``s = N(P(f_S))``, ``t = N(f_T)`` (``t`` under no_grad).

    Args:
        in_channels: width of the student feature.
        out_channels: width of the teacher feature.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        projector: a projector config (``dict(type='LinearProjector')``), built with
            ``in_channels``, ``out_channels``, ``spatial``; ``None`` keeps the student feature
            as it is, which needs equal widths.
        norm: a normalisation config (``dict(type='AffineFreeBN')``), built with
            ``channels=out_channels`` and ``spatial`` and applied to both sides; ``None`` for
            none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial: bool,
        projector: dict[str, Any] | None = None,
        norm: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_channels("ProjectNorm", in_channels=in_channels, out_channels=out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial = bool(spatial)
        if projector is None:
            if in_channels != out_channels:
                raise ValueError(width_mismatch_message(in_channels, out_channels))
            self.projector: nn.Module = nn.Identity()
        else:
            self.projector = build_part(
                projector,
                BaseProjector,
                "projector",
                in_channels=in_channels,
                out_channels=out_channels,
                spatial=self.spatial,
            )
        self.norm: nn.Module = (
            nn.Identity()
            if norm is None
            else build_part(norm, BaseNorm, "norm", channels=out_channels, spatial=self.spatial)
        )
        # identity parts are skipped in forward (no module call for nothing)
        self._identity_projector = type(self.projector) is nn.Identity
        self._identity_norm = type(self.norm) is nn.Identity

    def forward(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        ndim = 4 if self.spatial else 2
        for role, x, width in (
            ("student", student, self.in_channels),
            ("teacher", teacher, self.out_channels),
        ):
            if x.ndim != ndim or x.shape[1] != width:
                expected = "[B, C, H, W]" if self.spatial else "[B, C]"
                raise ValueError(
                    f"ProjectNorm expects {role} features {expected} with C={width}, got shape "
                    f"{tuple(x.shape)}"
                )
        if self._identity_norm:
            student = student if self._identity_projector else self.projector(student)
            return student, teacher
        with torch.no_grad():
            teacher = self.norm(teacher)
        return self.norm(self.projector(student)), teacher
