"""Per-iteration time and peak memory of distillation against its lower bound.

    python tools/benchmark.py CONFIG [--device cpu|cuda] [--iters 20] [--warmup 5]
                              [--batch-size N] [--data-root DIR] [--cfg-options k=v ...]
                              [--json OUT] [--threads N] [--no-memory]

Times three modes side by side in one process, interleaved round by round on the same
preprocessed batches (see :mod:`kd_det.benchmark`): (a) the student trained alone, (b) the
distillation step, (c) the lower bound (a) + the teacher's forward to the deepest needed layer.
Then measures each mode's peak memory in a child process of its own (``--only MODE``;
the three run concurrently after the timing).
The target is b/c <= 1.05. Example on the digits pair without a trained teacher::

    python tools/benchmark.py configs/demo/retinanet_pkd-logsum_digits.py --batch-size 8 \\
        --cfg-options model.teacher_ckpt=None
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

import torch
from mmengine.config import DictAction

from kd_det.benchmark import MODES, MemoryResult, load_config, run_memory, run_timing


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
        "--threads", type=int, help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the weights")
    parser.add_argument(
        "--memory-steps", type=int, default=3, help="steps each memory child runs (default 3)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument(
        "--only", choices=MODES, help="(internal) measure the memory of one mode and exit"
    )
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.memory_steps < 1:
        parser.error("need --iters >= 1, --warmup >= 0 and --memory-steps >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


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
    cfg = load_config(args.config, args.cfg_options, args.batch_size, args.data_root)
    if args.only is not None:
        memory = run_memory(cfg, args.only, args.device, args.memory_steps, args.seed)
        text = json.dumps(asdict(memory))
        print(text)
        if args.json:
            Path(args.json).write_text(text)
        return
    result = run_timing(cfg, args.config, args.device, args.warmup, args.iters, args.seed)
    if not args.no_memory:
        for mode, memory in memory_in_children(raw, MODES).items():
            result.modes[mode].memory = memory
    print(result.format())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
