"""The validation metric of the auto-encoder stage: reconstruction error of the teacher's
features.

:class:`~kd_det.inherit_explore.TeacherAutoEncoder` in ``mode='predict'`` returns, per image,
its mean absolute and mean squared reconstruction error on every (auto-encoder, teacher layer);
:class:`ReconstructionMetric` averages them over the images, then over the layers::

    val_evaluator = dict(type='kd_det.ReconstructionMetric')
    # -> {'recon/l1': ..., 'recon/l2': ...}  (+ 'recon/<name>/l1', ... with several auto-encoders)

``recon/l1`` is what the stage minimises with ``loss='l1'``: ``mean |x̂ − x|`` over the elements
of a layer, averaged over the layers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import Registry

__all__ = ["METRICS", "ReconstructionMetric"]

# kd_det's child of mmengine's metric registry (scope ``kd_det``); reused if another kd_det
# module created it first (a root registry takes one child per scope).
METRICS = MMENGINE_METRICS.children.get("kd_det") or Registry(
    "metric", parent=MMENGINE_METRICS, scope="kd_det"
)


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """Mean L1 and L2 reconstruction errors of a ``TeacherAutoEncoder``'s predictions.

    Each prediction is ``dict(l1={'<ae>/<layer>': e, ...}, l2={...})`` for one image, ``e`` the
    image's mean error on that layer. The results are ``l1`` and ``l2`` (averaged over images,
    then over layers) and, when there are several auto-encoders, ``<ae>/l1`` and ``<ae>/l2``.

    Args:
        collect_device: where results are gathered across processes (``'cpu'``).
        prefix: key prefix, ``'recon'`` by default.
    """

    default_prefix = "recon"

    def __init__(self, collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if not isinstance(sample, dict) or "l1" not in sample or "l2" not in sample:
                raise ValueError(
                    "ReconstructionMetric evaluates kd_det.TeacherAutoEncoder, whose predictions "
                    f"are dicts with 'l1' and 'l2' errors; got {type(sample).__name__}"
                )
            self.results.append({k: dict(sample[k]) for k in ("l1", "l2")})

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for kind in ("l1", "l2"):
            per_layer: dict[str, list[float]] = defaultdict(list)
            for result in results:
                for label, value in result[kind].items():
                    per_layer[label].append(float(value))
            means = {label: sum(v) / len(v) for label, v in per_layer.items()}
            if not means:
                continue
            metrics[kind] = sum(means.values()) / len(means)
            by_ae: dict[str, list[float]] = defaultdict(list)
            for label, value in means.items():
                by_ae[label.split("/", 1)[0]].append(value)
            if len(by_ae) > 1:
                for name, values in by_ae.items():
                    metrics[f"{name}/{kind}"] = sum(values) / len(values)
        return metrics
