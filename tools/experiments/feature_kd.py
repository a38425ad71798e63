"""Measure seed 001's projector + BatchNorm + log-sum distillation and its ablations.

On the digits detection set (RetinaNet, COCO mAP) and the digits classification set
(CIFAR-style ResNet-18, top-1), with one schedule and several seeds per variant:

=============== =====================================================================
student         the student alone
logitkd         logit KD alone (sigmoid KD on the detector's cls head, softmax KL τ=1)
fitnet          logit KD + linear projector, no norm, MSE
pkd             logit KD + linear projector + BatchNorm + log-sum (seed 001)
pkd-frozenproj  pkd with the projector frozen at its random initialisation
pkd-nobn        pkd without BatchNorm (projector + log-sum)
pkd-mse         pkd with the mean (MSE) instead of the log-sum
=============== =====================================================================

The teacher is trained once per task (seed 0) and reused. Every run is a ``tools/train.py``
subprocess on the variant's config under ``configs/demo/`` with ``--cfg-options`` (seed via
``randomness.seed``, schedule, data root, teacher checkpoint), so the measurement goes through
the real training path. A run whose final checkpoint and metric exist is skipped, so an
interrupted sweep resumes where it stopped. Results: ``<out>/feature_kd_<task>.csv`` (one row
per run) and ``<out>/feature_kd.md`` (mean ± std per variant, the teacher beside, the command).
``--readme README.md`` also writes each task's table and the command between the markers
``<!-- feature_kd:<task>-<epochs>ep -->`` and ``<!-- /feature_kd:<task>-<epochs>ep -->`` of
that file (checked before anything trains). ``--diagnose`` trains nothing: it reports, per loss term, the size and direction of its gradient
against the task loss's (``<out>/feature_kd_gradients_<task>.md``).

    python tools/experiments/feature_kd.py --task cls --seeds 0 1 2 --epochs 10 \\
        --teacher-epochs 30 --threads 1 --out outputs/feature_kd --readme README.md
    python tools/experiments/feature_kd.py --task det --dry-run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TRAIN = "tools/train.py"
DIAGNOSE_BATCHES = 4


@dataclass(frozen=True)
class Task:
    """One data set: its teacher, metric and the config of every variant."""

    name: str
    metric: str
    metric_label: str
    scale: float  # multiplies the logged metric for the table (mAP -> percent)
    teacher: str
    variants: dict[str, str]
    default_epochs: int
    milestones: tuple[float, ...]  # MultiStepLR milestones as fractions of the epochs


VARIANT_LABELS = {
    "student": "student alone",
    "logitkd": "logit KD",
    "fitnet": "FitNet: logit KD + projector, MSE",
    "pkd": "seed 001: logit KD + projector + BN + log-sum",
    "pkd-frozenproj": "  ablation: frozen random projector",
    "pkd-nobn": "  ablation: no BN (projector + log-sum)",
    "pkd-mse": "  ablation: mean (projector + BN + MSE)",
}
VARIANTS = tuple(VARIANT_LABELS)

TASKS = {
    "det": Task(
        name="det",
        metric="coco/bbox_mAP",
        metric_label="COCO mAP (%)",
        scale=100.0,
        teacher="configs/demo/retinanet_teacher_digits.py",
        variants={
            "student": "configs/demo/retinanet_student_digits.py",
            "logitkd": "configs/demo/retinanet_sigmoidkd_digits.py",
            "fitnet": "configs/demo/retinanet_fitnet_digits.py",
            "pkd": "configs/demo/retinanet_pkd-logsum_digits.py",
            "pkd-frozenproj": "configs/demo/retinanet_pkd-logsum-frozenproj_digits.py",
            "pkd-nobn": "configs/demo/retinanet_pkd-logsum-nobn_digits.py",
            "pkd-mse": "configs/demo/retinanet_pkd-mse_digits.py",
        },
        default_epochs=24,
        milestones=(16 / 24, 22 / 24),
    ),
    "cls": Task(
        name="cls",
        metric="accuracy/top1",
        metric_label="top-1 (%)",
        scale=1.0,
        teacher="configs/demo/resnet_teacher_digits_cls.py",
        variants={
            "student": "configs/demo/resnet_student_digits_cls.py",
            "logitkd": "configs/demo/resnet_logitkd-tau1_digits_cls.py",
            "fitnet": "configs/demo/resnet_fitnet_digits_cls.py",
            "pkd": "configs/demo/resnet_pkd-logsum_digits_cls.py",
            "pkd-frozenproj": "configs/demo/resnet_pkd-logsum-frozenproj_digits_cls.py",
            "pkd-nobn": "configs/demo/resnet_pkd-logsum-nobn_digits_cls.py",
            "pkd-mse": "configs/demo/resnet_pkd-mse_digits_cls.py",
        },
        default_epochs=30,
        milestones=(),
    ),
}


@dataclass
class Run:
    """One training run: what it trains and where it writes."""

    task: Task
    variant: str  # 'teacher' or a key of VARIANT_LABELS
    seed: int
    config: str
    work_dir: Path
    epochs: int
    cfg_options: list[str]

    @property
    def checkpoint(self) -> Path:
        return self.work_dir / f"epoch_{self.epochs}.pth"

    @property
    def result_file(self) -> Path:
        return self.work_dir / "result.json"

    def command(self) -> list[str]:
        """The ``tools/train.py`` command line (relative to the repository root)."""
        return [
            sys.executable,
            TRAIN,
            self.config,
            "--work-dir",
            str(self.work_dir),
            "--cfg-options",
            *self.cfg_options,
        ]

    def finished(self) -> bool:
        """The final checkpoint exists and the metric was logged (or recorded)."""
        if not self.checkpoint.is_file():
            return False
        return (
            self.result_file.is_file() or read_metric(self.work_dir, self.task.metric) is not None
        )


def schedule_options(task: Task, epochs: int) -> list[str]:
    """``--cfg-options`` that give a config ``epochs`` epochs (scheduler and checkpoint too)."""
    opts = [
        f"train_cfg.max_epochs={epochs}",
        f"train_cfg.val_interval={epochs}",
        f"param_scheduler.1.end={epochs}",
        f"default_hooks.checkpoint.interval={epochs}",
        "default_hooks.checkpoint.max_keep_ckpts=1",
    ]
    if task.milestones:
        marks = sorted({min(epochs, max(1, round(f * epochs))) for f in task.milestones})
        opts.append(f"param_scheduler.1.milestones=[{','.join(map(str, marks))}]")
    return opts


def data_options(task: Task, data_root: Path, num_train: int | None) -> list[str]:
    """``--cfg-options`` pointing every loader (and the COCO evaluator) at ``data_root``."""
    root = f"{data_root}/{task.name}/"
    opts = [
        f"train_dataloader.dataset.data_root={root}",
        f"val_dataloader.dataset.data_root={root}",
        f"test_dataloader.dataset.data_root={root}",
    ]
    if task.name == "det":
        ann = f"{root}annotations/val.json"
        opts += [f"val_evaluator.ann_file={ann}", f"test_evaluator.ann_file={ann}"]
    if num_train is not None:
        opts.append(f"train_dataloader.dataset.indices={num_train}")
    return opts


def student_epochs(task: Task, args: argparse.Namespace) -> int:
    """The students' epochs: ``--epochs`` or the task's configs' own."""
    return args.epochs or task.default_epochs


