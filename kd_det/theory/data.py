"""The binary Gaussian mixture of the solvable KD model (arXiv:2012.00194).

``x = (2y - 1) v / sqrt(N) + sqrt(Delta) z`` with ``v, z ~ N(0, I_N)`` and ``P(y = 1) = rho``;
``M = alpha N`` training samples. Classifiers read the scaled features ``u = x / sqrt(N)``, so
``f(x) = w . x / sqrt(N) + b = w . u + b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["MixtureModel", "MixtureSample", "sample_mixture", "fresh_samples"]


@dataclass(frozen=True)
class MixtureModel:
    """Parameters of the mixture: dimension ``n``, noise variance ``delta``, prior ``rho``."""

    n: int = 1000
    delta: float = 1.0
    rho: float = 0.2

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"n must be an integer >= 2, got {self.n!r}")
        if not self.delta > 0:
            raise ValueError(f"delta must be > 0, got {self.delta!r}")
        if not 0.0 < self.rho < 1.0:
            raise ValueError(f"rho must lie strictly between 0 and 1, got {self.rho!r}")

    def n_samples(self, alpha: float) -> int:
        """``M = round(alpha N)``; ``alpha`` must be positive."""
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        return max(1, int(round(alpha * self.n)))


@dataclass(frozen=True)
class MixtureSample:
    """One draw: the cluster direction ``v`` (N,), scaled features ``u`` (M, N), labels ``y``."""

    v: torch.Tensor
    u: torch.Tensor
    y: torch.Tensor

    @property
    def m(self) -> int:
        """Number of samples."""
        return int(self.y.shape[0])

    def head(self, m: int) -> MixtureSample:
        """The first ``m`` samples (nested training sets for sweeps over ``alpha``)."""
        if not 1 <= m <= self.m:
            raise ValueError(f"m must lie in [1, {self.m}], got {m!r}")
        return MixtureSample(self.v, self.u[:m], self.y[:m])


def _draw(
    model: MixtureModel, v: torch.Tensor, m: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    y = (torch.rand(m, generator=gen, dtype=torch.float64) < model.rho).to(torch.float64)
    z = torch.randn(m, model.n, generator=gen, dtype=torch.float64)
    x = (2.0 * y - 1.0)[:, None] * v[None, :] / math.sqrt(model.n) + math.sqrt(model.delta) * z
    return x / math.sqrt(model.n), y


def sample_mixture(model: MixtureModel, alpha: float, seed: int) -> MixtureSample:
    """Draw ``v`` and ``M = alpha N`` training samples from a seeded generator (float64)."""
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn(model.n, generator=gen, dtype=torch.float64)
    u, y = _draw(model, v, model.n_samples(alpha), gen)
    return MixtureSample(v, u, y)


def fresh_samples(
    model: MixtureModel, v: torch.Tensor, m: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` new samples ``(u, y)`` around the same ``v`` (for measuring test error)."""
    if v.shape != (model.n,):
        raise ValueError(f"v must have shape ({model.n},), got {tuple(v.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    return _draw(model, v.to(torch.float64), int(m), gen)
