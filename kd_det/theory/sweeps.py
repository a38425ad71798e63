"""Simulation sweeps for the three claims of the solvable KD model (arXiv:2012.00194).

Each sweep returns a list of flat ``dict`` rows (one per seed and setting) with the overlaps
``(m, q, b)`` and the closed-form test error ``err`` of every fitted classifier; :func:`aggregate`
averages them over seeds. Fits sharing one training set are batched into one Newton solve.

Students are trained on the teacher's own training set (the same ``M = alpha N`` samples), so an
overconfident teacher hands its training-set overfitting on to the student.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from kd_det.theory.data import MixtureModel, sample_mixture
from kd_det.theory.models import (
    LinearClassifier,
    bayes_optimal,
    fit_ridge,
    fit_student,
    fit_teacher,
)

__all__ = [
    "TeacherSpec",
    "Progress",
    "sweep_teacher_regularisation",
    "sweep_bayes_teacher",
    "sweep_alpha",
    "aggregate",
    "best_over_lam",
]

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    return None


@dataclass(frozen=True)
class TeacherSpec:
    """A named teacher: L2 strength ``lam`` and label smoothing ``label_smoothing``."""

    name: str
    lam: float
    label_smoothing: float = 0.0


def _rows(
    clf: LinearClassifier, model: MixtureModel, v: torch.Tensor, prefix: str = ""
) -> list[dict[str, float]]:
    m, q, b = clf.overlaps(v)
    err = clf.error(model, v)
    return [
        {
            f"{prefix}m": float(m[i]),
            f"{prefix}q": float(q[i]),
            f"{prefix}b": float(b[i]),
            f"{prefix}err": float(err[i]),
        }
        for i in range(len(err))
    ]


class _Timer:
    def __init__(self, total: int, progress: Progress, label: str) -> None:
        self.total, self.progress, self.label = total, progress, label
        self.done, self.t0 = 0, time.perf_counter()

    def step(self, what: str) -> None:
        self.done += 1
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done)
        self.progress(
            f"[{self.label}] {self.done}/{self.total} {what}  ({el:.0f}s elapsed, ~{eta:.0f}s left)"
        )


def sweep_teacher_regularisation(
    model: MixtureModel,
    alpha: float,
    teacher_lams: Sequence[float],
    seeds: Iterable[int],
    *,
    eta: float = 0.5,
    student_lam: float = 1e-5,
    chi: float = 1.0,
    temperature: float = 1.0,
    progress: Progress = _silent,
) -> list[dict[str, float]]:
    """Claim 1: teacher and pure-KD student errors against the teacher's L2 strength."""
    seeds = list(seeds)
    timer = _Timer(len(seeds), progress, "claim1 lam_teacher")
    out: list[dict[str, float]] = []
    for seed in seeds:
        sample = sample_mixture(model, alpha, seed)
        teacher = fit_teacher(sample, list(teacher_lams))
        student = fit_student(
            sample,
            teacher.logits(sample.u),
            eta,
            chi=chi,
            lam=student_lam,
            temperature=temperature,
        )
        for i, (rt, rs) in enumerate(
            zip(
                _rows(teacher, model, sample.v, "teacher_"),
                _rows(student, model, sample.v, "student_"),
            )
        ):
            out.append(
                {"seed": seed, "alpha": alpha, "lam_teacher": float(teacher_lams[i]), **rt, **rs}
            )
        timer.step(f"seed {seed}")
    return out


def sweep_bayes_teacher(
    model: MixtureModel,
    alphas: Sequence[float],
    seeds: Iterable[int],
    *,
    eta: float = 0.5,
    student_lam: float = 1e-5,
    l2_teacher_lam: float = 0.1,
    tune_lams: Sequence[float] = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0),
    ridge_lams: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
    progress: Progress = _silent,
) -> list[dict[str, float | str]]:
    """Claim 2: KD from the Bayes-optimal teacher against the sparse bound and tuned baselines.

    Methods (column ``method``; ``lam`` is the student's L2 strength where one applies):

    * ``bayes_dense`` -- the Bayes-optimal teacher; ``bayes_sparse`` -- the sparse bound;
    * ``kd_bayes`` -- pure-KD sparse student of the Bayes-optimal teacher, at ``student_lam`` and
      at every ``tune_lams``;
    * ``kd_l2_teacher`` -- pure-KD sparse student (``student_lam``) of the dense L2 logistic
      teacher at ``l2_teacher_lam`` (a good but not optimal teacher);
    * ``logistic_l2`` -- sparse logistic regression on the true labels (``chi = 0``), one row per
      ``tune_lams``; ``ridge`` -- square-loss ridge regression of ``2y - 1``, one row per
      ``ridge_lams``.

    "Optimally tuned" = the ``lam`` with the lowest seed-averaged error at each ``alpha``
    (an oracle choice; see :func:`aggregate`).
    """
    seeds = list(seeds)
    alphas = sorted(alphas)
    timer = _Timer(len(seeds) * len(alphas), progress, "claim2 bayes teacher")
    out: list[dict[str, float | str]] = []
    kd_lams = [student_lam, *tune_lams]
    for seed in seeds:
        full = sample_mixture(model, alphas[-1], seed)
        for alpha in alphas:
            sample = full.head(model.n_samples(alpha))
            bo = bayes_optimal(sample, model)
            l2t = fit_teacher(sample, [l2_teacher_lam])
            groups: list[tuple[str, Sequence[float], LinearClassifier]] = [
                ("bayes_dense", [math.nan], bo),
                ("bayes_sparse", [math.nan], bayes_optimal(sample, model, eta)),
                (
                    "kd_bayes",
                    kd_lams,
                    fit_student(
                        sample, bo.logits(sample.u).expand(len(kd_lams), -1), eta, lam=kd_lams
                    ),
                ),
                (
                    "kd_l2_teacher",
                    [student_lam],
                    fit_student(sample, l2t.logits(sample.u), eta, lam=student_lam),
                ),
                (
                    "logistic_l2",
                    tune_lams,
                    fit_student(
                        sample,
                        torch.zeros(len(tune_lams), sample.m),
                        eta,
                        chi=0.0,
                        lam=list(tune_lams),
                    ),
                ),
                ("ridge", ridge_lams, fit_ridge(sample, eta, list(ridge_lams))),
            ]
            for name, lams, clf in groups:
                out += [
                    {"seed": seed, "alpha": alpha, "method": name, "lam": float(lam), **r}
                    for lam, r in zip(lams, _rows(clf, model, sample.v))
                ]
            timer.step(f"seed {seed} alpha {alpha:g}")
    return out


