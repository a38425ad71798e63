"""Measure SRD (projector + affine-free BatchNorm + log-sum feature distillation) and its
ablations against logit KD and FitNet, over several seeds.

SRD is the method of "Understanding the Role of the Projector in Knowledge Distillation"
(Miles & Mikolajczyk, AAAI 2024, arXiv:2303.11098). On the digits detection set (RetinaNet,
COCO mAP) and the digits classification set (CIFAR-style ResNet-18, top-1), one schedule and
several seeds per variant:

=============== =====================================================================
student         the student alone
logitkd         logit KD alone (sigmoid KD on the detector's cls head, softmax KL τ=1)
fitnet          logit KD + linear projector, no norm, MSE
srd             logit KD + linear projector + BatchNorm + log-sum
srd-frozenproj  srd with the projector frozen at its random initialisation
srd-nobn        srd without BatchNorm (projector + log-sum)
srd-mse         srd with the mean (MSE) instead of the log-sum
=============== =====================================================================

The teacher is trained once per task (seed ``--teacher-seed``) and reused. Every run is a
``tools/train.py`` subprocess on the variant's config with ``--cfg-options`` (seed via
``randomness.seed``, schedule, data root, teacher checkpoint), so the measurement goes through
the real training path. A run whose final checkpoint and metric exist is skipped, so an
interrupted sweep resumes where it stopped. Three steps:

* train (default): every run not yet finished, then the report;
* report (``--report-only``): from finished runs only, ``<out>/feature_kd_<task>.csv`` (one row
  per run) and ``<out>/feature_kd.md`` (mean ± std per variant, the teacher beside, the
  command); ``--readme README.md`` also writes each task's table and the command between the
  markers ``<!-- feature_kd:<task>-<epochs>ep -->`` and ``<!-- /feature_kd:<task>-<epochs>ep -->``
  of that file (checked before anything trains);
* diagnose (``--diagnose``): trains nothing; per loss term of each distilled variant, the size
  and direction of its gradient against the task loss's, at initialisation and trained
  (``<out>/feature_kd_gradients_<task>.md``, see ``gradients.py``).

    python tools/experiments/feature_kd.py --task cls --seeds 0 1 2 --epochs 10 \\
        --teacher-epochs 30 --threads 1 --out outputs/feature_kd --readme README.md
    python tools/experiments/feature_kd.py --task det --dry-run
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make tools.experiments importable
    sys.path.insert(0, str(REPO))

from tools.experiments.common import (  # noqa: E402
    Run,
    check_readme,
    execute,
    mean_std_table,
    recorded,
    schedule_options,
    update_readme,
    write_csv,
)
from tools.experiments.gradients import TABLE_HEAD, table_rows, term_gradients  # noqa: E402

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
    missing_value: float | None = None  # reported when the metric was not logged
    missing_note: str = ""


VARIANT_LABELS = {
    "student": "student alone",
    "logitkd": "logit KD",
    "fitnet": "FitNet: logit KD + projector, MSE",
    "srd": "SRD: logit KD + projector + BN + log-sum",
    "srd-frozenproj": "  ablation: frozen random projector",
    "srd-nobn": "  ablation: no BN (projector + log-sum)",
    "srd-mse": "  ablation: mean (projector + BN + MSE)",
}
VARIANTS = tuple(VARIANT_LABELS)

TASKS = {
    "det": Task(
        name="det",
        metric="coco/bbox_mAP",
        metric_label="COCO mAP (%)",
        scale=100.0,
        teacher="configs/baselines/retinanet_r18-w32_fpn_24e_digits.py",
        variants={
            "student": "configs/baselines/retinanet_r18-w8_fpn_24e_digits.py",
            "logitkd": "configs/kd/sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py",
            "fitnet": "configs/fitnet/fitnet_retinanet-w32-w8_fpn_24e_digits.py",
            "srd": "configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py",
            "srd-frozenproj": "configs/srd/srd-frozenproj_retinanet-w32-w8_fpn_24e_digits.py",
            "srd-nobn": "configs/srd/srd-nobn_retinanet-w32-w8_fpn_24e_digits.py",
            "srd-mse": "configs/srd/srd-mse_retinanet-w32-w8_fpn_24e_digits.py",
        },
        default_epochs=24,
        milestones=(16 / 24, 22 / 24),
        # mmdet's CocoMetric logs no mAP when the model made no detection at all: that is 0 AP
        missing_value=0.0,
        missing_note="no detections",
    ),
    "cls": Task(
        name="cls",
        metric="accuracy/top1",
        metric_label="top-1 (%)",
        scale=1.0,
        teacher="configs/baselines/resnet18-w32_30e_digits-cls.py",
        variants={
            "student": "configs/baselines/resnet18-w8_30e_digits-cls.py",
            "logitkd": "configs/kd/kd_resnet18-w32-w8_30e_digits-cls.py",
            "fitnet": "configs/fitnet/fitnet_resnet18-w32-w8_30e_digits-cls.py",
            "srd": "configs/srd/srd_resnet18-w32-w8_30e_digits-cls.py",
            "srd-frozenproj": "configs/srd/srd-frozenproj_resnet18-w32-w8_30e_digits-cls.py",
            "srd-nobn": "configs/srd/srd-nobn_resnet18-w32-w8_30e_digits-cls.py",
            "srd-mse": "configs/srd/srd-mse_resnet18-w32-w8_30e_digits-cls.py",
        },
        default_epochs=30,
        milestones=(),
    ),
}


def data_options(task: Task, data_root: Path, num_train: int | None) -> list[str]:
    """``--cfg-options`` pointing every loader (and the COCO evaluator) at ``data_root``."""
    root = f"{data_root}/{task.name}/"
    opts = [f"{loader}.dataset.data_root={root}"
            for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]  # fmt: skip
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
    """The teacher run and the seed × variant runs of ``task`` (seed-major: a partial sweep
    already covers every variant)."""
    epochs = student_epochs(task, args)
    teacher_epochs = args.teacher_epochs or epochs
    data = data_options(task, args.data_root, args.num_train)
    root = args.work_root / task.name

    def run(variant: str, seed: int, config: str, work_dir: Path, ep: int, extra: list[str]):
        opts = [f"randomness.seed={seed}", *schedule_options(ep, task.milestones), *data, *extra]
        return Run(task.name, variant, seed, config, work_dir, ep, opts, task.metric,
                   task.missing_value, task.missing_note)  # fmt: skip

    teacher = run("teacher", args.teacher_seed, task.teacher, root / "teacher", teacher_epochs,
                  [])  # fmt: skip
    runs = [
        run(variant, seed, task.variants[variant], root / variant / f"seed{seed}", epochs,
            [] if variant == "student" else [f"model.teacher_ckpt={teacher.checkpoint}"])
        for seed in args.seeds
        for variant in args.variants
    ]  # fmt: skip
    return teacher, runs


def readme_key(task: Task, epochs: int) -> str:
    """The README section of ``task``'s table at ``epochs`` student epochs."""
    return f"feature_kd:{task.name}-{epochs}ep"


