"""Detection and classification sets built from scikit-learn's real handwritten digits.

Nothing can be downloaded, so every experiment trains on data rendered from the 1,797 real
8×8 digits that ship with scikit-learn (``sklearn.datasets.load_digits``):

* a COCO-format **detection** set: several digits per canvas at varied scale, position and
  contrast, partially overlapping, over a cluttered background with digit-like distractors
  (stroke fragments, arcs, blobs) that are *not* annotated;
* an mmpretrain-format **classification** set: one digit per small image, on the same kind of
  background.

The 1,797 digits are split once, stratified by class, into disjoint *train* and *val* pools
(:func:`digit_pools`); train images only use train digits and val images only val digits, in
both sets. Output is deterministic: every image is drawn from its own random stream seeded by
``(seed, set, split, index)``, so the same seed gives byte-identical json and PNG files.

Box convention: a digit's ink is its upsampled glyph after a contrast ramp (see
:func:`render_glyph`); every pixel with non-zero alpha is ink and the COCO box
``[x, y, w, h]`` is the smallest pixel rectangle holding all of it (pixel columns ``x`` to
``x + w - 1``), so the ink touches all four edges of the box and nothing of the digit is drawn
outside it.

Modules: :mod:`.glyphs` (the source digits and their pools), :mod:`.spec` (what is drawn),
:mod:`.draw` (drawing primitives), :mod:`.render` (whole samples), :mod:`.writers` (the files
on disk) and :mod:`.stats` (summary numbers of a written set).
"""

from __future__ import annotations

from .draw import MIN_ALPHA, RAMP_HIGH, RAMP_LOW, render_glyph
from .glyphs import (
    CLASSIFICATION_METAINFO,
    DETECTION_METAINFO,
    DIGIT_CLASSES,
    digit_pools,
    load_glyphs,
)
from .render import DetectionSample, render_classification_sample, render_detection_sample
from .spec import DIFFICULTIES, ClassificationSpec, DetectionSpec
from .stats import detection_stats
from .writers import make_classification_set, make_detection_set

__all__ = [
    "CLASSIFICATION_METAINFO",
    "DETECTION_METAINFO",
    "DIFFICULTIES",
    "DIGIT_CLASSES",
    "MIN_ALPHA",
    "RAMP_HIGH",
    "RAMP_LOW",
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
