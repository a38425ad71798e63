"""Teacher, sparse student and Bayes-optimal estimators of the solvable KD model
(arXiv:2012.00194).

All classifiers are ``f(x) = w . u + b`` with ``u = x / sqrt(N)``; weights are returned in the full
N-dimensional space (zeros outside a student's support), batched over settings: ``w`` (K, N).

* Teacher: dense L2 logistic regression,
  ``sum_mu H(y_mu^ls, sigma(f_mu)) + (lam_t / 2) ||w||^2`` with label-smoothed targets
  ``y^ls = (1 - eps) y + eps / 2``.
* Student: only the first ``round(eta N)`` weights are trainable (a fixed support; the data are
  isotropic, so any fixed support is equivalent). It is fitted on the teacher's training set with

      sum_mu [ (1 - chi) H(y_mu, sigma(f_mu)) + chi c_T H(sigma(f~_mu / T), sigma(f_mu / T)) ]
      + (lam / 2) ||w||^2,

  ``f~`` the teacher's logits. Temperature choice: ``T`` divides both the teacher's and the
  student's logits inside the distillation term; the decision rule stays ``f > 0``. By default
  ``c_T = 1`` (the loss exactly as the paper writes it), so the distillation gradient scales as
  ``1 / T`` and raising ``T`` both softens the targets and strengthens the L2 penalty relative to
  the data term (for large ``T`` the term is ``(f - f~)^2 / (8 T^2)``: ridge regression onto the
  teacher's logits with effective penalty ``~ 8 T^2 lam``). ``hinton_t2=True`` uses
  ``c_T = T^2`` instead, which keeps the gradient scale and only softens the targets.
* Bayes-optimal: with prior ``v ~ N(0, I)`` the posterior of ``v`` is ``N(mu, I / a)``,
  ``a = 1 + M / (N Delta)``, ``mu = sum_mu (2 y_mu - 1) u_mu / (a Delta)`` (Hebbian), and the
  posterior log-odds of a test point is linear: ``w = 2 mu / (Delta + 1 / (a N))``,
  ``b = log(rho / (1 - rho))``. Restricting it to the student's support gives the Bayes-optimal
  estimator that only sees those inputs (the sparse bound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kd_det.theory.data import MixtureModel, MixtureSample
from kd_det.theory.errors import generalization_error, overlaps
from kd_det.theory.solver import LossTerm, fit_logistic

__all__ = [
    "LinearClassifier",
    "student_support",
    "smooth_labels",
    "fit_teacher",
    "fit_student",
    "bayes_optimal",
    "fit_ridge",
]


@dataclass(frozen=True)
class LinearClassifier:
    """A batch of ``K`` linear classifiers: ``w`` (K, N), ``b`` (K,), Newton steps per fit."""

    w: torch.Tensor
    b: torch.Tensor
    n_iter: torch.Tensor | None = None

    def logits(self, u: torch.Tensor) -> torch.Tensor:
        """``f = w . u + b`` for features ``u`` (M, N): returns (K, M)."""
        return self.w @ u.T + self.b[:, None]

    def overlaps(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(m, q, b)``, each of shape (K,)."""
        return overlaps(self.w, self.b, v)

    def error(self, model: MixtureModel, v: torch.Tensor) -> torch.Tensor:
        """Closed-form test error of each classifier, (K,)."""
        return generalization_error(*self.overlaps(v), model.delta, model.rho)


