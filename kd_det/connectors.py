"""Connectors between a student layer and a distillation loss: projector, then normalisation.

Seed 001 ("role of the projector"): a *linear* projector from the student's width to the
teacher's (a bias-free 1×1 conv on maps, a bias-free ``nn.Linear`` on pooled vectors), then
BatchNorm without affine parameters using batch statistics (eps 1e-4) on both the projected
student feature and the teacher feature. The distiller builds one :class:`FeatureConnector` per
student layer (projector + norm) and one per teacher layer (``projector='identity'``, same norm).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.registry import MODELS

__all__ = [
    "NORM_KINDS",
    "PROJECTOR_KINDS",
    "ChannelL2Norm",
    "ChannelLayerNorm",
    "FeatureConnector",
    "build_norm",
    "build_projector",
]

PROJECTOR_KINDS: tuple[str, ...] = ("identity", "linear", "mlp")
NORM_KINDS: tuple[str, ...] = ("batchnorm", "layernorm", "l2", "none")

#: BatchNorm eps used by seed 001.
BN_EPS = 1e-4


def _check_channels(**values: int | None) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{key} must be a positive int, got {value!r}")


def _linear(in_channels: int, out_channels: int, spatial: bool) -> nn.Module:
    if spatial:
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    return nn.Linear(in_channels, out_channels, bias=False)


def build_projector(
    kind: str,
    in_channels: int,
    out_channels: int,
    spatial: bool,
    hidden_channels: int | None = None,
) -> nn.Module:
    """Build a projector from ``in_channels`` to ``out_channels``.

    Args:
        kind: ``'identity'`` (widths must already match), ``'linear'`` (bias-free 1×1 conv when
            ``spatial``, else bias-free ``nn.Linear``) or ``'mlp'`` (linear → BatchNorm → ReLU →
            linear, both linear maps bias-free, BatchNorm ordinary and learnable).
        in_channels: student width.
        out_channels: target (teacher) width.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        hidden_channels: width of the MLP's hidden layer; required for ``'mlp'``.
    """
    _check_channels(in_channels=in_channels, out_channels=out_channels)
    if kind == "identity":
        if in_channels != out_channels:
            raise ValueError(
                f"projector 'identity' cannot connect widths that differ ({in_channels} -> "
                f"{out_channels}); use projector='linear' (or 'mlp') to map between them"
            )
        return nn.Identity()
    if kind == "linear":
        return _linear(in_channels, out_channels, spatial)
    if kind == "mlp":
        if hidden_channels is None:
            raise ValueError(
                "projector 'mlp' needs hidden_channels (the width of its hidden layer), got None"
            )
        _check_channels(hidden_channels=hidden_channels)
        bn = nn.BatchNorm2d(hidden_channels) if spatial else nn.BatchNorm1d(hidden_channels)
        return nn.Sequential(
            _linear(in_channels, hidden_channels, spatial),
            bn,
            nn.ReLU(inplace=True),
            _linear(hidden_channels, out_channels, spatial),
        )
    raise ValueError(f"unknown projector kind {kind!r}; valid kinds: {', '.join(PROJECTOR_KINDS)}")


class ChannelLayerNorm(nn.Module):
    """Affine-free LayerNorm over the channel dimension 1, independently at each location.

    ``y = (x − mean_c x) / sqrt(var_c x + eps)`` (biased variance over channels).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (``[B, C]`` or ``[B, C, *spatial]``) along dim 1."""
        if x.ndim == 2:
            return F.layer_norm(x, (self.channels,), eps=self.eps)
        y = F.layer_norm(x.movedim(1, -1), (self.channels,), eps=self.eps)
        return y.movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ChannelL2Norm(nn.Module):
    """Unit L2 norm along the channel dimension 1: ``y = x / max(‖x‖₂, eps)``."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` to unit length along dim 1."""
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def build_norm(kind: str, channels: int, spatial: bool) -> nn.Module:
    """Build a parameter-free normalisation for features of width ``channels``.

    Args:
        kind: ``'batchnorm'`` (``BatchNorm2d``/``1d`` with ``affine=False``,
            ``track_running_stats=False`` — batch statistics in train *and* eval mode — and
            eps 1e-4, as in seed 001), ``'layernorm'`` (affine-free, over channels at each
            location), ``'l2'`` (unit L2 norm along channels) or ``'none'`` (identity).
        channels: feature width.
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
    """
    _check_channels(channels=channels)
    if kind == "batchnorm":
        bn_cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        return bn_cls(channels, eps=BN_EPS, affine=False, track_running_stats=False)
    if kind == "layernorm":
        return ChannelLayerNorm(channels)
    if kind == "l2":
        return ChannelL2Norm()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm kind {kind!r}; valid kinds: {', '.join(NORM_KINDS)}")


@MODELS.register_module()
class FeatureConnector(nn.Module):
    """Projector followed by normalisation: ``forward(x) = norm(projector(x))``.

    Args:
        in_channels: width of the incoming feature.
        out_channels: width after the projector (the teacher's width).
        spatial: ``True`` for ``[B, C, H, W]`` maps, ``False`` for ``[B, C]`` vectors.
        projector: one of :data:`PROJECTOR_KINDS` (see :func:`build_projector`).
        norm: one of :data:`NORM_KINDS` (see :func:`build_norm`).
        hidden_channels: hidden width of the ``'mlp'`` projector.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial: bool,
        projector: str = "identity",
        norm: str = "none",
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial = bool(spatial)
        self.projector = build_projector(
            projector, in_channels, out_channels, self.spatial, hidden_channels
        )
        self.norm = build_norm(norm, out_channels, self.spatial)

    def forward(self, x: Tensor) -> Tensor:
        """Project then normalise ``x`` (``[B, in, H, W]`` if spatial, else ``[B, in]``)."""
        ndim = 4 if self.spatial else 2
        if x.ndim != ndim or x.shape[1] != self.in_channels:
            expected = "[B, C, H, W]" if self.spatial else "[B, C]"
            raise ValueError(
                f"FeatureConnector expects {expected} inputs with C={self.in_channels}, "
                f"got shape {tuple(x.shape)}"
            )
        return self.norm(self.projector(x))
