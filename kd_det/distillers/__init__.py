"""Distiller wrappers: mmengine ``BaseModel`` s that contain the student."""

from kd_det.distillers.single_teacher import SingleTeacherDistiller
from kd_det.distillers.term import DistillTerm

__all__ = ["DistillTerm", "SingleTeacherDistiller"]
