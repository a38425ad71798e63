"""Per-iteration time and peak memory of distillation against its lower bound.

    python tools/benchmark.py CONFIG [--device cpu|cuda] [--teacher-dtype fp32|bf16|fp16]
                              [--iters 20] [--warmup 5] [--batch-size N] [--data-root DIR]
                              [--cfg-options k=v ...] [--json OUT] [--threads N] [--no-memory]
                              [--term-reps 10] [--split]

Times three modes side by side in one process, interleaved round by round on the same
preprocessed batches (see :mod:`kd_det.benchmark`): (a) the student trained alone, (b) the
distillation step, (c) the lower bound (a) + the teacher's forward to the deepest needed layer.
While it times, a line on stderr at most every 10 s says how many rounds are done, the ratio
so far and about how long is left. Then measures each mode's peak memory in a child process of
its own (``--only MODE``; the three run concurrently after the timing).
The report states whether b/c meets ``--target`` (default 1.05: a distillation step at most 5 %
slower than its lower bound) and whether the run shows it: the step over its bound round by
round (both on the same batch), its median and a 95 % bootstrap interval; a target is shown met
when the whole interval is below it. It also says what each distill term costs: after the timing, every term's
forward and backward are timed on its own (``--term-reps`` times, on the features one
distillation step recorded), in ms and as a share of the distillation step and of its excess
over the bound. ``--split`` places that excess within the step, where a term need not cost
what it costs alone: two more modes, the step with its terms cut to zero and the step with its
terms run under ``no_grad``, give the distiller's machinery, the terms' values and what their
gradients cost, round by round. Example on the digits pair without a trained teacher::

    python tools/benchmark.py configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py \\
        --batch-size 8 --cfg-options model.teacher_ckpt=None

A mutual-learning config (``kd_det.MutualDistiller``) is timed in four modes: (a) net1 alone,
(b) net2 alone, (c) the mutual step, (d) its lower bound, each network's own step ((a) then
(b)); the target applies to c/d::

    python tools/benchmark.py configs/dml/dml_retinanet-w8-w8_fpn_24e_digits.py --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from mmengine.config import DictAction

from kd_det.benchmark import (
    MODES,
    MUTUAL_MODES,
    SPLIT_MODES,
    BenchmarkResult,
    MemoryResult,
    RoundReporter,
    SplitUnavailable,
    TermCost,
    key_ratio,
    load_config,
    run_memory,
    run_timing_with_terms,
    split_excess,
    step_mode,
)
from kd_det.cli import BadConfig, MissingInput, check_inputs

MODE_LABELS = {
    "student": "(a) student alone",
    "distill": "(b) distillation step",
    "bound": "(c) lower bound = (a) + teacher forward",
    "terms_off": "(b0) step, terms cut to zero",
    "terms_no_grad": "(b1) step, terms under no_grad",
}
MUTUAL_MODE_LABELS = {
    "net1": "(a) net1 alone",
    "net2": "(b) net2 alone",
    "mutual": "(c) mutual-learning step",
    "bound": "(d) lower bound = (a) + (b)",
}
TARGET_RATIO = 1.05
#: above this share of kernel time in the CPU time, the report suggests STEADY_MALLOC
SYSTEM_SHARE_HINT = 0.05
#: glibc keeps every tensor in its heap and never hands the heap back to the kernel (64 GiB)
STEADY_MALLOC = "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
MEMORY_KINDS = {
    "cuda_max_memory_allocated": "torch.cuda.max_memory_allocated (GPU tensors)",
    "cpu_peak_rss": "peak resident set size of the whole process during the steps",
    "cpu_max_rss": "lifetime peak RSS (ru_maxrss), construction included",
}


def format_terms(costs: dict[str, TermCost], result: BenchmarkResult) -> str:
    """The per-term table: forward, backward, total ms, share of the step and of the excess."""
    if not costs:
        return ""
    cpu = torch.device(result.device).type == "cpu"
    clock = "CPU ms" if cpu else "ms"
    head = (
        f"{'distill term':<24}{'fwd ' + clock:>12}{'bwd ' + clock:>12}{'total':>10}"
        f"{'of step':>10}{'of b-c':>10}"
    )
    lines = ["", head, "-" * len(head)]
    for c in costs.values():
        step = f"{100 * c.step_share:.1f}%" if c.step_share is not None else "-"
        excess = f"{100 * c.excess_share:.0f}%" if c.excess_share is not None else "-"
        lines.append(
            f"{c.name:<24}{c.forward_ms:>12.2f}{c.backward_ms:>12.2f}{c.total_ms:>10.2f}"
            f"{step:>10}{excess:>10}"
        )
    reps = next(iter(costs.values())).reps
    lines.append(
        f"each term alone, median of {reps} forward + backward runs on the features of one "
        "distillation step; 'of step' is its share of the step's median"
        + (" CPU time" if cpu else "")
        + ", 'of b-c' of the step's excess over the bound. Within the step a term need not "
        "cost what it costs alone; --split measures it there"
    )
    return "\n".join(lines)


def format_split(result: BenchmarkResult) -> str:
    """Where the step's excess over its bound goes, within the step (``--split``)."""
    parts = split_excess(result)
    if not parts:
        return ""
    clock = "CPU" if result.cpu_time else "wall"
    head = f"{'part of b-c, within the step':<32}{'modes':>10}{'ratio':>8}{'95% interval':>15}{'ms':>9}"
    lines = ["", head, "-" * len(head)]
    short = {"distill": "b", "bound": "c", "terms_off": "b0", "terms_no_grad": "b1"}
    for p in parts:
        lines.append(
            f"{p.name:<32}{short[p.num] + '/' + short[p.den]:>10}{p.ratio:>8.3f}"
            f"{f'{p.low:.3f}-{p.high:.3f}':>15}{p.ms:>+9.2f}"
        )
    lines.append(
        f"round by round ({clock} time, the modes on the same batch); ms: median of the "
        "per-round differences. machinery: the recording, the checks, the release of features "
        "and the optimizer over the connectors, without the terms; then the terms' values (run "
        "under no_grad) and what their gradients add, as they cost within the step"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="distillation config file")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--iters", type=int, default=20, help="measured rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up rounds (default 5)")
    parser.add_argument("--batch-size", type=int, help="override the train batch size")
    parser.add_argument("--data-root", help="override the train dataset's data_root")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config entries, e.g. model.teacher_ckpt=None",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--target",
        type=float,
        default=TARGET_RATIO,
        help=f"largest acceptable b/c, distillation over its lower bound (default {TARGET_RATIO})",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument(
        "--teacher-dtype",
        choices=("fp32", "bf16", "fp16"),
        help="run the teacher in this precision (the distiller's teacher_dtype; default: the "
        "config's, fp32 unless it sets one)",
    )
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the weights")
    parser.add_argument(
        "--memory-steps", type=int, default=3, help="steps each memory child runs (default 3)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument(
        "--term-reps",
        type=int,
        default=10,
        help="times each distill term's forward and backward are timed alone, after the "
        "interleaved timing (default 10; 0: no per-term cost)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also time the step with its terms cut to zero and with its terms run under "
        "no_grad, and report the machinery, the terms' values and what their gradients cost "
        "within the step (two more modes a round)",
    )
    parser.add_argument(
        "--only",
        choices=list(dict.fromkeys(MODES + MUTUAL_MODES)),
        help="(internal) measure the memory of one mode and exit",
    )
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.memory_steps < 1 or args.term_reps < 0:
        parser.error("need --iters >= 1, --warmup >= 0, --memory-steps >= 1 and --term-reps >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if not args.target > 0:
        parser.error(f"--target must be > 0, got {args.target}")
    return args


def format_report(result: BenchmarkResult, target: float = TARGET_RATIO) -> str:
    """A readable report: the table, the ratios, the verdict on ``target`` and what memory
    means."""
    mutual = "mutual" in result.modes
    labels = MUTUAL_MODE_LABELS if mutual else MODE_LABELS
    show_cpu = result.cpu_time
    kernels = (
        f", CPU kernels: {result.cpu_capability}" if show_cpu and result.cpu_capability else ""
    )
    lines = [
        f"config: {result.config}",
        f"device: {result.device} (torch threads: {result.threads}{kernels}), batch size "
        f"{result.batch_size}, {result.iters} measured rounds after {result.warmup} warm-up; "
        "modes interleaved on the same batches",
    ]
    if result.teacher_ckpt is None and not mutual:
        lines.append(
            "note: no teacher_ckpt, the teacher keeps its initial weights "
            "(weights do not change the speed)"
        )
    head = f"{'mode':<42}{'median ms':>10}{'q1 ms':>9}{'q3 ms':>9}{'IQR ms':>9}"
    if show_cpu:
        head += f"{'CPU ms':>10}"
    has_mem = any(m.memory is not None for m in result.modes.values())
    has_tensors = has_mem and any(
        m.memory is not None and m.memory.tensor_step_mb is not None for m in result.modes.values()
    )
    if has_mem:
        head += f"{'peak MiB':>10}{'step MiB':>10}"
    if has_tensors:
        head += f"{'tensors MiB':>13}"
    lines += ["", head, "-" * len(head)]
    for m in result.modes.values():
        label = labels.get(m.mode, m.mode)
        row = f"{label:<42}{m.median_ms:>10.1f}{m.q1_ms:>9.1f}{m.q3_ms:>9.1f}{m.iqr_ms:>9.1f}"
        if show_cpu:
            row += f"{m.cpu_median_ms:>10.1f}"
        if has_mem:
            mem = m.memory
            peak = f"{mem.peak_mb:.1f}" if mem else "-"
            step = f"{mem.step_mb:.1f}" if mem and mem.step_mb is not None else "-"
            row += f"{peak:>10}{step:>10}"
        if has_tensors:
            tensors = mem.tensor_step_mb if mem else None
            row += f"{'-' if tensors is None else f'{tensors:.1f}':>13}"
        lines.append(row)
    r = result.ratios
    key = key_ratio(r)
    lines += ["", f"ratios of medians: {_ratio_text(r)}"]
    if show_cpu and result.cpu_ratios is not None:
        lines.append(
            f"ratios of CPU-time medians (process CPU time, all threads; steadier than wall "
            f"time on a shared CPU): {_ratio_text(result.cpu_ratios)}"
        )
    step, short = ("mutual-learning step", "c/d") if mutual else ("distillation step", "b/c")
    lines.append(
        f"target {short} <= {target:.2f}: "
        + ("MET" if r[key] <= target else "NOT MET")
        + f" ({step} is {100 * (r[key] - 1):+.1f}% over the bound)"
    )
    mid, low, high = result.paired
    clock = "CPU" if show_cpu else "wall"
    shown = (
        "shown within the target"
        if high <= target
        else "shown over the target"
        if low > target
        else "not decided by this run: more --iters narrow it"
    )
    lines.append(
        f"{short} round by round ({clock} time, both on the same batch): median {mid:.3f}, "
        f"95% interval {low:.3f}-{high:.3f}; {shown}"
    )
    system_share = result.system_share or 0.0
    if show_cpu and system_share > SYSTEM_SHARE_HINT:
        lines.append(
            f"note: {100 * system_share:.0f}% of the CPU time was the kernel's, mostly "
            "page faults of the large tensors glibc maps and unmaps at every step; it varies "
            "from round to round and widens the interval. For steadier ratios run with "
            f"{STEADY_MALLOC} (tensors then stay in the heap; see docs/cost.md)"
        )
    if has_mem:
        kind = next(m.memory.kind for m in result.modes.values() if m.memory)
        lines.append(
            f"memory: each mode alone in its own process; peak = {MEMORY_KINDS[kind]}; step = "
            "peak minus what was in use before the first step (models, batches), i.e. "
            "activations, gradients, optimizer state and teacher features"
            + (
                "; tensors = the most tensor memory the steps held at once (torch profiler "
                "allocation events; exact, without what the allocator keeps)"
                if has_tensors
                else ""
            )
        )
        lines.extend(_memory_ratio_lines(result, key))
    return "\n".join(lines)


def _memory_ratio_lines(result: BenchmarkResult, key: str) -> list[str]:
    """The step's memory over its bound's, by each measure both modes have."""
    step, bound = result.modes[step_mode(result.modes)].memory, result.modes["bound"].memory
    if step is None or bound is None:
        return []
    parts = [
        f"{name} {getattr(step, field) / getattr(bound, field):.3f}"
        for name, field in (("step", "step_mb"), ("tensors", "tensor_step_mb"))
        if getattr(step, field) and getattr(bound, field)
    ]
    short = "c/d" if key == "mutual/bound" else "b/c"
    return [f"memory {short}: " + ", ".join(parts)] if parts else []


def _ratio_text(r: dict[str, float]) -> str:
    if "mutual/bound" in r:
        return (
            f"c/d = {r['mutual/bound']:.3f}   c/a = {r['mutual/net1']:.3f}   "
            f"c/b = {r['mutual/net2']:.3f}   d/(a+b) = {r['bound/(net1+net2)']:.3f}"
        )
    return (
        f"b/a = {r['distill/student']:.3f}   b/c = {r['distill/bound']:.3f}   "
        f"c/a = {r['bound/student']:.3f}"
    )


def report_dict(
    result: BenchmarkResult,
    target: float = TARGET_RATIO,
    terms: dict[str, TermCost] | None = None,
) -> dict[str, Any]:
    """The measurement as a JSON-serialisable dict, with the target, whether it is met and the
    per-term costs (``terms``, by term name)."""
    out = result.to_dict()
    out.update(target=target, within_target=result.ratios[key_ratio(result.ratios)] <= target)
    low, high = result.paired[1:]
    out["shown"] = "within" if high <= target else "over" if low > target else "undecided"
    out["terms"] = {name: asdict(cost) for name, cost in (terms or {}).items()}
    out["split"] = [asdict(part) for part in split_excess(result)]
    return out


def memory_in_children(argv: Sequence[str], modes: Sequence[str]) -> dict[str, MemoryResult]:
    """Re-run this script once per mode with ``--only MODE`` and read each mode's memory.

    The children run concurrently: each measures only its own process, and the timing is
    already done, so they disturb nothing that is measured.
    """
    script = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        outs = {mode: Path(tmp) / f"{mode}.json" for mode in modes}
        procs = {
            mode: subprocess.Popen(
                [sys.executable, script, *argv, "--only", mode, "--json", str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for mode, out in outs.items()
        }
        results: dict[str, MemoryResult] = {}
        failures: list[str] = []
        for mode, proc in procs.items():
            log, _ = proc.communicate()
            if proc.returncode != 0 or not outs[mode].exists():
                failures.append(
                    f"memory run of mode {mode!r} failed ({proc.returncode}):\n{log[-3000:]}"
                )
            else:
                results[mode] = MemoryResult(**json.loads(outs[mode].read_text()))
        if failures:
            raise SystemExit("\n".join(failures))
        return results


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with ``--only``, one mode's memory measurement)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not Path(args.config).is_file():
        raise MissingInput(args.config, "config file", "Configs live under configs/<method>/.")
    cfg = load_config(args.config, args.cfg_options, args.batch_size, args.data_root)
    if args.teacher_dtype is not None:
        if "teacher" not in cfg.model:
            raise SystemExit(
                f"--teacher-dtype: the model of {args.config} ({cfg.model.get('type')}) has no "
                "teacher; it applies to a teacher-student distiller"
            )
        cfg.model.teacher_dtype = args.teacher_dtype
        print(f"teacher dtype: {args.teacher_dtype} (--teacher-dtype)", flush=True)
    check_inputs(cfg, ("train",))  # a missing data set or teacher is one line, not a traceback
    if args.only is not None:
        memory = run_memory(cfg, args.only, args.device, args.memory_steps, args.seed)
        text = json.dumps(asdict(memory))
        print(text)
        if args.json:
            Path(args.json).write_text(text)
        return
    cpu_time = torch.device(args.device).type == "cpu"
    try:
        result, terms = run_timing_with_terms(
            cfg,
            args.config,
            args.device,
            args.warmup,
            args.iters,
            args.seed,
            args.term_reps,
            RoundReporter(cpu_time),
            args.split,
        )
    except SplitUnavailable as err:
        raise BadConfig(f"--{err}; drop --split for {args.config}") from None
    if not args.no_memory:
        modes = [m for m in result.modes if m not in SPLIT_MODES]  # the split modes: time only
        for mode, memory in memory_in_children(raw, modes).items():
            result.modes[mode].memory = memory
    print(format_report(result, args.target) + format_terms(terms, result) + format_split(result))
    if args.json:
        Path(args.json).write_text(json.dumps(report_dict(result, args.target, terms), indent=2))


if __name__ == "__main__":
    main()