def plan(task: Task, args: argparse.Namespace) -> tuple[Run, list[Run]]:
    """The teacher run and the variant × seed runs of ``task``."""
    epochs = student_epochs(task, args)
    teacher_epochs = args.teacher_epochs or epochs
    common = data_options(task, args.data_root, args.num_train)
    root = args.work_root / task.name
    teacher = Run(
        task,
        "teacher",
        args.teacher_seed,
        task.teacher,
        root / "teacher",
        teacher_epochs,
        [f"randomness.seed={args.teacher_seed}", *schedule_options(task, teacher_epochs), *common],
    )
    runs = []
    for seed in args.seeds:  # seed-major: a partial sweep already covers every variant
        for variant in args.variants:
            opts = [f"randomness.seed={seed}", *schedule_options(task, epochs), *common]
            if variant != "student":
                opts.append(f"model.teacher_ckpt={teacher.checkpoint}")
            runs.append(
                Run(
                    task,
                    variant,
                    seed,
                    task.variants[variant],
                    root / variant / f"seed{seed}",
                    epochs,
                    opts,
                )
            )
    return teacher, runs


def read_metric(work_dir: Path, key: str) -> float | None:
    """The last value of ``key`` in the newest run's ``vis_data/scalars.json`` (None if absent)."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    for path in reversed(files):
        values = [
            rec[key]
            for line in path.read_text().splitlines()
            if line.strip() and key in (rec := json.loads(line))
        ]
        if values:
            return float(values[-1])
    return None


def result_record(run: Run, value: float, seconds: float | None, note: str) -> dict:
    """One row of the results: what ran, its metric and how long it took."""
    return dict(
        task=run.task.name,
        variant=run.variant,
        seed=run.seed,
        epochs=run.epochs,
        metric=run.task.metric,
        value=value,
        seconds=None if seconds is None else round(seconds, 1),
        note=note,
        config=run.config,
    )


def execute(run: Run, threads: int, log: Callable[[str], None]) -> dict:
    """Train ``run`` (unless finished) and return its result record."""
    if run.finished():
        log(f"skip (done): {run.task.name} {run.variant} seed {run.seed}")
        if not run.result_file.is_file():  # trained by an interrupted sweep: record it now
            value = read_metric(run.work_dir, run.task.metric)
            run.result_file.write_text(json.dumps(result_record(run, value, None, ""), indent=1))
        return json.loads(run.result_file.read_text())
    run.work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONUNBUFFERED="1",
    )
    log(f"train: {run.task.name} {run.variant} seed {run.seed}")
    start = time.time()
    with open(run.work_dir / "train.log", "w") as out:
        proc = subprocess.run(
            run.command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    seconds = time.time() - start
    if proc.returncode != 0 or not run.checkpoint.is_file():
        tail = (run.work_dir / "train.log").read_text()[-4000:]
        raise RuntimeError(
            f"{run.task.name} {run.variant} seed {run.seed} failed (exit {proc.returncode}); "
            f"log {run.work_dir / 'train.log'}:\n{tail}"
        )
    value = read_metric(run.work_dir, run.task.metric)
    note = ""
    if value is None:
        if run.task.name != "det":
            raise RuntimeError(f"{run.work_dir}: no {run.task.metric} was logged")
        # mmdet's CocoMetric logs no mAP when the model made no detection at all: that is 0 AP.
        value, note = 0.0, "no detections"
    result = result_record(run, value, seconds, note)
    run.result_file.write_text(json.dumps(result, indent=1))
    log(f"  {run.task.metric} = {value:.4f} ({seconds:.0f} s)")
    return result


def summarise(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def markdown_table(task: Task, teacher: dict | None, results: list[dict]) -> str:
    """Mean ± std per variant, the teacher first, with the difference to the lone student."""
    scale = task.scale
    by_variant: dict[str, list[dict]] = {}
    for rec in results:
        by_variant.setdefault(rec["variant"], []).append(rec)
    student = by_variant.get("student")
    base = summarise([r["value"] * scale for r in student])[0] if student else None
    lines = [
        f"| variant | {task.metric_label} mean ± std | n | Δ vs student | per seed |",
        "|---|---|---|---|---|",
    ]
    if teacher is not None:
        lines.append(
            f"| teacher (seed {teacher['seed']}, {teacher['epochs']} ep) "
            f"| {teacher['value'] * scale:.2f} | 1 | | |"
        )
    for variant in VARIANTS:
        recs = sorted(by_variant.get(variant, []), key=lambda r: r["seed"])
        if not recs:
            continue
        values = [r["value"] * scale for r in recs]
        mean, std = summarise(values)
        delta = "" if base is None or variant == "student" else f"{mean - base:+.2f}"
        seeds = ", ".join(f"{r['seed']}: {v:.2f}" for r, v in zip(recs, values, strict=True))
        label = VARIANT_LABELS[variant].strip()
        lines.append(f"| {variant} ({label}) | {mean:.2f} ± {std:.2f} | {len(recs)} | {delta} "
                     f"| {seeds} |")  # fmt: skip
    return "\n".join(lines)


def write_outputs(out: Path, sections: list[tuple[Task, dict | None, list[dict]]], cmd: str,
                  notes: list[str]) -> Path:  # fmt: skip
    """Write one CSV per task and one markdown file with every task's table."""
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Feature KD sweep", "", "Command:", "", "```bash", cmd, "```", ""]
    md += [f"* {n}" for n in notes] + [""]
    for task, teacher, results in sections:
        rows = ([teacher] if teacher else []) + results
        with open(out / f"feature_kd_{task.name}.csv", "w", newline="") as f:
            fields = ["task", "variant", "seed", "epochs", "metric", "value", "seconds", "note",
                      "config"]  # fmt: skip
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        md += [f"## {task.name}: {task.metric}", "", markdown_table(task, teacher, results), ""]
    path = out / "feature_kd.md"
    path.write_text("\n".join(md))
    return path


