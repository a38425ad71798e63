"""The layer-selection study: its configs, the study driver's plan and report, and the angle
diagnostic with trained adapters (kd_det.analysis.layer_selection)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch import nn

from kd_det.analysis.layer_angles import adapter_targets
from kd_det.analysis.layer_selection import (
    layer_angles_per_student_layer,
    record_layers,
    trained_adapters,
)
from kd_det.distillers.term import DistillTerm
from kd_det.mappers import build_mapper
from tools.experiments import layer_selection as study

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("task", sorted(study.TASKS))
def test_strategy_configs_differ_only_in_the_mapper(task: str) -> None:
    t = study.TASKS[task]
    forward = Config.fromfile(REPO / t.strategies["forward"])
    expected = {
        "forward": [1, 3, 5, 7, 9, 11, 13, 15],
        "reverse": [15, 13, 11, 9, 7, 5, 3, 1],
        "all2one-shallow": [2] * 8,
        "all2one-middle": [7] * 8,
        "all2one-deep": [15] * 8,
    }
    for name, path in t.strategies.items():
        cfg = Config.fromfile(REPO / path)
        assert cfg.train_cfg.max_epochs == t.epochs, name
        assert cfg.model.teacher == forward.model.teacher and cfg.model.student == (
            forward.model.student
        )
        if name == "none":
            assert cfg.model.distill.hidden is None
            continue
        hidden = cfg.model.distill.hidden
        assert hidden.loss == forward.model.distill.hidden.loss, name
        assert hidden.connector == forward.model.distill.hidden.connector, name
        pairs = build_mapper(hidden.mapper)(8, 16)
        assert [i for i, _ in pairs] == list(range(8)), name
        if name in expected:
            assert [j for _, j in pairs] == expected[name], name
        # the study gives the seeded mappers the run's seed: mappings differ between seeds
        if name in study.SEEDED_MAPPERS:
            other = build_mapper(dict(hidden.mapper, seed=1))(8, 16)
            assert other != pairs, name


def test_the_classification_pair_has_16_teacher_and_8_student_blocks() -> None:
    from kd_det.apis import build_model_from_cfg

    path = REPO / study.TASKS["cls"].strategies["reverse"]
    model = build_model_from_cfg(Config.fromfile(path), {"model.teacher_ckpt": None})
    term = model.terms["hidden"]
    assert len(term.pair_labels) == 8
    assert term.pair_labels[0] == ("backbone.layer1.0", "backbone.layer4.2")
    assert term.pair_labels[-1] == ("backbone.layer4.1", "backbone.layer1.1")
    # one bias-free adapter per pair, student width -> teacher width
    widths = [tuple(c.projector.weight.shape[:2]) for c in term.connectors]
    # reverse: student block i <- teacher block 15 - 2i (teacher stages of 3, 4, 6, 3 blocks)
    assert widths == [(128, 8), (128, 8), (64, 16), (64, 16), (64, 32), (32, 32), (32, 64),
                      (16, 64)]  # fmt: skip
    adapters = trained_adapters(term)
    assert sorted(adapters) == [(i, 15 - 2 * i) for i in range(8)]


# ------------------------------------------------------------------------------- driver


def _args(tmp_path: Path, *extra: str):
    return study.parse_args(["--work-root", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                             "--figures", str(tmp_path / "f"), *extra])  # fmt: skip


def test_plan(tmp_path: Path) -> None:
    args = _args(tmp_path, "--seeds", "3", "4", "--teacher-seeds", "0", "1",
                 "--strategies", "student", "none", "random", "--lr", "0.003")  # fmt: skip
    teachers, runs = study.plan(study.TASKS["cls"], args)
    assert [t.seed for t in teachers] == [0, 1] and teachers[0].epochs == 30
    assert teachers[1].work_dir == tmp_path / "w" / "cls" / "teacher" / "seed1"
    # per seed: the student alone once, then each teacher's strategies
    assert [(r.variant, r.seed, r.teacher_seed) for r in runs] == [
        ("student", 3, None), ("none", 3, 0), ("random", 3, 0), ("none", 3, 1), ("random", 3, 1),
        ("student", 4, None), ("none", 4, 0), ("random", 4, 0), ("none", 4, 1), ("random", 4, 1),
    ]  # fmt: skip
    teach0, teach1 = (f"model.teacher_ckpt={t.checkpoint}" for t in teachers)
    assert teach0 not in runs[0].cfg_options and teach1 not in runs[0].cfg_options
    assert teach0 in runs[1].cfg_options and teach1 in runs[3].cfg_options
    assert teach0 not in runs[3].cfg_options
    assert runs[3].work_dir == tmp_path / "w" / "cls" / "t1" / "none" / "seed3"
    assert "model.distill.hidden.mapper.seed=4" in runs[9].cfg_options
    assert not any("mapper.seed" in o for o in runs[8].cfg_options)
    assert runs[0].work_dir == tmp_path / "w" / "cls" / "student" / "seed3"
    assert "train_cfg.max_epochs=15" in runs[0].cfg_options
    assert all("optim_wrapper.optimizer.lr=0.003" in r.cfg_options for r in runs)
    assert not any("optimizer.lr" in o for o in teachers[0].cfg_options)  # teachers: the config's
    det_teachers, det_runs = study.plan(study.TASKS["det"], _args(tmp_path, "--task", "det"))
    assert any(o.startswith("val_evaluator.ann_file=") for o in det_runs[0].cfg_options)
    assert "param_scheduler.1.milestones=[16,22]" in det_runs[0].cfg_options
    assert not any("optimizer.lr" in o for o in det_runs[0].cfg_options)


def test_bad_options_are_refused(tmp_path: Path, capsys) -> None:
    bad = [(["--lanes", "0"], "--lanes must be >= 1, got 0"),
           (["--strategies", "sideways"], "invalid choice: 'sideways'"),
           (["--lr", "0"], "--lr must be a positive number, got 0.0"),
           (["--lr", "nan"], "--lr must be a positive number, got nan"),
           (["--teacher-seeds", "1", "1"], "--teacher-seeds repeats a seed: [1, 1]")]  # fmt: skip
    for argv, message in bad:
        with pytest.raises(SystemExit):
            _args(tmp_path, *argv)
        assert message in capsys.readouterr().err


def _fake_finished(run, value: float) -> None:
    run.work_dir.mkdir(parents=True)
    run.checkpoint.write_bytes(b"")
    run.result_file.write_text(json.dumps(run.record(value, 60.0)))


def test_report_only_writes_table_comparison_plot_and_readme(tmp_path: Path) -> None:
    readme = tmp_path / "doc.md"
    readme.write_text("intro\n<!-- layer_selection:cls -->\nold\n<!-- /layer_selection:cls -->\n")
    argv = ["--work-root", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--figures",
            str(tmp_path / "f"), "--seeds", "0", "1", "--strategies", "student", "none",
            "forward", "reverse", "--readme", str(readme)]  # fmt: skip
    args = study.parse_args(argv)
    teachers, runs = study.plan(study.TASKS["cls"], args)
    with pytest.raises(SystemExit, match="has not finished"):
        study.main([*argv, "--report-only"])
    values = {"student": 40.0, "none": 44.0, "forward": 50.0, "reverse": 44.5}
    _fake_finished(teachers[0], 70.0)
    for run in runs:
        _fake_finished(run, values[run.variant] + run.seed)
    assert study.main([*argv, "--report-only"]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n")
    assert "| none (logit KD only) | 44.50 ± 0.71 | 2 |  | 0: 44.00, 1: 45.00 |" in text
    # s.e. of Δ = sqrt(sd_a² / n_a + sd_b² / n_b) = sqrt(0.5 / 2 + 0.5 / 2) = 0.71
    assert "| forward | +6.00 | 0.71 | yes | 72.5 | +9.3 |" in text
    assert "| reverse | +0.50 | 0.71 | no | 69.3 | +6.1 |" in text
    assert (tmp_path / "f" / "layer_selection_cls_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "o" / "layer_selection_cls.csv").read_text().count("\n") == 1 + 1 + 8


def test_report_with_two_teachers(tmp_path: Path) -> None:
    readme = tmp_path / "doc.md"
    readme.write_text("<!-- layer_selection:cls-t0-1 -->\n<!-- /layer_selection:cls-t0-1 -->\n")
    argv = ["--work-root", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--figures",
            str(tmp_path / "f"), "--seeds", "0", "1", "--teacher-seeds", "0", "1",
            "--strategies", "student", "none", "forward", "--readme", str(readme)]  # fmt: skip
    teachers, runs = study.plan(study.TASKS["cls"], study.parse_args(argv))
    for teacher in teachers:
        _fake_finished(teacher, 70.0 + teacher.seed)
    values = {"student": 40.0, "none": 44.0, "forward": 50.0}
    for run in runs:  # teacher 1's students are 2 points better
        _fake_finished(run, values[run.variant] + run.seed + 2 * (run.teacher_seed or 0))
    assert study.main([*argv, "--report-only"]) == 0
    text = readme.read_text()
    assert "Teacher seed 0:" in text and "Teacher seed 1:" in text
    assert "| teacher (teacher alone) | 71.00 ± 0.00 | 1 |" in text
    assert text.count("| student (student alone) | 40.50 ± 0.71 | 2 |") == 2
    assert "| none (logit KD only) | 46.50 ± 0.71 | 2 |  | 0: 46.00, 1: 47.00 |" in text
    # pooled over both teachers: none 44, 45, 46, 47 and forward 50, 51, 52, 53 -> +6.00, s.e.
    # sqrt(2 * var / 4) with var = 5/3 -> 0.91
    assert "Over both teachers (2 teachers × 2 seeds per strategy)" in text
    assert "| forward | +6.00 | 0.91 | yes | 72.5 | +9.3 |" in text
    for k in (0, 1):
        assert (tmp_path / "f" / f"layer_selection_cls_t{k}_accuracy.png").stat().st_size > 1000
    csv = (tmp_path / "o" / "layer_selection_cls.csv").read_text()
    assert csv.count("\n") == 1 + 2 + 2 * (1 + 2 * 2)


def test_dry_run_prints_every_command(tmp_path: Path, capsys) -> None:
    study.main(["--work-root", str(tmp_path), "--seeds", "0", "--strategies", "none", "--dry-run"])
    out = capsys.readouterr().out
    assert "# cls teacher seed 0" in out and "# cls none seed 0" in out
    assert "ls-none_resnet34-w16-resnet18-w8-s2_15e_digits-cls.py" in out


# ------------------------------------------------------------------------------ analysis


def test_record_layers() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 1))
    x = torch.randn(2, 1, 4, 4)
    first, last = record_layers(model, ["0", "2"], lambda: model(x))
    torch.testing.assert_close(last, model(x))
    assert first.shape == (2, 2, 4, 4) and not last.requires_grad
    with pytest.raises(ValueError, match=r"has no modules \['9'\]"):
        record_layers(model, ["9"], lambda: model(x))
    with pytest.raises(ValueError, match="did not run"):
        record_layers(model, ["2"], lambda: model[0](x))


def test_trained_adapters_of_a_term() -> None:
    term = DistillTerm(
        "hidden", ["s0", "s1"], ["t0", "t1", "t2"], [(2, 3, 4, 4), (2, 5, 2, 2)],
        [(2, 4, 4, 4), (2, 6, 2, 2), (2, 7, 1, 1)], loss=dict(type="MSEFeatureLoss"),
        mapper=dict(type="ReverseMapper"),
        connector=dict(type="ProjectNorm", projector=dict(type="LinearProjector")),
    )  # fmt: skip
    got = trained_adapters(term)
    assert sorted(got) == [(0, 2), (1, 1)]  # ReverseMapper of 2 students onto 3 teachers
    assert got[(0, 2)].shape == (7, 3) and got[(1, 1)].shape == (6, 5)
    torch.testing.assert_close(got[(1, 1)], term.connectors[1].projector.weight[:, :, 0, 0])
    normed = DistillTerm(
        "hidden", ["s0"], ["t0"], [(2, 3, 4, 4)], [(2, 4, 4, 4)],
        loss=dict(type="MSEFeatureLoss"),
        connector=dict(type="ProjectNorm", projector=dict(type="LinearProjector"),
                       norm=dict(type="AffineFreeBN")),
    )  # fmt: skip
    with pytest.raises(ValueError, match="normalises"):
        trained_adapters(normed)


def _maps(g: torch.Generator, batch: int):
    """A student of width 4 at 4x4 and three teacher layers of width 6 at 2x2 / 4x4 that are
    linear images of one hidden state h plus noise: their directions from s share h."""
    h = torch.randn(batch, 4, 4, 4, generator=g)
    s = torch.randn(batch, 4, 4, 4, generator=g)
    ws = [torch.randn(6, 4, generator=g) for _ in range(3)]
    teachers = []
    for k, w in enumerate(ws):
        t = torch.einsum("oc,bchw->bohw", w, h) + 0.1 * torch.randn(batch, 6, 4, 4, generator=g)
        teachers.append(t[:, :, ::2, ::2] if k == 0 else t)
    return s, teachers


def test_angles_per_student_layer() -> None:
    g = torch.Generator().manual_seed(0)
    s, ts = _maps(g, 6)
    s_fit, ts_fit = _maps(g, 12)
    trained = {(0, 1): torch.randn(6, 4, generator=g)}
    out = layer_angles_per_student_layer(
        [s, s], ts, [s_fit, s_fit], ts_fit, ["a", "b"], ["t0", "t1", "t2"],
        adapters=trained, positions_per_image=5, seed=3,
    )  # fmt: skip
    assert [o.student_layer for o in out] == ["a", "b"]
    a = out[0]
    assert a.trained == [1] and out[1].trained == []
    assert a.width == 4 and a.cosines.shape == (6 * 5 * 3,) and a.acute_per_image.shape == (6,)
    assert a.mean_matrix.shape == (3, 3) and np.allclose(np.diag(a.mean_matrix), 1.0)
    assert a.random_cosines.shape == a.cosines.shape and 0.3 < a.random_acute < 0.7
    assert a.acute == pytest.approx(float((a.cosines > 0).mean()))
    summary = a.summary()
    assert summary["trained"] == [1] and summary["acute"] == a.acute
    # the trained adapter is used as given: without it (same seed, same positions) only the
    # pairs with teacher 1 change
    fitted = layer_angles_per_student_layer(
        [s, s], ts, [s_fit, s_fit], ts_fit, ["a", "b"], ["t0", "t1", "t2"],
        positions_per_image=5, seed=3,
    )[0]  # fmt: skip
    assert fitted.trained == []
    assert a.mean_matrix[0, 2] == pytest.approx(fitted.mean_matrix[0, 2])
    assert a.mean_matrix[0, 1] != pytest.approx(fitted.mean_matrix[0, 1])


def test_angles_are_saved_loaded_and_cached(tmp_path: Path) -> None:
    """The angle step keeps each student's angles beside its run: a second step reads them
    back (same arrays, no recomputation), so an interrupted angle step resumes."""
    g = torch.Generator().manual_seed(1)
    s, ts = _maps(g, 4)
    layers = layer_angles_per_student_layer(
        [s], ts, [s], ts, ["a"], ["t0", "t1", "t2"], adapters={(0, 2): torch.randn(6, 4)},
        positions_per_image=3, seed=0,
    )  # fmt: skip
    calls = []

    def compute():
        calls.append(1)
        return layers

    path = tmp_path / "run" / "angles.npz"
    first = study.cached_angles(path, "run", compute)
    again = study.cached_angles(path, "run", compute)
    assert len(calls) == 1 and first is layers
    (got,) = again
    assert got.summary() == layers[0].summary() and got.teacher_layers == ["t0", "t1", "t2"]
    for name in ("cosines", "acute_per_image", "mean_matrix", "random_cosines"):
        np.testing.assert_array_equal(getattr(got, name), getattr(layers[0], name))


def test_angles_refuse_mismatched_inputs() -> None:
    x = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="one of each per student layer"):
        layer_angles_per_student_layer([x], [x, x], [], [x, x], ["a"], ["t0", "t1"])
    with pytest.raises(ValueError, match="at least 2 teacher layers"):
        layer_angles_per_student_layer([x], [x], [x], [x], ["a"], ["t0"])


def test_adapter_targets_match_the_adapter_pull() -> None:
    # the diagnostic's direction for a trained adapter is W⁺ (t − W s)
    g = torch.Generator().manual_seed(5)
    s, t, w = (
        torch.randn(9, 3, generator=g),
        torch.randn(9, 5, generator=g),
        torch.randn(5, 3, generator=g),
    )
    d = adapter_targets(s, t, w) - s
    torch.testing.assert_close(d, (t - s @ w.T) @ torch.linalg.pinv(w).T, rtol=1e-5, atol=1e-5)


def test_readme_and_metafile_list_every_config() -> None:
    import yaml

    folder = REPO / "configs" / "layer_selection"
    meta = yaml.safe_load((folder / "metafile.yml").read_text())
    readme = (folder / "README.md").read_text()
    own = {p.name for p in folder.glob("*.py")}
    listed = {Path(m["Config"]).name for m in meta["Models"]}
    assert listed == own
    for model in meta["Models"]:
        assert model["Name"] == Path(model["Config"]).stem
        cfg = Config.fromfile(REPO / model["Config"])
        assert model["Metadata"]["Epochs"] == cfg.train_cfg.max_epochs, model["Name"]
        assert all(
            isinstance(v, float) for r in model.get("Results", []) for v in r["Metrics"].values()
        )
    assert all(name in readme for name in own)
