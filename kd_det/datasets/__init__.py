"""Data sets rendered from scikit-learn's real handwritten digits (nothing is downloaded)."""

from __future__ import annotations

from .digits import (
    CLASSIFICATION_METAINFO,
    DETECTION_METAINFO,
    DIFFICULTIES,
    DIGIT_CLASSES,
    ClassificationSpec,
    DetectionSample,
    DetectionSpec,
    detection_stats,
    digit_pools,
    load_glyphs,
    make_classification_set,
    make_detection_set,
    render_classification_sample,
    render_detection_sample,
    render_glyph,
)

__all__ = [
    "CLASSIFICATION_METAINFO",
    "DETECTION_METAINFO",
    "DIFFICULTIES",
    "DIGIT_CLASSES",
    "ClassificationSpec",
    "DetectionSample",
    "DetectionSpec",
    "detection_stats",
    "digit_pools",
    "load_glyphs",
    "make_classification_set",
    "make_detection_set",
    "render_classification_sample",
    "render_detection_sample",
    "render_glyph",
]
