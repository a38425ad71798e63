"""Evaluate both networks of a :class:`~kd_det.distillers.MutualDistiller` in one val loop.

A mutual distiller's ``mode='predict'`` returns, per image, one element holding each network's
own prediction (``sample.net1``, ``sample.net2``: a ``DetDataSample`` or mmpretrain
``DataSample`` each). :class:`MutualMetric` wraps the task's usual metric(s) -- mmdet's
``CocoMetric``, mmpretrain's ``Accuracy``, anything registered -- builds one copy per network,
feeds each copy its network's predictions and prefixes the results with the network's name::

    val_evaluator = dict(type='kd_det.MutualMetric', metric=dict(type='Accuracy', topk=(1, )))
    # -> {'net1/accuracy/top1': ..., 'net2/accuracy/top1': ...}

so the normal Runner val/test loops, ``tools/test.py``, checkpoint selection by
``save_best='net1/coco/bbox_mAP'`` and the logs work unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import Registry

from kd_det.distillers.optim import NETWORKS

__all__ = ["METRICS", "MutualMetric"]

# kd_det's child of mmengine's metric registry (scope ``kd_det``); reused if another kd_det
# module created it first (a root registry takes one child per scope).
METRICS = MMENGINE_METRICS.children.get("kd_det") or Registry(
    "metric", parent=MMENGINE_METRICS, scope="kd_det"
)


@METRICS.register_module()
class MutualMetric:
    """One copy of ``metric`` per network, fed that network's predictions, keys prefixed.

    ``evaluate`` returns ``{'<network>/<key>': value}`` for every key every copy returns, e.g.
    ``net1/coco/bbox_mAP`` and ``net2/coco/bbox_mAP``. Each copy collects its own results
    across processes as it would alone.

    Args:
        metric: a metric config (``dict(type='CocoMetric', ...)``) or a list of them, built in
            the current default scope (mmdet's or mmpretrain's).
        networks: the networks to evaluate (default both).
    """

    def __init__(
        self,
        metric: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        networks: Sequence[str] = NETWORKS,
    ) -> None:
        cfgs = [metric] if isinstance(metric, Mapping) else list(metric)
        if not cfgs or not all(isinstance(c, Mapping) and "type" in c for c in cfgs):
            raise ValueError(
                "MutualMetric: metric must be a metric config dict with a 'type' (e.g. "
                f"dict(type='CocoMetric', ...)) or a non-empty list of them, got {metric!r}"
            )
        networks = list(networks)
        unknown = [n for n in networks if n not in NETWORKS]
        if not networks or unknown or len(set(networks)) != len(networks):
            raise ValueError(
                f"MutualMetric: networks must be distinct names from {list(NETWORKS)}, "
                f"got {networks!r}"
            )
        self.metrics = {
            name: [MMENGINE_METRICS.build(copy.deepcopy(dict(c))) for c in cfgs]
            for name in networks
        }
        self._dataset_meta: dict | None = None

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's meta information, handed on to every wrapped metric."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        self._dataset_meta = copy.deepcopy(meta)
        for metrics in self.metrics.values():
            for metric in metrics:
                metric.dataset_meta = copy.deepcopy(meta)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Hand each wrapped metric its network's share of ``data_samples``."""
        for name, metrics in self.metrics.items():
            own = [self._own(sample, name) for sample in data_samples]
            for metric in metrics:
                metric.process(data_batch, own)

    @staticmethod
    def _own(sample: Any, name: str) -> Any:
        if isinstance(sample, Mapping) and name in sample:
            return sample[name]
        got = sorted(sample) if isinstance(sample, Mapping) else type(sample).__name__
        raise ValueError(
            f"MutualMetric: a prediction holds no {name!r} entry (got {got}); it evaluates a "
            "kd_det.MutualDistiller with predict_with='both' (the default). For one network "
            "alone (predict_with='net1'), use the plain metric instead"
        )

    def evaluate(self, size: int) -> dict[str, Any]:
        """Every wrapped metric's results, keys prefixed with ``<network>/``."""
        results: dict[str, Any] = {}
        for name, metrics in self.metrics.items():
            for metric in metrics:
                for key, value in metric.evaluate(size).items():
                    results[f"{name}/{key}"] = value
        return results
