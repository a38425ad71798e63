"""Analysis diagnostics: what a distilled student learned from its teacher.

Linear CKA ("Similarity of Neural Network Representations Revisited", arXiv:1905.00414) and the
angles between teacher layers seen from the student ("Revisiting Intermediate-Layer Matching in
Knowledge Distillation: Layer-Selection Strategy Doesn't Matter (Much)", arXiv:2502.04499).
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

__all__ = [
    "acute_fraction",
    "align_feature_maps",
    "cka_matrix",
    "feature_map_angle_matrix",
    "feature_map_cka",
    "flatten_representation",
    "layer_angle_matrix",
    "linear_cka",
    "lstsq_projection",
    "position_cosines",
]