def readme_markers(task: Task, epochs: int) -> tuple[str, str]:
    """The two lines that enclose ``task``'s table at ``epochs`` student epochs in the README."""
    key = f"feature_kd:{task.name}-{epochs}ep"
    return f"<!-- {key} -->", f"<!-- /{key} -->"


def check_readme(path: Path, keys: list[tuple[Task, int]]) -> None:
    """Raise ``SystemExit`` naming the missing markers unless ``path`` has every section."""
    if not path.is_file():
        raise SystemExit(f"--readme {path}: no such file")
    text = path.read_text()
    missing = [
        f"{begin} … {end}"
        for begin, end in (readme_markers(task, ep) for task, ep in keys)
        if not 0 <= text.find(begin) < text.find(end)
    ]
    if missing:
        raise SystemExit(
            f"--readme {path}: add these marker lines, in this order, where the tables "
            f"should go: {'; '.join(missing)}"
        )


def update_readme(path: Path, task: Task, epochs: int, section: str) -> None:
    """Replace what lies between ``task``'s markers in ``path`` with ``section``."""
    begin, end = readme_markers(task, epochs)
    text = path.read_text()
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{section}\n{end}{tail}")


def _summed(value: object) -> Any:
    """A loss entry (a tensor or a list of per-level tensors) as one scalar."""
    return sum(value) if isinstance(value, (list, tuple)) else value


