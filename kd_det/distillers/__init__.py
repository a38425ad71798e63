"""Distiller wrappers: mmengine ``BaseModel`` s that contain the student (or two networks that
teach each other), and what the Runner needs to train and evaluate them."""

from kd_det.distillers.metrics import MutualMetric
from kd_det.distillers.mutual import MutualDistiller, MutualTerm
from kd_det.distillers.optim import MutualOptimWrapperConstructor
from kd_det.distillers.single_teacher import SingleTeacherDistiller
from kd_det.distillers.term import DistillTerm

__all__ = [
    "DistillTerm",
    "MutualDistiller",
    "MutualMetric",
    "MutualOptimWrapperConstructor",
    "MutualTerm",
    "SingleTeacherDistiller",
]
