"""Analysis diagnostics: what a distilled student learned from its teacher.

Linear CKA ("Similarity of Neural Network Representations Revisited", arXiv:1905.00414), the
angles between teacher layers seen from the student ("Revisiting Intermediate-Layer Matching in
Knowledge Distillation: Layer-Selection Strategy Doesn't Matter (Much)", arXiv:2502.04499), and
the what-gets-distilled protocol ("What Knowledge Gets Distilled in Knowledge Distillation?",
arXiv:2205.16004) in :mod:`kd_det.analysis.what_distilled` — imported on first use of
``kd_det.analysis.what_distilled``, ``analyse``, ``AnalysisOptions``, ``ModelSpec`` or
``write_report``, as it loads mmdet, mmpretrain and captum.
"""

from kd_det.analysis.cka import cka_matrix, feature_map_cka, flatten_representation, linear_cka
from kd_det.analysis.layer_angles import (
    acute_fraction,
    align_feature_maps,
    feature_map_angle_matrix,
    layer_angle_matrix,
    lstsq_projection,
    position_cosines,
)
from kd_det.analysis.layer_selection import (
    LayerAngles,
    layer_angles_per_student_layer,
    record_layers,
    trained_adapters,
)

_WHAT_DISTILLED = ("AnalysisOptions", "ModelSpec", "analyse", "write_report")


def __getattr__(name: str):
    if name == "what_distilled" or name in _WHAT_DISTILLED:
        import importlib

        module = importlib.import_module("kd_det.analysis.what_distilled")
        return module if name == "what_distilled" else getattr(module, name)
    raise AttributeError(f"module 'kd_det.analysis' has no attribute {name!r}")


__all__ = [
    "AnalysisOptions",
    "LayerAngles",
    "ModelSpec",
    "acute_fraction",
    "align_feature_maps",
    "analyse",
    "cka_matrix",
    "feature_map_angle_matrix",
    "feature_map_cka",
    "flatten_representation",
    "layer_angle_matrix",
    "layer_angles_per_student_layer",
    "linear_cka",
    "lstsq_projection",
    "position_cosines",
    "record_layers",
    "trained_adapters",
    "write_report",
]
