"""A solvable shallow-network model of knowledge distillation, after
"Solvable Model for Inheriting the Regularization through Knowledge Distillation"
(Saglietti & Zdeborová, MSML 2022, arXiv:2012.00194); docs/theory.md has the results.

Binary Gaussian mixture data (:mod:`.data`), a dense L2 logistic teacher and a sparse student
distilled from it (:mod:`.models`, fitted by the batched Newton solver in :mod:`.solver`), the
closed-form test error from the overlaps ``(m, q, b)`` (:mod:`.errors`), the sweeps behind the
three claims (:mod:`.sweeps`) and the replica-symmetric prediction for the teacher
(:mod:`.replica`). ``tools/theory/run_claims.py`` runs the sweeps and draws the figures.
"""

from kd_det.theory.data import MixtureModel, MixtureSample, fresh_samples, sample_mixture
from kd_det.theory.errors import empirical_error, gaussian_tail, generalization_error, overlaps
from kd_det.theory.models import (
    LinearClassifier,
    bayes_optimal,
    fit_ridge,
    fit_student,
    fit_teacher,
    smooth_labels,
    student_support,
)
from kd_det.theory.replica import (
    TeacherOverlaps,
    compare_teacher_with_simulation,
    solve_teacher_replica,
)
from kd_det.theory.solver import ConvergenceError, FitResult, LossTerm, fit_logistic
from kd_det.theory.sweeps import (
    TeacherSpec,
    aggregate,
    best_over_lam,
    sweep_alpha,
    sweep_bayes_teacher,
    sweep_teacher_regularisation,
)

__all__ = [
    "ConvergenceError",
    "FitResult",
    "LinearClassifier",
    "LossTerm",
    "MixtureModel",
    "MixtureSample",
    "TeacherOverlaps",
    "TeacherSpec",
    "aggregate",
    "bayes_optimal",
    "best_over_lam",
    "compare_teacher_with_simulation",
    "empirical_error",
    "fit_logistic",
    "fit_ridge",
    "fit_student",
    "fit_teacher",
    "fresh_samples",
    "gaussian_tail",
    "generalization_error",
    "overlaps",
    "sample_mixture",
    "smooth_labels",
    "solve_teacher_replica",
    "student_support",
    "sweep_alpha",
    "sweep_bayes_teacher",
    "sweep_teacher_regularisation",
]
