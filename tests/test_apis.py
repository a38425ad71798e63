"""kd_det.apis: the model builder and the metrics reader, on a toy config and a fake work dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from kd_det.apis import build_model_from_cfg, read_metrics, read_scalars

TOY_MODULE = """
from torch import nn
from kd_det.registry import MODELS


@MODELS.register_module(force=True)
class ApisToyNet(nn.Module):
    def __init__(self, width=4, depth=1):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
"""


@pytest.fixture
def restore_default_scope():
    """Leave mmengine's default scope as it was: the builder sets it, as the Runner does."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def toy_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose model lives in a module only ``custom_imports`` brings in."""
    module = tmp_path / "apis_toy_module.py"
    module.write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "toy.py"
    path.write_text(
        "custom_imports = dict(imports=['apis_toy_module'], allow_failed_imports=False)\n"
        "default_scope = 'mmengine'\n"
        "model = dict(type='kd_det.ApisToyNet', width=3, depth=2)\n"
    )
    return path


def test_builds_through_custom_imports_and_sets_the_scope(
    toy_config: Path, restore_default_scope: None
) -> None:
    model = build_model_from_cfg(toy_config)
    assert type(model).__name__ == "ApisToyNet"
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(3, 3), (3, 3)]
    assert DefaultScope.get_current_instance().scope_name == "mmengine"
    # a path given as str, and cfg_options merged like --cfg-options
    model = build_model_from_cfg(str(toy_config), cfg_options={"model.width": 5})
    assert isinstance(model.layers[0], nn.Linear) and model.layers[0].in_features == 5


def test_a_config_object_is_not_modified(toy_config: Path, restore_default_scope: None) -> None:
    cfg = Config.fromfile(str(toy_config))
    model = build_model_from_cfg(cfg, cfg_options={"model.depth": 3})
    assert len(model.layers) == 3
    assert cfg.model.depth == 2 and cfg.model.type == "kd_det.ApisToyNet"


def test_a_config_without_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no_model.py"
    path.write_text("default_scope = 'mmengine'\n")
    with pytest.raises(ValueError, match="has no 'model'"):
        build_model_from_cfg(path)


def _write_run(work_dir: Path, timestamp: str, records: list[dict]) -> None:
    vis = work_dir / timestamp / "vis_data"
    vis.mkdir(parents=True)
    (vis / "scalars.json").write_text("".join(json.dumps(r) + "\n" for r in records))


def _train(it: int) -> dict:
    return {"lr": 1e-3, "loss": 1.5, "epoch": 1, "iter": it, "data_time": 0.1, "step": it}


def test_read_metrics_takes_the_last_validation_of_the_newest_run(tmp_path: Path) -> None:
    work = tmp_path / "work"
    # the first run validated at epoch 1 and was interrupted; the resumed run validated at 2
    _write_run(work, "20250101_120000", [_train(1), {"coco/bbox_mAP": 0.1, "step": 1}])
    _write_run(
        work,
        "20250101_130000",
        [
            _train(2),
            {"coco/bbox_mAP": 0.25, "coco/bbox_mAP_50": 0.5, "coco/bbox_mAP_copypaste": "0.25 0.5",
             "data_time": 0.02, "time": 0.3, "step": 2},
            _train(3),
        ],
    )  # fmt: skip
    assert read_metrics(work) == {"coco/bbox_mAP": 0.25, "coco/bbox_mAP_50": 0.5}
    assert [r["step"] for r in read_scalars(work)] == [1, 1, 2, 2, 3]


def test_read_metrics_without_a_validation_or_a_metric(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", "20250101_120000", [_train(1), _train(2)])
    assert read_metrics(tmp_path / "a") == {}
    # mmdet's CocoMetric logs no mAP when the model detected nothing: only the loop's keys
    _write_run(tmp_path / "b", "20250101_120000", [{"accuracy/top1": 40.0, "step": 1}])
    _write_run(tmp_path / "b", "20250102_120000", [{"data_time": 0.1, "time": 0.2, "step": 2}])
    assert read_metrics(tmp_path / "b") == {}
    with pytest.raises(FileNotFoundError, match="no \\*/vis_data/scalars.json"):
        read_metrics(tmp_path / "missing")


def test_read_metrics_of_an_evaluation_only_run(tmp_path: Path) -> None:
    # tools/test.py writes <timestamp>/<timestamp>.json and no scalars.json
    run = tmp_path / "20250101_120000"
    run.mkdir()
    (run / "20250101_120000.json").write_text(
        json.dumps({"coco/bbox_mAP": 0.3, "coco/bbox_mAP_copypaste": "0.3", "time": 0.2}) + "\n"
    )
    (run / "other.json").write_text(json.dumps({"coco/bbox_mAP": 0.9}) + "\n")
    assert read_metrics(tmp_path) == {"coco/bbox_mAP": 0.3}
