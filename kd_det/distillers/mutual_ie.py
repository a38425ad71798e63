"""IE-DML: mutual learning with the inheritance/exploration split on both networks.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181) applies its split to deep mutual learning: each network is the
other's teacher, so each inherits from and explores away from its *partner's* factor. There is
no pretrained teacher, so every network's auto-encoder is trained jointly with the networks.
For network ``k`` with partner ``p``, on each layer ``f_k`` of the term::

    F_k, f̂_k  = AE_k( sg(f_k) )                 factor and reconstruction of k's own feature
    L_rec,k   = mean |f̂_k − sg(f_k)|            (or squared: recon='l2'); trains AE_k only
    f_inh, f_exp = split_k(f_k)                 by channel (natural or a fixed random order)
    F_inh = E_inh,k(f_inh),  F_exp = E_exp,k(f_exp)
    L_inh,k = mean_b d(F_inh, sg(F_p)),   L_exp,k = − mean_b d(F_exp, sg(F_p))
    d(a, b) = (1/D) Σ_i | a_i/‖a‖₂ − b_i/‖b‖₂ |      (per sample, flattened)

and network ``k``'s term is ``λ_inh L_inh,k + λ_exp L_exp,k`` (``InheritExploreLoss``, with the
paper's ``λ = 50`` or the code's ``1``), summed over the term's layers, plus ``L_rec,k``
averaged over them. ``sg`` is a stop-gradient: the partner's factor is a constant target, and
reconstruction does not shape the network (its auto-encoder only describes what the network
knows, as the teacher's frozen auto-encoder does in IE-KD). Everything of network ``k`` -- the
auto-encoder, the split and the two encoders -- is trained by ``k``'s optimizer. Both networks'
factors have the same width ``F`` (they are compared); the partner's factor map is resized to
``k``'s spatial size when the strides differ.

The parts are kd_det's IE-KD modules (:mod:`kd_det.inherit_explore`): :class:`ChannelSplit`,
:class:`FactorCoder` (three bias-free 3×3 convolutions with BatchNorm and LeakyReLU(0.1), built by
``build_coder``) as the auto-encoder's encoder and decoder and as the two parts' encoders, and
:class:`InheritExploreLoss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.distillers.optim import NETWORKS
from kd_det.inherit_explore.autoencoder import RECON_LOSSES
from kd_det.inherit_explore.encoder import build_coder
from kd_det.inherit_explore.loss import InheritExploreLoss
from kd_det.inherit_explore.split import ChannelSplit

__all__ = ["InheritExploreSide", "MutualInheritExploreTerm"]


def _partner(name: str) -> str:
    return NETWORKS[1] if name == NETWORKS[0] else NETWORKS[0]


class InheritExploreSide(nn.Module):
    """One network's parts of an IE-DML term: its auto-encoder (``encoder`` ``C → F`` and
    ``decoder`` ``F → C``), its split and the encoders of the two parts.

    (The auto-encoder is the two coders of :class:`FactorAutoEncoder` without its extra state:
    mmengine broadcasts the whole state dict between processes at start, tensors only.)

    Args:
        channels: width ``C`` of the network's layers in the term.
        factor_channels: factor width ``F`` (the same for both networks).
        split: ``'natural'`` or ``'random'``; ``ratio`` the inheriting share, ``seed`` the
            random split's seed (see :class:`ChannelSplit`).
        encoder / decoder: coder configs (``None``: ``FactorCoder``) of the auto-encoder; the
            two split encoders use ``encoder``.
    """

    def __init__(
        self,
        channels: int,
        factor_channels: int,
        split: str = "natural",
        ratio: float = 0.5,
        seed: int = 0,
        encoder: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = build_coder(encoder, channels, factor_channels)
        self.decoder = build_coder(decoder, factor_channels, channels)
        self.split = ChannelSplit(channels, ratio=ratio, mode=split, seed=seed)
        self.inherit_encoder = build_coder(encoder, self.split.inherit_channels, factor_channels)
        self.explore_encoder = build_coder(encoder, self.split.explore_channels, factor_channels)

    def encode_parts(self, feature: Tensor) -> Tensor:
        """``stack([E_inh(f_inh), E_exp(f_exp)], dim=1)``: ``[B, 2, F, H, W]``."""
        f_inh, f_exp = self.split(feature)
        return torch.stack([self.inherit_encoder(f_inh), self.explore_encoder(f_exp)], dim=1)


class MutualInheritExploreTerm(nn.Module):
    """Both networks' IE-DML parts and losses for one term (see the module docstring).

    ``self[net]`` is ``net``'s :class:`InheritExploreSide` (what ``net``'s optimizer trains);
    ``forward(layers)`` takes ``{'net1': [layers], 'net2': [layers]}`` (one list per network,
    paired by position) and returns, per network, ``{'loss': λ_inh L_inh + λ_exp L_exp (times
    scale), 'recon_loss': L_rec, 'inh': L_inh, 'exp': L_exp}`` (the last two detached, for the
    log). ``scale`` (set by :class:`kd_det.hooks.DistillWeightScheduler`) multiplies the IE
    losses, not the reconstruction.

    Args:
        name: the term's name, for messages.
        labels: readable names of each network's layers.
        shapes: each network's layer shapes (from the construction probe).
        loss: an :class:`InheritExploreLoss` (built by the distiller).
        factor_channels: the factor width ``F`` (``None``: half the narrower network's width).
        split / ratio / seed / encoder / decoder: see :class:`InheritExploreSide`.
        recon: ``'l1'`` (mean absolute error, the authors' choice) or ``'l2'``.
    """

    def __init__(
        self,
        name: str,
        labels: Mapping[str, list[str]],
        shapes: Mapping[str, list[tuple[int, ...]]],
        loss: InheritExploreLoss,
        factor_channels: int | None = None,
        split: str = "natural",
        ratio: float = 0.5,
        seed: int = 0,
        encoder: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
        recon: str = "l1",
    ) -> None:
        super().__init__()
        self.name = name
        self.scale = 1.0
        if not isinstance(loss, InheritExploreLoss):
            raise ValueError(
                f"distill term {name!r}: an IE-DML term needs loss=dict(type="
                f"'InheritExploreLoss', ...), got {type(loss).__name__}"
            )
        if recon not in RECON_LOSSES:
            raise ValueError(
                f"distill term {name!r}: recon must be one of {list(RECON_LOSSES)} (mean "
                f"absolute or squared reconstruction error), got {recon!r}"
            )
        self.loss = loss
        self.recon = recon
        counts = {net: len(shapes[net]) for net in NETWORKS}
        if counts["net1"] != counts["net2"]:
            raise ValueError(
                f"distill term {name!r}: an IE-DML term pairs the networks' layers one to one, "
                f"but net1 names {counts['net1']} ({labels['net1']}) and net2 "
                f"{counts['net2']} ({labels['net2']})"
            )
        widths: dict[str, int] = {}
        for net in NETWORKS:
            for label, shape in zip(labels[net], shapes[net], strict=True):
                if len(shape) != 4:
                    raise ValueError(
                        f"distill term {name!r}: {net}'s {label} is {tuple(shape)}, but the "
                        "inheritance/exploration coders are 3x3 convolutions on maps "
                        "[B, C, H, W]; name a convolutional layer (a backbone stage, the FPN)"
                    )
            found = sorted({shape[1] for shape in shapes[net]})
            if len(found) != 1:
                raise ValueError(
                    f"distill term {name!r}: {net}'s layers {labels[net]} have widths {found}; "
                    "one auto-encoder and one split per network need layers of one width "
                    "(use one term per width)"
                )
            widths[net] = found[0]
        narrow = min(widths.values())
        if factor_channels is None:
            factor_channels = max(1, narrow // 2)
        if (
            isinstance(factor_channels, bool)
            or not isinstance(factor_channels, int)
            or not 0 < factor_channels <= narrow
        ):
            raise ValueError(
                f"distill term {name!r}: factor_channels must be an int in 1 … {narrow} (the "
                f"narrower network's width: net1 {widths['net1']}, net2 {widths['net2']}; an "
                f"auto-encoder compresses), got {factor_channels!r}"
            )
        self.factor_channels = factor_channels
        sides = {}
        for net in NETWORKS:
            try:
                sides[net] = InheritExploreSide(
                    widths[net], factor_channels, split, ratio, seed, encoder, decoder
                )
            except ValueError as err:
                raise ValueError(f"distill term {name!r}, {net}: {err}") from err
        self.sides = nn.ModuleDict(sides)

    def __getitem__(self, network: str) -> InheritExploreSide:
        return self.sides[network]  # type: ignore[return-value]

    def forward(self, layers: Mapping[str, list[Tensor]]) -> dict[str, dict[str, Tensor]]:
        recon_fn = RECON_LOSSES[self.recon]
        n = len(layers[NETWORKS[0]])
        factors: dict[str, list[Tensor]] = {net: [] for net in NETWORKS}
        out: dict[str, dict[str, Tensor]] = {}
        for net in NETWORKS:
            side = self[net]
            recon_total = None
            for feature in layers[net]:
                target = feature.detach().float()
                factor = side.encoder(target)
                reconstruction = side.decoder(factor)
                factors[net].append(factor.detach())
                value = recon_fn(reconstruction, target)
                recon_total = value if recon_total is None else recon_total + value
            out[net] = {"recon_loss": recon_total / n}
        for net in NETWORKS:
            side, partner = self[net], factors[_partner(net)]
            ie = inh = exp = None
            for feature, target in zip(layers[net], partner, strict=True):
                s = side.encode_parts(feature.float())
                if target.shape[-2:] != s.shape[-2:]:
                    target = F.interpolate(
                        target, size=s.shape[-2:], mode="bilinear", align_corners=False
                    )
                t = target.unsqueeze(1).expand_as(s)
                value = self.loss(s, t)
                with torch.no_grad():
                    l_inh, l_exp = self.loss.components(s, t)
                ie = value if ie is None else ie + value
                inh = l_inh if inh is None else inh + l_inh
                exp = l_exp if exp is None else exp + l_exp
            out[net].update(loss=ie * self.scale, inh=inh, exp=exp)
        return out
