"""Replica-symmetric prediction for the teacher (dense L2 logistic regression) on the mixture.

The replica computation of arXiv:2012.00194 (its appendix), after "The role of regularization in
classification of high-dimensional noisy Gaussian mixture" (Mignacco et al., ICML 2020,
arXiv:2002.11544). Stationarity of the free entropy

    Phi = -(mh m + (qh dq - dqh q) / 2) + (mh^2 + qh) / (2 (lam + dqh)) + alpha g_E(m, q, dq, b),
    g_E = -E_{s, z} min_h [ (h - omega)^2 / (2 V) + l(y, h) ],
    omega = s m + b + sqrt(Delta q) z,   V = Delta dq,   s = 2y - 1,  P(y = 1) = rho,

with ``l(y, h) = softplus(h) - y h`` (binary cross-entropy on the logit), gives, writing ``h*`` for
the minimiser (the proximal point) and ``g = (h* - omega) / V = y - sigma(h*)``:

    mh  = alpha E[s g],      qh = alpha Delta E[g^2],
    dqh = alpha Delta E[ l''(h*) / (1 + V l''(h*)) ],        E[g] = 0  (fixes b),
    m = mh / (lam + dqh),    dq = 1 / (lam + dqh),    q = (mh^2 + qh) / (lam + dqh)^2.

``E`` averages over ``y`` and ``z ~ N(0, 1)`` (Gauss-Hermite quadrature). The equations are
iterated with damping (and one Newton step on ``b`` per sweep) until the relative change and
``|E[g]|`` are below ``tol``; :func:`generalization_error` of
``(m, q, b)`` is the predicted test error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq

from kd_det.theory.data import MixtureModel, sample_mixture
from kd_det.theory.errors import generalization_error
from kd_det.theory.models import fit_teacher
from kd_det.theory.solver import ConvergenceError

__all__ = ["TeacherOverlaps", "solve_teacher_replica", "compare_teacher_with_simulation"]


@dataclass(frozen=True)
class TeacherOverlaps:
    """Fixed point ``(m, q, dq, b)``, conjugates, predicted error and iterations used."""

    m: float
    q: float
    dq: float
    b: float
    mh: float
    qh: float
    dqh: float
    err: float
    n_iter: int


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * h))


def _prox(omega: np.ndarray, v: float, y: np.ndarray) -> np.ndarray:
    """Solve ``(h - omega) / V + sigma(h) - y = 0``; the root lies in ``omega + V [y - 1, y]``."""
    lo, hi = omega + v * (y - 1.0), omega + v * y
    h = np.clip(omega, lo, hi)
    for _ in range(200):
        s = _sigmoid(h)
        f = (h - omega) / v + s - y  # increasing in h
        if np.max(np.abs(f)) < 1e-13:
            break
        lo = np.where(f < 0, h, lo)
        hi = np.where(f > 0, h, hi)
        newton = h - f / (1.0 / v + s * (1.0 - s))
        h = np.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
    return h


class _Channel:
    """Quadrature over ``y`` and ``z`` for the energetic part."""

    def __init__(self, delta: float, rho: float, n_quad: int = 121) -> None:
        z, wz = np.polynomial.hermite_e.hermegauss(n_quad)
        wz = wz / math.sqrt(2 * math.pi)
        self.delta = delta
        self.z = np.concatenate([z, z])
        self.y = np.concatenate([np.ones_like(z), np.zeros_like(z)])
        self.s = 2 * self.y - 1
        self.w = np.concatenate([rho * wz, (1 - rho) * wz])

    def moments(self, m: float, q: float, dq: float, b: float) -> tuple[float, ...]:
        v = self.delta * dq
        omega = self.s * m + b + math.sqrt(self.delta * q) * self.z
        h = _prox(omega, v, self.y)
        g = (h - omega) / v
        s = _sigmoid(h)
        l2 = s * (1 - s)
        return (
            float(self.w @ g),
            float(self.w @ (self.s * g)),
            float(self.w @ (g * g)),
            float(self.w @ (l2 / (1 + v * l2))),
        )

    def solve_bias(self, m: float, q: float, dq: float, b0: float) -> float:
        def eg(b: float) -> float:
            return self.moments(m, q, dq, b)[0]

        lo, hi = b0 - 1.0, b0 + 1.0
        for _ in range(60):
            if eg(lo) > 0 > eg(hi) or eg(lo) * eg(hi) <= 0:
                break
            lo, hi = lo - (hi - lo), hi + (hi - lo)
        return float(brentq(eg, lo, hi, xtol=1e-14, rtol=1e-14))


def solve_teacher_replica(
    alpha: float,
    lam: float,
    delta: float = 1.0,
    rho: float = 0.2,
    *,
    damping: float = 0.5,
    tol: float = 1e-10,
    max_iter: int = 5000,
    n_quad: int = 121,
) -> TeacherOverlaps:
    """Iterate the replica-symmetric equations (module docstring) for the L2 logistic teacher.

    Raises :class:`~kd_det.theory.solver.ConvergenceError` if the relative change of
    ``(m, q, dq)`` is still above ``tol`` after ``max_iter`` damped iterations.
    """
    if alpha <= 0 or lam <= 0:
        raise ValueError(f"need alpha > 0 and lam > 0, got alpha={alpha}, lam={lam}")
    if not 0 < damping <= 1:
        raise ValueError(f"damping must lie in (0, 1], got {damping}")
    ch = _Channel(delta, rho, n_quad)
    m, q, dq, b = 0.1, 0.1, 1.0, math.log(rho / (1 - rho))
    change, it = math.inf, 0
    while it < max_iter:
        it += 1
        e_g, es_g, eg2, edq = ch.moments(m, q, dq, b)
        # one Newton step on E[g](b) = 0 per sweep (dE[g]/db = -E[l''/(1 + V l'')])
        b = b + e_g / max(edq, 1e-300)
        mh, qh, dqh = alpha * es_g, alpha * delta * eg2, alpha * delta * edq
        m_new = mh / (lam + dqh)
        dq_new = 1.0 / (lam + dqh)
        q_new = (mh * mh + qh) / (lam + dqh) ** 2
        change = max(
            abs(m_new - m) / (abs(m) + 1e-12),
            abs(q_new - q) / q,
            abs(dq_new - dq) / dq,
            abs(e_g),
        )
        m = (1 - damping) * m + damping * m_new
        q = (1 - damping) * q + damping * q_new
        dq = (1 - damping) * dq + damping * dq_new
        if change < tol:
            break
    if change >= tol:
        raise ConvergenceError(
            f"replica equations at alpha={alpha}, lam={lam}: relative change {change:.2e} > {tol:g} "
            f"after {max_iter} iterations"
        )
    b = ch.solve_bias(m, q, dq, b)
    err = float(generalization_error(m, q, b, delta, rho))
    return TeacherOverlaps(m, q, dq, b, mh, qh, dqh, err, it)


def compare_teacher_with_simulation(
    model: MixtureModel,
    alphas: Sequence[float],
    lams: Sequence[float],
    seeds: Sequence[int],
    progress=None,
) -> list[dict[str, float]]:
    """Rows ``(alpha, lam_teacher)`` with the replica prediction (``theory_*``) beside the
    seed-averaged simulation at ``model.n`` (``sim_*_mean`` / ``sim_*_sem``) for m, q, b, err."""
    rows: list[dict[str, float]] = []
    sims: dict[tuple[float, float], list[tuple[float, float, float, float]]] = {}
    total, done = len(alphas) * len(seeds), 0
    for seed in seeds:
        full = sample_mixture(model, max(alphas), 10_000 + seed)
        t = None
        for alpha in sorted(alphas):
            sample = full.head(model.n_samples(alpha))
            t = fit_teacher(sample, list(lams), init=t)
            m, q, b = t.overlaps(sample.v)
            err = t.error(model, sample.v)
            for i, lam in enumerate(lams):
                sims.setdefault((alpha, lam), []).append(
                    (float(m[i]), float(q[i]), float(b[i]), float(err[i]))
                )
            done += 1
            if progress is not None:
                progress(f"[replica] simulation {done}/{total} (seed {seed}, alpha {alpha:g})")
    for alpha in sorted(alphas):
        for lam in lams:
            th = solve_teacher_replica(alpha, lam, model.delta, model.rho)
            sim = torch.tensor(sims[(alpha, lam)], dtype=torch.float64)
            mean = sim.mean(0)
            sem = sim.std(0) / math.sqrt(len(sim)) if len(sim) > 1 else torch.full((4,), math.nan)
            row: dict[str, float] = {"alpha": alpha, "lam_teacher": lam}
            for j, key in enumerate(["m", "q", "b", "err"]):
                row[f"theory_{key}"] = getattr(th, key)
                row[f"sim_{key}_mean"] = float(mean[j])
                row[f"sim_{key}_sem"] = float(sem[j])
            rows.append(row)
        if progress is not None:
            progress(f"[replica] theory alpha {alpha:g} solved")
    return rows
