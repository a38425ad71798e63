"""Batched damped-Newton solver for L2-penalised logistic losses with soft targets.

One call fits ``K`` settings that share one feature matrix ``u`` (M, d). Setting ``k`` minimises

    F_k(w, b) = sum_mu sum_t c_tk [ softplus(f_mu / T_tk) - p_tkmu f_mu / T_tk ]
                + (lam_k / 2) ||w||^2,        f_mu = w . u_mu + b,

i.e. a weighted sum of binary cross-entropies ``H(p, sigma(f / T))`` (up to the entropy of ``p``,
which does not depend on ``(w, b)``); the bias ``b`` is not penalised. Every ``F_k`` is convex, so
Newton's method with a backtracking (Armijo) line search converges globally; it stops per setting
when ``||grad F_k|| / M <= tol``. The Newton system is solved in the primal ((d+1) x (d+1)
Cholesky) when ``M >= d`` and through the Woodbury identity on the (M x M) Gram matrix when
``M < d``. Settings that miss the tolerance raise :class:`ConvergenceError` (or warn when
``strict=False``) -- never silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ConvergenceError", "FitResult", "LossTerm", "fit_logistic"]


_H_DROP = 1e-12


class ConvergenceError(RuntimeError):
    """A fit did not reach its gradient-norm tolerance within ``max_iter`` Newton steps."""


@dataclass(frozen=True)
class LossTerm:
    """One cross-entropy term ``c * H(p, sigma(f / T))`` for every setting of the batch.

    ``weight`` (K,) is ``c``, ``target`` (K, M) is ``p`` in [0, 1], ``temperature`` (K,) is ``T > 0``.
    """

    weight: torch.Tensor
    target: torch.Tensor
    temperature: torch.Tensor


@dataclass(frozen=True)
class FitResult:
    """Fitted ``w`` (K, d) and ``b`` (K,), Newton steps taken, final ``||grad|| / M``."""

    w: torch.Tensor
    b: torch.Tensor
    n_iter: torch.Tensor
    grad_norm: torch.Tensor
    converged: torch.Tensor


def _check_terms(terms: list[LossTerm], k: int, m: int) -> None:
    if not terms:
        raise ValueError("terms must contain at least one LossTerm")
    for i, t in enumerate(terms):
        if t.weight.shape != (k,) or t.temperature.shape != (k,):
            raise ValueError(f"term {i}: weight and temperature must have shape ({k},)")
        if t.target.shape != (k, m):
            raise ValueError(
                f"term {i}: target must have shape ({k}, {m}), got {tuple(t.target.shape)}"
            )
        if bool((t.weight < 0).any()):
            raise ValueError(f"term {i}: weights must be >= 0")
        if not bool((t.temperature > 0).all()):
            raise ValueError(f"term {i}: temperatures must be > 0")
        if bool((t.target < 0).any()) or bool((t.target > 1).any()):
            raise ValueError(f"term {i}: targets must lie in [0, 1]")


def _objective(
    f: torch.Tensor, w: torch.Tensor, terms: list[LossTerm], lam: torch.Tensor
) -> torch.Tensor:
    total = 0.5 * lam * (w * w).sum(-1)
    for t in terms:
        h = f / t.temperature[:, None]
        total = total + t.weight * (F.softplus(h) - t.target * h).sum(-1)
    return total


def _derivatives(f: torch.Tensor, terms: list[LossTerm]) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivatives of the summed terms with respect to each logit ``f_mu``."""
    g = torch.zeros_like(f)
    h = torch.zeros_like(f)
    for t in terms:
        temp = t.temperature[:, None]
        s = torch.sigmoid(f / temp)
        g = g + t.weight[:, None] * (s - t.target) / temp
        h = h + t.weight[:, None] * s * (1.0 - s) / temp**2
    return g, h


