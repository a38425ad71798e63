"""Closed-form and empirical test errors of linear classifiers on the mixture.

For ``f(x) = w . x / sqrt(N) + b`` and a test point of class ``y``, ``w . x / sqrt(N)`` is
Gaussian with mean ``(2y - 1) m`` and variance ``Delta q``, where ``m = w . v / N`` and
``q = ||w||^2 / N``. Predicting ``y = 1`` when ``f > 0`` therefore errs with probability

    eps_g = rho Phi_c((m + b) / sqrt(Delta q)) + (1 - rho) Phi_c((m - b) / sqrt(Delta q)),

``Phi_c(t) = erfc(t / sqrt 2) / 2`` the Gaussian tail. This is exact given ``(w, b, v)``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_tail", "overlaps", "generalization_error", "empirical_error"]


def gaussian_tail(t: torch.Tensor) -> torch.Tensor:
    """``Phi_c(t) = P(Z > t)`` for ``Z ~ N(0, 1)``."""
    return 0.5 * torch.special.erfc(t / math.sqrt(2.0))


def overlaps(
    w: torch.Tensor, b: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m, q, b)`` with ``m = w . v / N`` and ``q = ||w||^2 / N`` for ``w`` of shape (..., N)."""
    n = v.shape[-1]
    if w.shape[-1] != n:
        raise ValueError(f"w must end in dimension N={n}, got shape {tuple(w.shape)}")
    return (w @ v) / n, (w * w).sum(-1) / n, b


def generalization_error(
    m: torch.Tensor | float,
    q: torch.Tensor | float,
    b: torch.Tensor | float,
    delta: float,
    rho: float,
) -> torch.Tensor:
    """Closed-form test error ``eps_g(m, q, b)`` (module docstring); ``q = 0`` uses ``sign(b)``."""
    m, q, b = (torch.as_tensor(x, dtype=torch.float64) for x in (m, q, b))
    if bool((q < 0).any()):
        raise ValueError("q = ||w||^2 / N must be >= 0")
    if delta <= 0 or not 0 < rho < 1:
        raise ValueError(f"need delta > 0 and 0 < rho < 1, got delta={delta}, rho={rho}")
    s = torch.sqrt(delta * q)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    eps = rho * gaussian_tail((m + b) / safe) + (1 - rho) * gaussian_tail((m - b) / safe)
    # w = 0: the prediction is the sign of b for every input.
    degenerate = torch.where(b > 0, torch.full_like(b, 1 - rho), torch.full_like(b, rho))
    return torch.where(s > 0, eps, degenerate)


def empirical_error(
    w: torch.Tensor, b: torch.Tensor, u: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Fraction of samples ``(u, y)`` misclassified by ``1[w . u + b > 0]`` (per row of ``w``)."""
    pred = (u @ w.T + b).T > 0  # (K, M)
    return (pred != (y > 0.5)).to(torch.float64).mean(-1)
