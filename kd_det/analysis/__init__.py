"""Analysis diagnostics: what a distilled student learned from its teacher (seeds 000, 003)."""

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
