"""kd_det's registries: children of mmengine's roots under the scope ``kd_det``.

Cross-scope look-ups (``type='kd_det.SingleTeacherDistiller'`` in an mmdet config) import
``kd_det.registry``; the ``locations`` make the registries import their modules lazily.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope="kd_det",
    locations=["kd_det.distillers", "kd_det.losses", "kd_det.connectors"],
)
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="kd_det", locations=["kd_det.hooks"])
# Layer mappers (kd_det.mappers). Not an mmengine root kind, so a plain registry.
MAPPERS = Registry("layer mapper", scope="kd_det", locations=["kd_det.mappers"])


def build_kd_module(cfg: dict[str, Any], registry: Registry = MODELS, **default_args: Any) -> Any:
    """Build a kd_det component whatever the caller's default scope is.

    Inside an mmdet run the default scope is ``mmdet``, and mmengine would look a bare
    ``type='LogSumLoss'`` up in mmdet's registry. kd_det's own parts are looked up in kd_det's
    registry first; ``type='mmdet.X'`` still reaches other scopes.
    """
    cfg = dict(cfg)
    cfg.setdefault("_scope_", "kd_det")
    return registry.build(cfg, default_args=default_args or None)
