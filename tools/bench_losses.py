"""What the distillation losses cost alone: kd_det's fused sweeps against the composed chain.

    python tools/bench_losses.py [--size full|digits] [--reps 5] [--threads 1]
                                 [--previous OLD_FUSED.py] [--compile]
    python tools/bench_losses.py --step CONFIG --previous OLD_FUSED.py [--reps 40]
                                 [--batch-size 8] [--data-root DIR] [--cfg-options k=v ...]

For each loss (MSE, SRD's log-sum at α = 4, sigmoid KD normalised by the teacher's sum) the
forward and backward over every FPN level of one batch, on random maps of the real shapes:

* ``full``: RetinaNet at 1344 × 800, batch 2 — P3–P7 (100 × 168 … 7 × 11), 256-channel
  features and 720 logits (9 anchors × 80 classes) per location;
* ``digits``: the digits RetinaNet at 128 px, batch 8 — 16 × 16, 8 × 8, 4 × 4, 96-channel
  features and 90 logits.

Columns: the composed chain of tensor operations (``F.mse_loss``, ``log Σ`` through
``log_sum_pow``, ``binary_cross_entropy_with_logits``), kd_det's loss module, and with
``--previous`` a ``kd_det/losses/_fused.py`` saved from another commit
(``git show COMMIT:kd_det/losses/_fused.py > old.py``), all interleaved rep by rep; CPU-time
medians (process time) on the CPU. With ``--compile``, also the composed chain through
``torch.compile``; its first call, which compiles, is timed apart and not in the medians. Each
run also checks that the forms give the same value.

With ``--step CONFIG`` the whole training step instead: the lower bound (student step + teacher
forward, as in ``tools/benchmark.py``), the distillation step with kd_det's losses and the same
step with the ``--previous`` fused log-sum and sigmoid KD and ``F.mse_loss`` swapped in,
interleaved round by round on the same batches (random weights, learning rate 0: the weights
stay put, so every round times the same arithmetic).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from mmengine.config import DictAction
from torch import Tensor

from kd_det.losses import LogSumLoss, MSEFeatureLoss, SigmoidKDLoss
from kd_det.losses.feature import log_sum_pow

SIZES = {
    "full": (2, 256, 720, [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]),
    "digits": (8, 96, 90, [(16, 16), (8, 8), (4, 4)]),
}

Loss = Callable[[Tensor, Tensor], Tensor]


def _composed_sigmoid_kd(s: Tensor, t: Tensor) -> Tensor:
    p = torch.sigmoid(t)
    return F.binary_cross_entropy_with_logits(s, p, reduction="sum") / p.sum().clamp_min(1.0)


def losses(previous: ModuleType | None) -> dict[str, dict[str, Loss]]:
    """Per loss: the composed chain, kd_det's module and (if given) the previous fused form."""
    table: dict[str, dict[str, Loss]] = {
        "MSE": {
            "composed": lambda s, t: F.mse_loss(s, t.detach()),
            "kd_det": MSEFeatureLoss(),
        },
        "log-sum, α 4": {
            "composed": lambda s, t: log_sum_pow(s - t.detach(), 4.0, 1e-6),
            "kd_det": LogSumLoss(alpha=4.0, loss_weight=1.0),
        },
        "sigmoid KD, teacher_sum": {
            "composed": _composed_sigmoid_kd,
            "kd_det": SigmoidKDLoss(normalize="teacher_sum"),
        },
    }
    if previous is not None:
        table["MSE"]["previous"] = table["MSE"]["composed"]  # F.mse_loss before the sweep
        table["log-sum, α 4"]["previous"] = lambda s, t: previous.fused_log_sum_pow_diff(
            s, t, 4.0, 1e-6
        )

        def sigmoid(s: Tensor, t: Tensor) -> Tensor:
            total, conf = previous.fused_sigmoid_bce_sum(s, t, 1.0, True)
            return total / conf.clamp_min(1.0)

        table["sigmoid KD, teacher_sum"]["previous"] = sigmoid
    return table


