"""kd_det: knowledge distillation for the OpenMMLab stack.

``custom_imports=dict(imports=['kd_det'])`` registers kd_det's distillers, losses, connectors,
mappers and hooks under the scope ``kd_det`` and applies the fixes of :mod:`kd_det.compat`.
"""

import kd_det.inherit_explore  # noqa: F401  (IE-KD: registers its stage model, connector, loss, metric)
from kd_det import compat  # noqa: F401  (registers the checkpoint loader on import)
from kd_det.registry import HOOKS, MAPPERS, MODELS

__version__ = "0.1.0"
__all__ = ["HOOKS", "MAPPERS", "MODELS", "__version__"]
