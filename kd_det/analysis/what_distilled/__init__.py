"""What did the student learn from its teacher? The evaluation protocol of "What Knowledge Gets
Distilled in Knowledge Distillation?" (Ojha et al., NeurIPS 2023, arXiv:2205.16004) for
mmpretrain classifiers and mmdet detectors.

A teacher ``T``, distilled students ``S_d`` and an independent student ``S_i`` (same
architecture, trained without the teacher) are compared on the same images:

* localization (:mod:`.cam`): Grad-CAM of the ground-truth class per image (per ground-truth box
  for detectors); % of units where ``cos(CAM_T, CAM_Sd) > cos(CAM_T, CAM_Si)``;
* adversarial transfer (:mod:`.adversarial`): iterative FGSM on the teacher (and on an unrelated
  control model); how often the attacked images also fool each student;
* invariance (:mod:`.invariance`): % of predictions unchanged under colour jitter;
* agreement with the teacher on clean images (:mod:`.agreement`) and linear CKA between
  corresponding layers (:mod:`kd_det.analysis.cka`).

:func:`analyse` runs it, :func:`write_report` writes JSON, Markdown and PNG figures;
``tools/analysis/what_distilled.py`` is the command line.
"""

from kd_det.analysis.what_distilled.adversarial import (
    AttackSpec,
    classifier_attack_loss,
    detector_attack_loss,
    fooled,
    ifgsm,
    transfer_rates,
)
from kd_det.analysis.what_distilled.agreement import (
    Detections,
    box_predictions,
    classifier_logits,
    detect,
    greedy_matches,
)
from kd_det.analysis.what_distilled.cam import (
    box_targets,
    cam_cosine,
    check_box_cam_support,
    classifier_cams,
    detector_box_cams,
    localization_score,
)
from kd_det.analysis.what_distilled.data import build_dataset, check_ground_truth, choose_indices
from kd_det.analysis.what_distilled.invariance import (
    JitterParams,
    JitterSpec,
    color_jitter,
    sample_jitter,
)
from kd_det.analysis.what_distilled.models import (
    LoadedModel,
    ModelSpec,
    check_comparable,
    load_model,
    load_weights,
)
from kd_det.analysis.what_distilled.pipeline import (
    PAPER,
    PROPERTIES,
    AnalysisOptions,
    AnalysisResult,
    analyse,
    default_cka_layers,
    load_models,
)
from kd_det.analysis.what_distilled.report import (
    PAPER_VALUES,
    markdown_report,
    paper_key,
    write_report,
)

__all__ = [
    "PAPER",
    "PAPER_VALUES",
    "PROPERTIES",
    "AnalysisOptions",
    "AnalysisResult",
    "AttackSpec",
    "Detections",
    "JitterParams",
    "JitterSpec",
    "LoadedModel",
    "ModelSpec",
    "analyse",
    "box_predictions",
    "box_targets",
    "build_dataset",
    "cam_cosine",
    "check_box_cam_support",
    "check_comparable",
    "check_ground_truth",
    "choose_indices",
    "classifier_attack_loss",
    "classifier_cams",
    "classifier_logits",
    "color_jitter",
    "default_cka_layers",
    "detect",
    "detector_attack_loss",
    "detector_box_cams",
    "fooled",
    "greedy_matches",
    "ifgsm",
    "load_model",
    "load_models",
    "load_weights",
    "localization_score",
    "markdown_report",
    "paper_key",
    "sample_jitter",
    "transfer_rates",
    "write_report",
]