def maps(size: str, kind: str, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """(student, teacher) per level: features ~ N(0, 1), logits ~ N(−4, 2) (background-like)."""
    batch, features, logits, levels = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    width = features if kind == "features" else logits
    out = []
    for h, w in levels:
        s, t = (torch.randn(batch, width, h, w, generator=gen) for _ in range(2))
        if kind == "logits":
            s, t = s * 2 - 4, t * 2 - 4
        out.append((s, t))
    return out


def one_step(loss: Loss, pairs: list[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """CPU ms of the loss's forward and backward over every level, and its value."""
    leaves = [s.clone().requires_grad_(True) for s, _ in pairs]
    start = time.process_time()
    # ``leaf * 1.0``: in a network the loss's input is an activation, not a leaf (whose
    # gradient autograd would copy when the loss keeps a reference to it)
    total = sum(loss(leaf * 1.0, t) for leaf, (_, t) in zip(leaves, pairs, strict=True))
    total.backward()  # type: ignore[union-attr]
    return (time.process_time() - start) * 1e3, float(total.detach())  # type: ignore[union-attr]


def load_previous(path: Path) -> ModuleType:
    if not path.is_file():
        raise SystemExit(f"--previous: no file {path}; save one with "
                         "`git show COMMIT:kd_det/losses/_fused.py > old_fused.py`")  # fmt: skip
    spec = importlib.util.spec_from_file_location("previous_fused", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run(
    size: str, reps: int, previous: ModuleType | None, compile_: bool = False
) -> list[dict[str, object]]:
    rows = []
    for name, forms in losses(previous).items():
        pairs = maps(size, "logits" if "sigmoid" in name else "features")
        first: dict[str, float] = {}
        if compile_:
            forms["compiled"] = torch.compile(forms["composed"])
            start = time.perf_counter()
            one_step(forms["compiled"], pairs)
            first["compile s"] = time.perf_counter() - start
        times: dict[str, list[float]] = {form: [] for form in forms}
        values = {form: one_step(fn, pairs)[1] for form, fn in forms.items()}  # warm-up
        for _ in range(reps):
            for form, fn in forms.items():
                times[form].append(one_step(fn, pairs)[0])
        ref = values["composed"]
        for form, value in values.items():
            if abs(value - ref) > 1e-4 * max(abs(ref), 1.0):
                raise SystemExit(f"{name}: {form} gives {value}, the composed chain {ref}")
        rows.append({"loss": name, **{f: statistics.median(v) for f, v in times.items()}, **first})
    return rows


def report(rows: list[dict[str, object]], size: str, reps: int) -> str:
    forms = [f for f in ("composed", "previous", "compiled", "kd_det") if f in rows[0]]
    ratios = [f for f in ("composed", "previous", "compiled") if f in forms]
    head = " | ".join(f"{f} ms" for f in forms)
    compiled = "compiled" in forms
    lines = [
        f"{size} size: forward + backward over every level, CPU ms (median of {reps}, "
        f"{torch.get_num_threads()} thread(s)), forms interleaved",
        "",
        f"| loss | {head} | " + " | ".join(f"kd_det / {f}" for f in ratios) + " |"
        + (" first compiled call, s |" if compiled else ""),
        "|---|" + "---|" * (len(forms) + len(ratios) + compiled),
    ]  # fmt: skip
    for row in rows:
        cells = " | ".join(f"{row[f]:.1f}" for f in forms)
        cells += "".join(f" | {row['kd_det'] / row[f]:.2f}" for f in ratios)  # type: ignore[operator]
        if compiled:
            cells += f" | {row['compile s']:.1f}"
        lines.append(f"| {row['loss']} | {cells} |")
    return "\n".join(lines)


@contextlib.contextmanager
def previous_losses(previous: ModuleType) -> Iterator[None]:
    """kd_det's loss modules computing with ``previous``'s fused functions (and MSE with
    ``F.mse_loss``) inside the block."""
    import kd_det.losses.feature as feature
    import kd_det.losses.sigmoid_kd as sigmoid_kd

    def mse(self: MSEFeatureLoss, student: Tensor, teacher: Tensor) -> Tensor:
        s, t = feature.check_pair(student, teacher, name="MSEFeatureLoss")
        return self.loss_weight * F.mse_loss(s, t)

    saved = (feature.fused_log_sum_pow_diff, sigmoid_kd.fused_sigmoid_bce_sum,
             MSEFeatureLoss.forward)  # fmt: skip
    feature.fused_log_sum_pow_diff = previous.fused_log_sum_pow_diff
    sigmoid_kd.fused_sigmoid_bce_sum = previous.fused_sigmoid_bce_sum
    MSEFeatureLoss.forward = mse  # type: ignore[method-assign]
    try:
        yield
    finally:
        (feature.fused_log_sum_pow_diff, sigmoid_kd.fused_sigmoid_bce_sum,
         MSEFeatureLoss.forward) = saved  # fmt: skip


def step_report(args: argparse.Namespace, previous: ModuleType) -> str:
    """The ``--step`` mode: bound, current and previous distillation steps, interleaved."""
    from kd_det.benchmark import build_steps, load_config, prepare, time_interleaved

    options = {"model.teacher_ckpt": None, "optim_wrapper.optimizer.lr": 0.0,
               **(args.cfg_options or {})}  # fmt: skip
    cfg = load_config(args.step, options, args.batch_size, args.data_root)
    distiller, batches = prepare(cfg, "cpu", 4, 0)
    steps = build_steps(distiller, cfg.optim_wrapper)

    def before(batch: object) -> None:
        with previous_losses(previous):
            steps["distill"](batch)

    modes = {"bound": steps["bound"], "kd_det": steps["distill"], "previous": before}
    times = time_interleaved(modes, batches, 2, args.reps, "cpu")
    medians = {m: statistics.median(v) for m, v in times.cpu_ms.items()}
    lines = [
        f"{args.step}: {args.reps} rounds after 2 warm-up, CPU-time medians, "
        f"{torch.get_num_threads()} thread(s), modes interleaved",
        "",
        "| mode | CPU ms | IQR ms | / bound |",
        "|---|---|---|---|",
    ]
    for mode, values in times.cpu_ms.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        lines.append(f"| {mode} | {medians[mode]:.1f} | {q[2] - q[0]:.1f} "
                     f"| {medians[mode] / medians['bound']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--reps", type=int, default=5, help="timed reps per form (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--previous", type=Path, default=None,
                        help="a kd_det/losses/_fused.py from another commit")  # fmt: skip
    parser.add_argument("--compile", action="store_true",
                        help="also time the composed chain through torch.compile")  # fmt: skip
    parser.add_argument("--step", default=None, metavar="CONFIG",
                        help="time whole training steps of this distillation config")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, help="(--step) batch size")
    parser.add_argument("--data-root", default=None, help="(--step) train data root")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                        help="(--step) config overrides")  # fmt: skip
    args = parser.parse_args(argv)
    if args.step and not args.previous:
        parser.error("--step compares with --previous OLD_FUSED.py; give one")
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    previous = load_previous(args.previous) if args.previous else None
    if args.step:
        print(step_report(args, previous))  # type: ignore[arg-type]
        return 0
    print(report(run(args.size, args.reps, previous, args.compile), args.size, args.reps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
