"""kd_det.benchmark (the measurement) and tools/benchmark.py (the report): statistics, the
interleaving, the memory probe, the report's structure.

No assertion on speed: the target ratio is measured, not tested.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kd_det.benchmark import (
    MODES,
    SPLIT_MODES,
    BenchmarkResult,
    MemoryResult,
    ModeResult,
    RoundReporter,
    TermCost,
    add_shares,
    build_distiller,
    build_steps,
    cpu_tensor_peak,
    load_config,
    measure_memory,
    paired_ratio_interval,
    prepare,
    ratios_of,
    split_excess,
    terms_cut,
    time_interleaved,
)
from tests.conftest import CONFIGS, REPO, run_tool
from tools.benchmark import (
    MODE_LABELS,
    format_report,
    format_split,
    format_terms,
    report_dict,
)

DISTILL_CONFIG = CONFIGS / "srd" / "srd_retinanet-w32-w8_fpn_24e_digits.py"
STUDENT_CONFIG = CONFIGS / "baselines" / "retinanet_r18-w8_fpn_24e_digits.py"


def test_mode_result_quartiles_by_hand() -> None:
    r = ModeResult.from_times("distill", [4.0, 1.0, 3.0, 2.0], [2.0, 1.0, 5.0])
    # linear interpolation on sorted [1, 2, 3, 4]: positions 0.75, 1.5, 2.25
    assert (r.q1_ms, r.median_ms, r.q3_ms, r.iqr_ms) == (1.75, 2.5, 3.25, 1.5)
    assert r.cpu_median_ms == 2.0
    with pytest.raises(ValueError, match="no measured iterations"):
        ModeResult.from_times("student", [])


def test_ratios_by_hand() -> None:
    ratios = ratios_of({"student": 50.0, "distill": 110.0, "bound": 100.0})
    assert ratios == pytest.approx(
        {"distill/student": 2.2, "distill/bound": 1.1, "bound/student": 2.0}
    )


def _result(medians: dict[str, float], memory: bool = False) -> BenchmarkResult:
    modes = {m: ModeResult.from_times(m, [t], [t / 2]) for m, t in medians.items()}
    if memory:
        for mode in modes.values():
            mode.memory = MemoryResult("cpu_peak_rss", 1, 500.0, 400.0, 100.0)
    return BenchmarkResult("cfg.py", "cpu", 2, 1, 1, 1, None, modes)


def test_paired_ratio_interval_pins_the_ratio_down_as_rounds_add_up() -> None:
    rng = np.random.default_rng(1)
    # a bound whose batches cost 100-200 ms and a step 3 % over it, with 5 % noise per round
    bound = rng.uniform(100, 200, 400)
    step = bound * 1.03 * rng.normal(1, 0.05, 400)
    mid, low, high = paired_ratio_interval(step, bound)
    assert low < mid < high and low < 1.03 < high and high - low < 0.02
    few = paired_ratio_interval(step[:20], bound[:20])
    assert few[2] - few[1] > high - low
    # a step that is exactly twice its bound: no spread at all, whatever the batches cost
    assert paired_ratio_interval(2 * bound, bound) == pytest.approx((2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="equally many rounds of both modes, got 3 and 2"):
        paired_ratio_interval([1, 2, 3], [1, 2])


def test_report_says_whether_the_run_shows_the_target() -> None:
    def result(ratio: float, spread: float) -> BenchmarkResult:
        bound = np.linspace(100, 200, 200)
        noise = 1 + spread * np.sin(np.arange(200))
        modes = {
            "student": ModeResult.from_times("student", list(bound / 2), list(bound / 2)),
            "distill": ModeResult.from_times(
                "distill", list(bound * ratio * noise), list(bound * ratio * noise)
            ),
            "bound": ModeResult.from_times("bound", list(bound), list(bound)),
        }
        return BenchmarkResult("cfg.py", "cpu", 2, 1, 200, 1, None, modes)

    assert "shown within the target" in format_report(result(1.01, 0.001), target=1.02)
    assert "shown over the target" in format_report(result(1.04, 0.001), target=1.02)
    text = format_report(result(1.02, 0.05), target=1.02)
    assert re.search(
        r"b/c round by round \(CPU time, both on the same batch\): median 1\.0\d\d, "
        r"95% interval 1\.0\d\d-1\.0\d\d; not decided by this run",
        text,
    ), text
    assert report_dict(result(1.01, 0.001), 1.02)["shown"] == "within"
    assert report_dict(result(1.02, 0.05), 1.02)["shown"] == "undecided"


def test_report_suggests_a_steady_malloc_when_the_kernel_takes_much_cpu_time() -> None:
    result = _result({"student": 50.0, "distill": 110.0, "bound": 100.0})
    assert "GLIBC_TUNABLES" not in format_report(result)
    result.system_share = 0.14
    text = format_report(result)
    assert "note: 14% of the CPU time was the kernel's" in text
    assert "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=" in text
    result.system_share = 0.02
    assert "GLIBC_TUNABLES" not in format_report(result)


def test_report_states_the_verdict_on_the_target() -> None:
    result = _result({"student": 50.0, "distill": 104.0, "bound": 100.0}, memory=True)
    text = format_report(result, target=1.05)
    assert "target b/c <= 1.05: MET (distillation step is +4.0% over the bound)" in text
    assert "target b/c <= 1.02: NOT MET" in format_report(result, target=1.02)
    for mode in MODES:
        assert MODE_LABELS[mode] in text
    assert "b/a = 2.080   b/c = 1.040   c/a = 2.000" in text
    assert "peak = peak resident set size" in text and "no teacher_ckpt" in text
    assert report_dict(result, 1.05)["within_target"] is True
    assert report_dict(result, 1.02)["within_target"] is False
    assert "memory:" not in format_report(_result({m: 1.0 for m in MODES}))
    assert "memory b/c: step 1.000\n" in text + "\n" and "tensors MiB" not in text
    for mode, tensors in (("distill", 105.0), ("bound", 100.0), ("student", 60.0)):
        result.modes[mode].memory = MemoryResult("cpu_peak_rss", 1, 500, 400, 100, None, tensors)
    text = format_report(result, target=1.05)
    assert "tensors MiB" in text and "memory b/c: step 1.000, tensors 1.050" in text


def test_term_shares_by_hand() -> None:
    # CPU medians: distill 50, bound 40 (the _result helper halves the wall times)
    result = _result({"student": 40.0, "distill": 100.0, "bound": 80.0})
    costs = {"fpn": TermCost("fpn", 5, 3.0, 2.0, 5.0), "cls": TermCost("cls", 5, 0.5, 0.5, 1.0)}
    add_shares(costs, result)
    assert costs["fpn"].step_share == pytest.approx(0.1)
    assert costs["fpn"].excess_share == pytest.approx(0.5)
    assert costs["cls"].excess_share == pytest.approx(0.1)
    text = format_terms(costs, result)
    assert "fpn" in text and "10.0%" in text and "50%" in text and "median of 5" in text
    assert report_dict(result, 1.05, costs)["terms"]["cls"]["total_ms"] == 1.0
    # no excess: no share of it
    fast = _result({"student": 40.0, "distill": 80.0, "bound": 90.0})
    add_shares(costs, fast)
    assert costs["fpn"].excess_share is None and costs["fpn"].step_share == pytest.approx(0.125)
    assert format_terms({}, fast) == ""


def test_split_parts_by_hand() -> None:
    """machinery = b0/c, terms' values = b1/b0, terms' gradients = b/b1, round by round."""
    bound = np.array([100.0, 200.0, 150.0])
    cpu = {"bound": bound, "terms_off": bound + 1, "terms_no_grad": bound + 3}
    cpu["distill"] = cpu["terms_no_grad"] * 1.01
    cpu["student"] = bound / 2
    modes = {m: ModeResult.from_times(m, list(2 * t), list(t)) for m, t in cpu.items()}
    result = BenchmarkResult("cfg.py", "cpu", 2, 1, 3, 1, None, modes)
    machinery, forward, backward = split_excess(result)
    assert (machinery.num, machinery.den, forward.num, backward.den) == (
        "terms_off", "bound", "terms_no_grad", "terms_no_grad"
    )  # fmt: skip
    assert machinery.ratio == pytest.approx(151 / 150) and machinery.ms == pytest.approx(1.0)
    assert forward.ms == pytest.approx(2.0) and forward.low <= forward.ratio <= forward.high
    assert backward.ratio == pytest.approx(1.01) and backward.ms == pytest.approx(1.53)
    text = format_split(result)
    assert "terms' values" in text and "b1/b0" in text and "+2.00" in text
    assert report_dict(result)["split"][2]["name"] == "terms' gradients"
    plain = _result({"student": 50.0, "distill": 110.0, "bound": 100.0})
    assert split_excess(plain) == [] and format_split(plain) == ""
    assert report_dict(plain)["split"] == []


def test_split_modes_cut_the_terms_back_and_give_them_back(digits_root: Path) -> None:
    """terms_off: every term's loss a zero, no connector learns; terms_no_grad: the terms'
    values without a gradient; the distill step afterwards is whole again."""
    cfg = load_config(str(DISTILL_CONFIG), {"model.teacher_ckpt": None}, 2, f"{digits_root}/det/")
    distiller, batches = prepare(cfg, "cpu", 1, 0)
    steps = build_steps(distiller, cfg.optim_wrapper, split=True)
    assert tuple(steps) == MODES + SPLIT_MODES
    seen: list[dict[str, torch.Tensor]] = []
    distiller_loss = distiller.loss

    def loss(*args, **kwargs):
        losses = distiller_loss(*args, **kwargs)
        seen.append({k: v for k, v in losses.items() if k.startswith("distill.")})
        return losses

    distiller.loss = loss
    projector = distiller.terms["fpn"].connectors[0].projector.weight
    for mode in ("terms_off", "terms_no_grad", "distill"):
        before = projector.detach().clone()
        steps[mode](batches[0])
        values = seen[-1]
        assert set(values) == {"distill.fpn.loss", "distill.cls.loss"}, mode
        assert all(v.requires_grad == (mode == "distill") for v in values.values()), mode
        assert all((float(v.detach()) == 0) == (mode == "terms_off") for v in values.values())
        assert torch.equal(projector, before) != (mode == "distill"), mode
        assert all("forward" not in vars(term) for term in distiller.terms.values())
    with pytest.raises(KeyboardInterrupt), terms_cut(distiller, "off"):
        raise KeyboardInterrupt  # the forward comes back whatever ends the block
    assert all("forward" not in vars(term) for term in distiller.terms.values())
    with (
        terms_cut(distiller, "off"),
        pytest.raises(RuntimeError, match="already cut back"),
        terms_cut(distiller, "no_grad"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="how must be 'off' or 'no_grad', got 'half'"),
        terms_cut(distiller, "half"),
    ):
        pass


def test_interleaving_rotates_the_order_and_drops_warmup() -> None:
    calls: list[tuple[str, int]] = []
    steps = {m: (lambda b, m=m: calls.append((m, b["i"]))) for m in MODES}
    batches = [{"i": 0}, {"i": 1}]
    times = time_interleaved(steps, batches, warmup=1, iters=3, device="cpu")
    assert calls == [
        ("student", 0), ("distill", 0), ("bound", 0),  # warm-up round
        ("distill", 1), ("bound", 1), ("student", 1),
        ("bound", 0), ("student", 0), ("distill", 0),
        ("student", 1), ("distill", 1), ("bound", 1),
    ]  # fmt: skip
    assert {m: len(v) for m, v in times.wall_ms.items()} == {m: 3 for m in MODES}
    assert {m: len(v) for m, v in times.cpu_ms.items()} == {m: 3 for m in MODES}
    with pytest.raises(ValueError, match="iters >= 1"):
        time_interleaved(steps, batches, warmup=0, iters=0, device="cpu")


def test_round_reporter_says_how_far_the_timing_is_at_most_every_few_seconds() -> None:
    now = [0.0]
    lines: list[str] = []
    reporter = RoundReporter(cpu_time=True, every_s=10.0, write=lines.append,
                             clock=lambda: now[0])  # fmt: skip
    steps = {m: (lambda b, m=m: now.__setitem__(0, now[0] + 4.0)) for m in MODES}
    time_interleaved(steps, [{}], warmup=1, iters=4, device="cpu", progress=reporter)
    # 12 s a round, more than every_s: a line after every round, the warm-up included
    assert len(lines) == 5
    assert lines[0] == "round 1/5 (warm-up), 12 s elapsed, about 48 s left"
    assert re.fullmatch(
        r"round 2/5: b/c so far \d\.\d{3} \(median of 1 round\), 24 s elapsed, about 36 s left",
        lines[1],
    )
    assert lines[-1].startswith("round 5/5: b/c so far ") and "left" not in lines[-1]
    assert "median of 4 rounds), 60 s elapsed" in lines[-1]
    # a fast timing prints only its last round
    quiet: list[str] = []
    reporter = RoundReporter(cpu_time=False, write=quiet.append)
    time_interleaved({m: lambda b: None for m in MODES}, [{}], 0, 50, "cpu", progress=reporter)
    assert len(quiet) == 1 and quiet[0].startswith("round 50/50: b/c so far ")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_cpu_peak_rss_sees_what_a_step_allocates() -> None:
    def big(_: dict) -> None:
        x = torch.ones(24 * 2**20)  # 96 MiB, written so that it is resident
        assert x[-1].item() == 1.0

    def small(_: dict) -> None:
        torch.ones(16).sum()

    heavy = measure_memory(big, [{}], steps=1, device="cpu")
    light = measure_memory(small, [{}], steps=1, device="cpu")
    assert heavy.kind == light.kind == "cpu_peak_rss"
    assert heavy.step_mb == pytest.approx(heavy.peak_mb - heavy.baseline_mb)
    assert heavy.step_mb > 90
    assert light.step_mb < 40
    assert heavy.tensor_step_mb == pytest.approx(96, abs=0.01)
    assert light.tensor_step_mb < 0.01


def test_cpu_tensor_peak_counts_the_tensors_alive_at_once() -> None:
    kept: list[torch.Tensor] = []

    def step(_: dict) -> None:
        a = torch.ones(2**20)  # 4 MiB
        b = torch.ones(2**19)  # 2 MiB beside it
        del a, b
        kept.append(torch.ones(2**18))  # 1 MiB kept by every step

    # the third step holds the 2 MiB the first two kept, plus 6 MiB
    assert cpu_tensor_peak(step, [{}], steps=3) == 8 * 2**20


def test_load_config_overrides_and_errors(digits_root: Path) -> None:
    root = f"{digits_root}/det/"
    cfg = load_config(str(DISTILL_CONFIG), {"model.teacher_ckpt": None}, 3, root)
    assert cfg.train_dataloader.batch_size == 3
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.model.teacher_ckpt is None
    with pytest.raises(ValueError, match="batch size"):
        load_config(str(DISTILL_CONFIG), batch_size=0)


def test_cli_reports_three_modes_with_consistent_ratios(digits_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    text = run_tool(
        REPO / "tools" / "benchmark.py", DISTILL_CONFIG,
        "--iters", "3", "--warmup", "1", "--batch-size", "2", "--threads", "1",
        "--memory-steps", "1", "--data-root", f"{digits_root}/det/",
        "--cfg-options", "model.teacher_ckpt=None", "--json", out, "--term-reps", "2",
        "--split", timeout=300,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert tuple(result["modes"]) == MODES + SPLIT_MODES
    for mode in SPLIT_MODES:  # timed only: no memory child of their own
        assert result["modes"].pop(mode)["memory"] is None and MODE_LABELS[mode] in text
    assert [p["name"] for p in result["split"]] == [
        "machinery",
        "terms' values",
        "terms' gradients",
    ]
    assert "part of b-c, within the step" in text
    assert result["batch_size"] == 2 and result["device"] == "cpu" and result["threads"] == 1
    assert result["teacher_ckpt"] is None and "no teacher_ckpt" in text
    capability = torch.backends.cpu.get_cpu_capability()
    assert result["cpu_capability"] == capability and f"CPU kernels: {capability}" in text
    assert 0.0 <= result["system_share"] < 1.0
    medians = {}
    for mode, r in result["modes"].items():
        times = r["times_ms"]
        assert len(times) == 3 and all(t > 0 for t in times), mode
        assert r["median_ms"] == pytest.approx(float(np.median(times)))
        assert r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
        assert r["cpu_median_ms"] == pytest.approx(float(np.median(r["cpu_times_ms"])))
        medians[mode] = r["median_ms"]
        mem = r["memory"]
        if sys.platform == "linux":
            assert mem["kind"] == "cpu_peak_rss"
            assert 0 < mem["baseline_mb"] <= mem["peak_mb"]
            assert mem["step_mb"] == pytest.approx(mem["peak_mb"] - mem["baseline_mb"])
        assert MODE_LABELS[mode] in text
    ratios = result["ratios"]
    assert ratios["distill/student"] == pytest.approx(medians["distill"] / medians["student"])
    assert ratios["distill/bound"] == pytest.approx(medians["distill"] / medians["bound"])
    assert ratios["bound/student"] == pytest.approx(medians["bound"] / medians["student"])
    assert result["within_target"] == (ratios["distill/bound"] <= 1.05)
    assert f"b/c = {ratios['distill/bound']:.3f}" in text
    verdict = "MET" if result["within_target"] else "NOT MET"
    assert f"target b/c <= 1.05: {verdict} " in text
    # per-term cost: both terms of the SRD config, timed alone
    terms = result["terms"]
    assert set(terms) == {"fpn", "cls"}
    cpu_step = result["modes"]["distill"]["cpu_median_ms"]
    for name, cost in terms.items():
        assert cost["reps"] == 2 and cost["forward_ms"] >= 0 and cost["backward_ms"] >= 0
        assert cost["total_ms"] == pytest.approx(cost["forward_ms"] + cost["backward_ms"])
        assert cost["step_share"] == pytest.approx(cost["total_ms"] / cpu_step)
        assert name in text
    assert "distill term" in text and "of b-c" in text
    assert "round 4/4: b/c so far " in text  # progress: the last round is always reported


def test_steps_hold_no_recorded_feature_where_train_step_would_not(digits_root: Path) -> None:
    """The bound's student step runs with no teacher map alive, and neither mode leaves a
    recorded feature behind it (``train_step`` releases them after the loss)."""
    cfg = load_config(str(DISTILL_CONFIG), {"model.teacher_ckpt": None}, 2, f"{digits_root}/det/")
    distiller, batches = prepare(cfg, "cpu", 1, 0)
    steps = build_steps(distiller, cfg.optim_wrapper)
    held: list[int] = []
    student_loss = distiller.student.loss

    def loss(*args, **kwargs):
        held.append(sum(len(v) for v in distiller._teacher_recorder.records.values()))
        return student_loss(*args, **kwargs)

    distiller.student.loss = loss
    steps["bound"](batches[0])
    assert held == [0]
    steps["distill"](batches[0])
    assert held[1] > 0  # the distillation step's student does run beside the teacher's maps
    for recorder in (distiller._student_recorder, distiller._teacher_recorder):
        assert recorder.records == {}


def test_non_distiller_config_is_refused() -> None:
    cfg = load_config(str(STUDENT_CONFIG))
    with pytest.raises(ValueError, match="needs a distiller"):
        build_distiller(cfg)