def _newton_primal(
    u: torch.Tensor, h: torch.Tensor, lam: torch.Tensor, gw: torch.Tensor, gb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    k, d = gw.shape
    u1 = torch.cat([u, torch.ones(u.shape[0], 1, dtype=u.dtype)], dim=1)
    hess = torch.empty(k, d + 1, d + 1, dtype=u.dtype)
    u1f = u1.float()
    for i in range(k):
        # Samples whose curvature is negligible against the largest one (confidently fitted
        # points in separable problems) are left out of the Hessian: the direction barely
        # changes and the line search on the exact objective keeps the step safe.
        keep = h[i] > _H_DROP * h[i].max()
        if int(keep.sum()) < 0.9 * len(keep):
            uk, hk = u1f[keep], h[i, keep]
        else:
            uk, hk = u1f, h[i]
        # float32 products (relative error ~1e-7, far below lam / ||H|| in our settings) halve
        # the cost; the gradient and objective stay float64, so the fixed point is unchanged.
        hess[i] = ((uk.T * hk.float()) @ uk).double()
    idx = torch.arange(d)
    hess[:, idx, idx] += lam[:, None]
    # A whisper of curvature on the bias keeps the system definite when every h_mu underflows.
    hess[:, d, d] += 1e-12 * u.shape[0]
    rhs = torch.cat([gw, gb[:, None]], dim=1)[..., None]
    chol, info = torch.linalg.cholesky_ex(hess)
    if bool((info != 0).any()):
        step = torch.linalg.lstsq(hess, rhs).solution[..., 0]
    else:
        step = torch.cholesky_solve(rhs, chol)[..., 0]
    return step[:, :d], step[:, d]


def _newton_dual(
    u: torch.Tensor,
    gram: torch.Tensor,
    h: torch.Tensor,
    lam: torch.Tensor,
    gw: torch.Tensor,
    gb: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the bordered Newton system with ``A = U^T H U + lam I`` inverted by Woodbury."""
    k, m = h.shape
    s = h.clamp_min(0.0).sqrt()
    c = lam[:, None, None] * torch.eye(m, dtype=u.dtype) + s[:, :, None] * gram * s[:, None, :]
    chol = torch.linalg.cholesky(c)
    cvec = h @ u  # (K, d) = U^T h

    def a_inv(r: torch.Tensor) -> torch.Tensor:  # r (K, d)
        t = s * (r @ u.T)  # S U r
        t = torch.cholesky_solve(t[..., None], chol)[..., 0]
        return (r - (s * t) @ u) / lam[:, None]

    a_gw = a_inv(gw)
    a_c = a_inv(cvec)
    # e - c^T A^{-1} c equals lam * (S 1)^T C^{-1} (S 1): no cancellation.
    schur = lam * (s * torch.cholesky_solve(s[..., None], chol)[..., 0]).sum(-1)
    schur = schur.clamp_min(1e-300)
    step_b = (gb - (cvec * a_gw).sum(-1)) / schur
    step_w = a_gw - step_b[:, None] * a_c
    return step_w, step_b


def fit_logistic(
    u: torch.Tensor,
    terms: list[LossTerm],
    lam: torch.Tensor,
    *,
    tol: float = 1e-9,
    max_iter: int = 200,
    strict: bool = True,
    w0: torch.Tensor | None = None,
    b0: torch.Tensor | None = None,
) -> FitResult:
    """Minimise ``F_k`` (module docstring) for every setting ``k`` by damped Newton steps.

    ``u`` is (M, d), ``lam`` (K,) the L2 strengths (> 0). Stops each setting when
    ``||grad F_k||_2 / M <= tol``; raises :class:`ConvergenceError` if any setting has not
    converged after ``max_iter`` steps (a warning instead with ``strict=False``).
    """
    if u.ndim != 2:
        raise ValueError(f"u must be a (M, d) matrix, got shape {tuple(u.shape)}")
    u = u.to(torch.float64)
    m, d = u.shape
    lam = torch.as_tensor(lam, dtype=torch.float64).reshape(-1)
    k = lam.shape[0]
    if not bool((lam > 0).all()):
        raise ValueError("lam must be > 0 for every setting (the bias is left unpenalised)")
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"need tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
    terms = [
        LossTerm(
            t.weight.to(torch.float64), t.target.to(torch.float64), t.temperature.to(torch.float64)
        )
        for t in terms
    ]
    _check_terms(terms, k, m)

    w = torch.zeros(k, d, dtype=torch.float64) if w0 is None else w0.clone().to(torch.float64)
    b = torch.zeros(k, dtype=torch.float64) if b0 is None else b0.clone().to(torch.float64)
    gram = u @ u.T if m < d else None
    n_iter = torch.zeros(k, dtype=torch.long)
    active = torch.ones(k, dtype=torch.bool)
    gnorm = torch.full((k,), float("inf"), dtype=torch.float64)

    for _ in range(max_iter + 1):
        f = w @ u.T + b[:, None]
        g_f, h_f = _derivatives(f, terms)
        gw = g_f @ u + lam[:, None] * w
        gb = g_f.sum(-1)
        gnorm = torch.sqrt((gw * gw).sum(-1) + gb * gb) / m
        active = gnorm > tol
        if not bool(active.any()) or int(n_iter.max()) >= max_iter:
            break
        ia = active.nonzero()[:, 0]
        sub = [LossTerm(t.weight[ia], t.target[ia], t.temperature[ia]) for t in terms]
        if gram is None:
            dw, db = _newton_primal(u, h_f[ia], lam[ia], gw[ia], gb[ia])
        else:
            dw, db = _newton_dual(u, gram, h_f[ia], lam[ia], gw[ia], gb[ia])
        dw, db = -dw, -db
        slope = (gw[ia] * dw).sum(-1) + gb[ia] * db  # < 0 for a descent direction
        f0 = _objective(f[ia], w[ia], sub, lam[ia])
        df = dw @ u.T + db[:, None]
        step = torch.ones(len(ia), dtype=torch.float64)
        done = torch.zeros(len(ia), dtype=torch.bool)
        for _ls in range(60):
            f_new = _objective(f[ia] + step[:, None] * df, w[ia] + step[:, None] * dw, sub, lam[ia])
            ok = f_new <= f0 + 1e-4 * step * slope + 1e-13 * f0.abs()
            done |= ok
            if bool(done.all()):
                break
            step = torch.where(done, step, 0.5 * step)
        w[ia] += step[:, None] * dw
        b[ia] += step * db
        n_iter[ia] += 1

    converged = gnorm <= tol
    if not bool(converged.all()):
        bad = (~converged).nonzero()[:, 0].tolist()
        msg = (
            f"fit_logistic: {len(bad)} of {k} settings missed ||grad||/M <= {tol:g} after "
            f"{max_iter} Newton steps (settings {bad[:10]}, grad norms "
            f"{[f'{x:.2e}' for x in gnorm[~converged][:10].tolist()]})"
        )
        if strict:
            raise ConvergenceError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return FitResult(w, b, n_iter, gnorm, converged)