def gradient_diagnostic(task: Task, args: argparse.Namespace) -> str:
    """Per loss term: its value, and the ratio of its gradient norm (w.r.t. the student's
    parameters) to that of the student's own (task) loss and their cosine, averaged over the
    first ``DIAGNOSE_BATCHES`` training batches, at the seeded initialisation and at the end of
    the ``args.seeds[0]`` run (if trained).

    The teacher is the sweep's; a markdown table is returned.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.runner import Runner, set_random_seed

    import kd_det  # noqa: F401

    teacher, runs = plan(task, args)
    if not teacher.checkpoint.is_file():
        raise SystemExit(f"--diagnose needs the sweep's teacher {teacher.checkpoint}")
    root = f"{args.data_root}/{task.name}/"
    lines = [
        "| variant | state | term | value | ‖g‖ / ‖g_task‖ | cos(g, g_task) |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.variant == "student" or run.seed != args.seeds[0]:
            continue
        cfg = Config.fromfile(REPO / run.config)
        cfg.model.teacher_ckpt = str(teacher.checkpoint)
        cfg.train_dataloader.dataset.data_root = root
        cfg.train_dataloader.sampler = dict(type="DefaultSampler", shuffle=False)
        states = [("init", None)] + ([("trained", run.checkpoint)] if run.finished() else [])
        for state, ckpt in states:
            set_random_seed(run.seed)  # python, numpy (the crop augmentation) and torch
            with DefaultScope.overwrite_default_scope(cfg.default_scope):
                model = MODELS.build(cfg.model)
                loader = Runner.build_dataloader(cfg.train_dataloader, seed=run.seed)
                # as the Runner does before training (e.g. RetinaNet's classifier bias prior);
                # the teacher lies outside the module tree and keeps its loaded weights
                model.init_weights()
            if ckpt is not None:
                state_dict = torch.load(ckpt, map_location="cpu", weights_only=False)
                model.load_state_dict(state_dict["state_dict"])
            model.train()
            params = [p for p in model.student.parameters() if p.requires_grad]
            stats: dict[str, list[tuple[float, float, float]]] = {}
            for _, batch in zip(range(DIAGNOSE_BATCHES), loader, strict=False):
                data = model.data_preprocessor(batch, True)
                losses = model.loss(data["inputs"], data["data_samples"])
                terms = {"task": sum(_summed(v) for k, v in losses.items() if "loss" in k
                                     and not k.startswith("distill."))}  # fmt: skip
                terms.update({k: v for k, v in losses.items() if k.startswith("distill.")})
                grads = {}
                for key, value in terms.items():
                    grad = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                    grads[key] = torch.cat(
                        [(g if g is not None else torch.zeros_like(p)).flatten()
                         for g, p in zip(grad, params, strict=True)]
                    )  # fmt: skip
                base = grads["task"]
                for key, grad in grads.items():
                    cos = torch.nn.functional.cosine_similarity(grad, base, dim=0)
                    stats.setdefault(key, []).append(
                        (terms[key].item(), grad.norm().item() / base.norm().item(), cos.item())
                    )
            for key, values in stats.items():
                value, ratio, cos = (statistics.fmean(col) for col in zip(*values, strict=True))
                lines.append(
                    f"| {run.variant} | {state} | {key} | {value:.3f} | {ratio:.2f} | {cos:+.2f} |"
                )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["det", "cls", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--epochs", type=int, default=None, help="student epochs (default: the config's)"
    )
    parser.add_argument(
        "--teacher-epochs", type=int, default=None, help="teacher epochs (default: --epochs)"
    )
    parser.add_argument("--teacher-seed", type=int, default=0)
    parser.add_argument(
        "--num-train", type=int, default=None, help="use the first N training images"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT",
        help=f"subset of {', '.join(VARIANTS)}",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--data-root", type=Path, default=Path("data/digits"))
    parser.add_argument("--work-root", type=Path, default=Path("work_dirs/feature_kd"))
    parser.add_argument("--out", type=Path, default=Path("outputs/feature_kd"))
    parser.add_argument(
        "--readme", type=Path, default=None,
        help="also write each task's table between its feature_kd markers in this file",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="instead of training: gradient of every loss term of the distilled variants on "
        "one batch (seed = first of --seeds), at initialisation and after training",
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "teacher_epochs", "num_train", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.data_root = args.data_root.resolve()
    args.work_root = args.work_root.resolve()
    args.out = args.out.resolve()
    args.variants = [v for v in VARIANTS if v in args.variants]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = shlex.join(["python", "tools/experiments/feature_kd.py", *(argv or sys.argv[1:])])
    tasks = [TASKS[t] for t in (("det", "cls") if args.task == "both" else (args.task,))]

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.dry_run:
        for task in tasks:
            teacher, runs = plan(task, args)
            for run in [teacher, *runs]:
                print(f"# {task.name} {run.variant} seed {run.seed}")
                print(f"(cd {REPO} && OMP_NUM_THREADS={args.threads} {shlex.join(run.command())})")
        return 0

    if args.diagnose:
        args.out.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            table = gradient_diagnostic(task, args)
            text = f"# Gradients per loss term ({task.name})\n\n```bash\n{cmd}\n```\n\n{table}\n"
            (args.out / f"feature_kd_gradients_{task.name}.md").write_text(text)
            print(text)
        return 0

    if args.readme is not None:
        check_readme(args.readme, [(t, student_epochs(t, args)) for t in tasks])
    sections = []
    notes = []
    for task in tasks:
        if not (args.data_root / task.name).is_dir():
            raise SystemExit(
                f"no {task.name} data under {args.data_root}; make it with "
                "`python tools/make_digits.py --out data/digits`"
            )
        teacher, runs = plan(task, args)
        teacher_result = execute(teacher, args.threads, log)
        results = [execute(run, args.threads, log) for run in runs]
        sections.append((task, teacher_result, results))
        total = sum(r["seconds"] or 0.0 for r in [teacher_result, *results])
        epochs = runs[0].epochs if runs else teacher.epochs
        notes.append(
            f"{task.name}: students {epochs} epochs, teacher {teacher.epochs} epochs, "
            f"seeds {args.seeds}, {args.threads} thread(s) per run, "
            f"{total / 60:.1f} min of training in total (this invocation's runs and earlier ones)"
        )
    path = write_outputs(args.out, sections, cmd, notes)
    if args.readme is not None:
        for (task, teacher_result, results), note in zip(sections, notes, strict=True):
            table = markdown_table(task, teacher_result, results)
            section = f"```bash\n{cmd}\n```\n\n{note}.\n\n{table}"
            update_readme(args.readme, task, student_epochs(task, args), section)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