def _as_batch(x: float | Sequence[float] | torch.Tensor, k: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(k).clone()
    if t.numel() != k:
        raise ValueError(f"{name} must be a scalar or have {k} entries, got {t.numel()}")
    return t


def student_support(n: int, eta: float) -> torch.Tensor:
    """Indices of the student's trainable weights: the first ``round(eta n)`` coordinates."""
    if not 0 < eta <= 1:
        raise ValueError(f"eta must lie in (0, 1], got {eta!r}")
    return torch.arange(max(1, int(round(eta * n))))


def smooth_labels(y: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """Label smoothing ``(1 - eps) y + eps / 2``; ``eps`` (K,) gives (K, M)."""
    eps = torch.as_tensor(eps, dtype=torch.float64).reshape(-1, 1)
    if bool((eps < 0).any()) or bool((eps > 1).any()):
        raise ValueError("label smoothing eps must lie in [0, 1]")
    return (1 - eps) * y[None, :] + eps / 2


def fit_teacher(
    sample: MixtureSample,
    lam: float | Sequence[float] | torch.Tensor,
    label_smoothing: float | Sequence[float] | torch.Tensor = 0.0,
    *,
    tol: float = 1e-9,
    max_iter: int = 200,
    init: LinearClassifier | None = None,
) -> LinearClassifier:
    """Dense L2 logistic regression at strengths ``lam`` (batched; see module docstring).

    ``init`` warm-starts Newton's method (e.g. from the fit on a nested, smaller training set).
    """
    lam_t = torch.as_tensor(lam, dtype=torch.float64).reshape(-1)
    k = lam_t.numel()
    eps = _as_batch(label_smoothing, k, "label_smoothing")
    one = torch.ones(k, dtype=torch.float64)
    term = LossTerm(one, smooth_labels(sample.y, eps), one)
    w0, b0 = (None, None) if init is None else (init.w, init.b)
    res = fit_logistic(sample.u, [term], lam_t, tol=tol, max_iter=max_iter, w0=w0, b0=b0)
    return LinearClassifier(res.w, res.b, res.n_iter)


def fit_student(
    sample: MixtureSample,
    teacher_logits: torch.Tensor,
    eta: float,
    *,
    chi: float | Sequence[float] | torch.Tensor = 1.0,
    lam: float | Sequence[float] | torch.Tensor = 1e-5,
    temperature: float | Sequence[float] | torch.Tensor = 1.0,
    hinton_t2: bool = False,
    tol: float = 1e-9,
    max_iter: int = 200,
    init: LinearClassifier | None = None,
) -> LinearClassifier:
    """Sparse student distilled from ``teacher_logits`` (K, M) on the teacher's training set.

    ``chi``, ``lam`` and ``temperature`` are scalars or (K,) batches; see the module docstring for
    the loss and the temperature convention. ``init`` (full-N weights) warm-starts the fit.
    """
    if teacher_logits.ndim == 1:
        teacher_logits = teacher_logits[None, :]
    k, m = teacher_logits.shape
    if m != sample.m:
        raise ValueError(f"teacher_logits must have {sample.m} columns (one per sample), got {m}")
    chi_t = _as_batch(chi, k, "chi")
    if bool((chi_t < 0).any()) or bool((chi_t > 1).any()):
        raise ValueError("chi must lie in [0, 1]")
    lam_t = _as_batch(lam, k, "lam")
    temp = _as_batch(temperature, k, "temperature")
    if not bool((temp > 0).all()):
        raise ValueError("temperature must be > 0")
    support = student_support(sample.u.shape[1], eta)
    u_s = sample.u[:, support]
    one = torch.ones(k, dtype=torch.float64)
    hard = LossTerm(1 - chi_t, sample.y.expand(k, -1), one)
    c_t = chi_t * temp**2 if hinton_t2 else chi_t
    soft = LossTerm(c_t, torch.sigmoid(teacher_logits.to(torch.float64) / temp[:, None]), temp)
    w0, b0 = (None, None) if init is None else (init.w[:, support], init.b)
    res = fit_logistic(u_s, [hard, soft], lam_t, tol=tol, max_iter=max_iter, w0=w0, b0=b0)
    w = torch.zeros(k, sample.u.shape[1], dtype=torch.float64)
    w[:, support] = res.w
    return LinearClassifier(w, res.b, res.n_iter)


def bayes_optimal(
    sample: MixtureSample, model: MixtureModel, eta: float | None = None
) -> LinearClassifier:
    """Bayes-optimal linear rule (module docstring); ``eta`` restricts it to the student support."""
    m, n = sample.u.shape
    if n != model.n:
        raise ValueError(f"sample has N={n}, model has N={model.n}")
    a = 1.0 + m / (n * model.delta)
    mu = ((2 * sample.y - 1) @ sample.u) / (a * model.delta)
    w = 2.0 * mu / (model.delta + 1.0 / (a * n))
    if eta is not None:
        mask = torch.zeros(n, dtype=torch.float64)
        mask[student_support(n, eta)] = 1.0
        w = w * mask
    b = torch.tensor([math.log(model.rho / (1 - model.rho))], dtype=torch.float64)
    return LinearClassifier(w[None, :], b)


def fit_ridge(
    sample: MixtureSample, eta: float, lam: float | Sequence[float] | torch.Tensor
) -> LinearClassifier:
    """Ridge regression of ``2y - 1`` on the student's inputs (unpenalised bias), batched in lam.

    Minimises ``sum_mu (2 y_mu - 1 - f_mu)^2 + lam ||w||^2``; classify by ``f > 0``.
    """
    lam_t = torch.as_tensor(lam, dtype=torch.float64).reshape(-1)
    if not bool((lam_t > 0).all()):
        raise ValueError("ridge lam must be > 0")
    support = student_support(sample.u.shape[1], eta)
    u_s = sample.u[:, support]
    t = 2 * sample.y - 1
    u_mean, t_mean = u_s.mean(0), t.mean()
    uc, tc = u_s - u_mean, t - t_mean
    evals, evecs = torch.linalg.eigh(uc.T @ uc)
    proj = evecs.T @ (uc.T @ tc)
    ws = (evecs[None] @ (proj[None] / (evals[None] + lam_t[:, None]))[..., None])[..., 0]
    w = torch.zeros(len(lam_t), sample.u.shape[1], dtype=torch.float64)
    w[:, support] = ws
    b = t_mean - ws @ u_mean
    return LinearClassifier(w, b)
