"""Data sets rendered from scikit-learn's real handwritten digits (nothing is downloaded); the
public names are those of :mod:`kd_det.datasets.digits`."""

from __future__ import annotations

from . import digits
from .digits import *  # noqa: F403

__all__ = list(digits.__all__)