def write_report(
    args: argparse.Namespace,
    cmd: str,
    sections: list[tuple[Task, Run, dict, list[dict]]],
) -> Path:
    """The report step: one CSV per task, ``feature_kd.md`` with every task's table, and (with
    ``--readme``) each table between its README markers."""
    args.out.mkdir(parents=True, exist_ok=True)
    notes, tables = [], []
    for task, teacher_run, teacher, results in sections:
        total = sum(r["seconds"] or 0.0 for r in [teacher, *results])
        notes.append(
            f"{task.name}: students {student_epochs(task, args)} epochs, teacher "
            f"{teacher_run.epochs} epochs, seeds {args.seeds}, {args.threads} thread(s) per run, "
            f"{total / 60:.1f} min of training in total (this invocation's runs and earlier ones)"
        )
        write_csv(args.out / f"feature_kd_{task.name}.csv", [teacher, *results])
        tables.append(
            mean_std_table(results, VARIANT_LABELS, task.metric_label, task.scale, teacher)
        )
    md = ["# Feature KD sweep", "", "Command:", "", "```bash", cmd, "```", ""]
    md += [f"* {n}" for n in notes] + [""]
    for (task, *_), table in zip(sections, tables, strict=True):
        md += [f"## {task.name}: {task.metric}", "", table, ""]
    path = args.out / "feature_kd.md"
    path.write_text("\n".join(md))
    if args.readme is not None:
        for (task, *_), note, table in zip(sections, notes, tables, strict=True):
            section = f"```bash\n{cmd}\n```\n\n{note}.\n\n{table}"
            update_readme(args.readme, readme_key(task, student_epochs(task, args)), section)
    return path


def diagnose(task: Task, args: argparse.Namespace) -> str:
    """The gradient step: a markdown table of every loss term of each distilled variant of
    the first seed, at its seeded initialisation and, if trained, at the end of its run."""
    teacher, runs = plan(task, args)
    if not teacher.checkpoint.is_file():
        raise SystemExit(f"--diagnose needs the sweep's teacher {teacher.checkpoint}")
    options = {
        "model.teacher_ckpt": str(teacher.checkpoint),
        "train_dataloader.dataset.data_root": f"{args.data_root}/{task.name}/",
    }
    lines = list(TABLE_HEAD)
    for run in runs:
        if run.variant == "student" or run.seed != args.seeds[0]:
            continue
        states = [("init", None)] + ([("trained", run.checkpoint)] if run.finished() else [])
        for state, ckpt in states:
            terms = term_gradients(REPO / run.config, options, ckpt, run.seed, DIAGNOSE_BATCHES)
            lines += table_rows(run.variant, state, terms)
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
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--dry-run", action="store_true", help="print the commands only")
    steps.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the tables (and --readme) from the finished runs",
    )
    steps.add_argument(
        "--diagnose",
        action="store_true",
        help="train nothing: gradient of every loss term of the distilled variants on the "
        "first batches (seed = first of --seeds), at initialisation and after training",
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

    if args.dry_run:
        for task in tasks:
            teacher, runs = plan(task, args)
            for run in [teacher, *runs]:
                print(f"# {run.name}")
                print(f"(cd {REPO} && OMP_NUM_THREADS={args.threads} {shlex.join(run.command())})")
        return 0

    if args.diagnose:
        args.out.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            text = (f"# Gradients per loss term ({task.name})\n\n```bash\n{cmd}\n```\n\n"
                    f"{diagnose(task, args)}\n")  # fmt: skip
            (args.out / f"feature_kd_gradients_{task.name}.md").write_text(text)
            print(text)
        return 0

    if args.readme is not None:
        check_readme(args.readme, [readme_key(t, student_epochs(t, args)) for t in tasks])
    sections = []
    for task in tasks:
        teacher, runs = plan(task, args)
        if args.report_only:
            sections.append((task, teacher, recorded(teacher), [recorded(r) for r in runs]))
            continue
        if not (args.data_root / task.name).is_dir():
            raise SystemExit(
                f"no {task.name} data under {args.data_root}; make it with "
                "`python tools/make_digits.py --out data/digits`"
            )
        teacher_result = execute(teacher, args.threads)
        results = [execute(run, args.threads) for run in runs]
        sections.append((task, teacher, teacher_result, results))
    print(write_report(args, cmd, sections).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
