"""The channel split of IE-KD: a student feature map into an inheritance and an exploration part.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181) splits the student's feature by channel. The *natural* split takes
the first ``k`` channels for inheritance and the rest for exploration; the *random* split takes
them in the order of a fixed random permutation drawn once from ``seed``. ``k = ratio · C`` must
be a whole number of channels with both parts non-empty (the paper's best ratio is 1/2).

The channel order is a buffer (``index``), so a checkpoint keeps it; loading a checkpoint made
with another split is refused, as a distill term refuses other layer pairs.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from kd_det.registry import MODELS

__all__ = ["SPLIT_MODES", "ChannelSplit", "split_width"]

SPLIT_MODES = ("natural", "random")


def split_width(channels: int, ratio: float, owner: str = "ChannelSplit") -> int:
    """The number of inheritance channels, ``ratio · channels``, or a ``ValueError`` when
    ``ratio`` is not in (0, 1) or does not split ``channels`` into two whole, non-empty parts."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"{owner}: channels must be a positive int, got {channels!r}")
    ok = isinstance(ratio, numbers.Real) and not isinstance(ratio, bool) and math.isfinite(ratio)
    if not ok or not 0 < ratio < 1:
        raise ValueError(
            f"{owner}: ratio must be a number in (0, 1), the share of the channels that "
            f"inherit (0.5 splits them in halves), got {ratio!r}"
        )
    exact = channels * float(ratio)
    k = round(exact)
    if abs(exact - k) > 1e-6 or not 0 < k < channels:
        if channels < 2:
            valid = "none: a feature of one channel cannot be split"
        else:
            near = sorted(
                {min(max(q, 1), channels - 1) for q in (math.floor(exact), math.ceil(exact))}
            )
            examples = " or ".join(f"{q}/{channels}" for q in near)
            valid = f"ratios k/{channels} for k = 1 … {channels - 1}, e.g. {examples}"
        raise ValueError(
            f"{owner}: ratio {ratio!r} splits {channels} channels into {exact:g} and "
            f"{channels - exact:g}; both parts must be whole numbers of channels, at least one "
            f"each. Valid: {valid}"
        )
    return k


@MODELS.register_module()
class ChannelSplit(nn.Module):
    """Split ``[B, C, …]`` features by channel: ``forward(x) -> (x_inh, x_exp)``.

    ``x_inh`` holds the channels ``index[:k]`` and ``x_exp`` the channels ``index[k:]``, with
    ``k = ratio · C``; ``index`` is ``0 … C−1`` for the natural split and a permutation drawn
    from ``torch.Generator().manual_seed(seed)`` for the random one.

    Args:
        channels: the width ``C`` of the features to split.
        ratio: share of the channels in the inheritance part, in (0, 1).
        mode: ``'natural'`` (first/second part) or ``'random'`` (a fixed seeded permutation).
        seed: seed of the random permutation (unused by the natural split).
    """

    def __init__(
        self, channels: int, ratio: float = 0.5, mode: str = "natural", seed: int = 0
    ) -> None:
        super().__init__()
        if mode not in SPLIT_MODES:
            raise ValueError(f"ChannelSplit: mode must be one of {list(SPLIT_MODES)}, got {mode!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"ChannelSplit: seed must be an int, got {seed!r}")
        k = split_width(channels, ratio)
        self.channels, self.ratio, self.mode, self.seed = channels, float(ratio), mode, seed
        self.inherit_channels, self.explore_channels = k, channels - k
        if mode == "natural":
            index = torch.arange(channels)
        else:
            index = torch.randperm(channels, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("index", index)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(
                f"ChannelSplit expects features [B, {self.channels}, …], got shape {tuple(x.shape)}"
            )
        if self.mode == "random":
            x = x.index_select(1, self.index)
        k = self.inherit_channels
        return x[:, :k], x[:, k:]

    def describe(self, index: Tensor | None = None) -> str:
        """``'natural 32/32'``, ``'random 32/32 (channels 5, 17, 2, …)'``."""
        index = self.index if index is None else index
        n = index.numel()
        if torch.equal(index.cpu(), torch.arange(n)):
            kind = "natural"
        else:
            head = ", ".join(str(i) for i in index[:4].tolist())
            kind = f"random (channel order {head}, …)"
        return f"{kind} split of {n} channels"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        saved = state_dict.get(prefix + "index")
        if saved is not None and (
            saved.shape != self.index.shape or not torch.equal(saved.cpu(), self.index.cpu())
        ):
            raise ValueError(
                f"{prefix}index: the checkpoint was trained with the {self.describe(saved)}, the "
                f"config now gives the {self.describe()} (mode={self.mode!r}, "
                f"ratio={self.ratio}, seed={self.seed}); restore the split the run started with"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{self.channels} -> {self.inherit_channels} + {self.explore_channels}, "
            f"mode={self.mode!r}, seed={self.seed}"
        )