def best_over_lam(
    summary: Sequence[dict[str, float | str]], method: str, value: str = "err_mean"
) -> dict[float, dict[str, float | str]]:
    """For one ``method`` of an aggregated claim-2 table, the row with the lowest ``value`` per
    ``alpha`` (oracle tuning of ``lam``)."""
    best: dict[float, dict[str, float | str]] = {}
    for r in summary:
        if r["method"] != method:
            continue
        a = float(r["alpha"])
        if a not in best or float(r[value]) < float(best[a][value]):
            best[a] = r
    return dict(sorted(best.items()))


def sweep_alpha(
    model: MixtureModel,
    alphas: Sequence[float],
    seeds: Iterable[int],
    teachers: Sequence[TeacherSpec],
    temperatures: Sequence[float],
    *,
    eta: float = 0.5,
    student_lam: float = 1e-5,
    chi: float = 1.0,
    progress: Progress = _silent,
) -> list[dict[str, float | str]]:
    """Claim 3: teacher and student errors against ``alpha`` (nested training sets per seed).

    For every teacher in ``teachers`` a pure-KD student is fitted at every temperature; the
    rows with ``role == 'teacher'`` carry ``temperature = nan``.
    """
    seeds = list(seeds)
    alphas = sorted(alphas)
    timer = _Timer(len(seeds) * len(alphas), progress, "claim3 alpha")
    out: list[dict[str, float | str]] = []
    lam_t = [t.lam for t in teachers]
    ls_t = [t.label_smoothing for t in teachers]
    temps = list(temperatures)
    for seed in seeds:
        full = sample_mixture(model, alphas[-1], seed)
        teacher = student = None
        for alpha in alphas:
            sample = full.head(model.n_samples(alpha))
            # warm start from the previous (nested) training set: same minimiser, fewer steps
            teacher = fit_teacher(sample, lam_t, ls_t, init=teacher)
            logits = teacher.logits(sample.u)  # (n_teachers, M)
            rep = logits.repeat_interleave(len(temps), dim=0)
            student = fit_student(
                sample,
                rep,
                eta,
                chi=chi,
                lam=student_lam,
                temperature=temps * len(teachers),
                init=student,
            )
            srows = _rows(student, model, sample.v)
            for i, (spec, r) in enumerate(zip(teachers, _rows(teacher, model, sample.v))):
                base = {"seed": seed, "alpha": alpha, "teacher": spec.name}
                out.append({**base, "role": "teacher", "temperature": math.nan, **r})
                for j, temp in enumerate(temps):
                    out.append(
                        {
                            **base,
                            "role": "student",
                            "temperature": temp,
                            **srows[i * len(temps) + j],
                        }
                    )
            timer.step(f"seed {seed} alpha {alpha:g}")
    return out


def aggregate(
    rows: Sequence[dict[str, float | str]], keys: Sequence[str], values: Sequence[str]
) -> list[dict[str, float | str]]:
    """Mean and standard error over seeds of ``values``, grouped by ``keys`` (in first-seen order).

    Output columns: the keys, ``n`` and for each value ``<value>_mean`` and ``<value>_sem``.
    NaN keys (e.g. a teacher row's temperature) group together.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple("nan" if _isnan(r[k]) else r[k] for k in keys)].append(r)
    out: list[dict[str, float | str]] = []
    for gkey, members in groups.items():
        row: dict[str, float | str] = {
            k: (math.nan if g == "nan" else g) for k, g in zip(keys, gkey)
        }
        row["n"] = len(members)
        for v in values:
            xs = torch.tensor([float(r[v]) for r in members], dtype=torch.float64)
            row[f"{v}_mean"] = float(xs.mean())
            row[f"{v}_sem"] = float(xs.std() / math.sqrt(len(xs))) if len(xs) > 1 else math.nan
        out.append(row)
    return out


def _isnan(x: object) -> bool:
    return isinstance(x, float) and math.isnan(x)
