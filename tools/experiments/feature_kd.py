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
    gap_closed,
    mean_std_table,
    recorded,
    schedule_options,
    summarise,
    teachers_suffix,
    train_all,
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
    #: the variants run when ``--variants`` is not given (the SRD sweep); the others of
    #: ``variants`` are opt-in (the detection-methods study)
    default_variants: tuple[str, ...] = ()


VARIANT_LABELS = {
    "student": "student alone",
    "logitkd": "logit KD",
    "fitnet": "FitNet: logit KD + projector, MSE",
    "srd": "SRD: logit KD + projector + BN + log-sum",
    "srd-frozenproj": "  ablation: frozen random projector",
    "srd-nobn": "  ablation: no BN (projector + log-sum)",
    "srd-mse": "  ablation: mean (projector + BN + MSE)",
    "sigmoidkd-ts": "sigmoid KD alone, normalised by the teacher's summed confidence",
    "cwd": "CWD: projector, channel-wise spatial softmax KL, tau 1",
    "pkd": "PKD: projector, per-channel standardised maps, MSE / 2",
    "srd-mse-fpnonly": "projector + BN + MSE on the FPN, no logit term",
    "srd-mse-sigmoidkd": "projector + BN + MSE on the FPN + teacher-normalised sigmoid KD",
}
VARIANTS = tuple(VARIANT_LABELS)
SRD_SWEEP = ("student", "logitkd", "fitnet", "srd", "srd-frozenproj", "srd-nobn", "srd-mse")

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
            "sigmoidkd-ts": "configs/kd/sigmoidkd-teachersum_retinanet-w32-w8_fpn_24e_digits.py",
            "cwd": "configs/cwd/cwd_retinanet-w32-w8_fpn_24e_digits.py",
            "pkd": "configs/pkd/pkd_retinanet-w32-w8_fpn_24e_digits.py",
            "srd-mse-fpnonly": "configs/srd/srd-mse-fpnonly_retinanet-w32-w8_fpn_24e_digits.py",
            "srd-mse-sigmoidkd": "configs/srd/srd-mse-sigmoidkd_retinanet-w32-w8_fpn_24e_digits.py",
        },
        default_variants=SRD_SWEEP,
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
        default_variants=SRD_SWEEP,
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


def task_variants(task: Task, args: argparse.Namespace) -> list[str]:
    """``--variants`` (checked to exist for ``task``) or the task's default sweep, in the
    order of ``VARIANTS``."""
    return [v for v in VARIANTS if v in (args.variants or task.default_variants)]


def plan(
    task: Task, args: argparse.Namespace, teacher_seed: int | None = None
) -> tuple[Run, list[Run]]:
    """The teacher run (seed ``teacher_seed``, default the first of ``--teacher-seed``) and
    the seed × variant runs distilled from it (seed-major: a partial sweep already covers
    every variant). One teacher seed keeps ``<work-root>/<task>/``; with several, each
    teacher and its students live in ``<work-root>/t<seed>/<task>/``."""
    teacher_seed = args.teacher_seed[0] if teacher_seed is None else teacher_seed
    epochs = student_epochs(task, args)
    teacher_epochs = args.teacher_epochs or epochs
    data = data_options(task, args.data_root, args.num_train)
    lr = [f"optim_wrapper.optimizer.lr={args.lr}"] if args.lr else []
    root = args.work_root / task.name
    if len(args.teacher_seed) > 1:
        root = args.work_root / f"t{teacher_seed}" / task.name

    def run(variant: str, seed: int, config: str, work_dir: Path, ep: int, extra: list[str]):
        opts = [f"randomness.seed={seed}", *schedule_options(ep, task.milestones), *data, *extra]
        return Run(task.name, variant, seed, config, work_dir, ep, opts, task.metric,
                   task.missing_value, task.missing_note)  # fmt: skip

    teacher = run("teacher", teacher_seed, task.teacher, root / "teacher", teacher_epochs, [])
    teach = [f"model.teacher_ckpt={teacher.checkpoint}"]
    runs = [
        run(variant, seed, task.variants[variant], root / variant / f"seed{seed}", epochs,
            lr if variant == "student" else [*lr, *teach])
        for seed in args.seeds
        for variant in task_variants(task, args)
    ]  # fmt: skip
    return teacher, runs


def readme_key(task: Task, args: argparse.Namespace) -> str:
    """The README section of ``task``'s tables: its student epochs and, with several
    teachers, their seeds (``feature_kd:det-4ep-t0-1``)."""
    return f"feature_kd:{task.name}-{student_epochs(task, args)}ep" + teachers_suffix(
        args.teacher_seed
    )


@dataclass(frozen=True)
class Section:
    """One teacher's part of the report: its run and record and its students' records."""

    task: Task
    teacher_run: Run
    teacher_rec: dict
    results: list[dict]


def teacher_spread(task: Task, sections: list[Section]) -> str:
    """With several teachers: per variant, its mean ± std and closed gap against each
    teacher, the mean ± std over every (teacher, seed) run, and how much of that spread the
    teacher explains (std of the per-teacher means against the mean within-teacher std)."""
    seeds = [sec.teacher_rec["seed"] for sec in sections]
    head = " | ".join(f"teacher seed {k}" for k in seeds)
    lines = [
        f"| variant | {head} | all runs | std of the teacher means | mean std within a teacher |",
        "|---|" + "---|" * (len(seeds) + 3),
        "| teacher | "
        + " | ".join(f"{sec.teacher_rec['value'] * task.scale:.2f}" for sec in sections)
        + " | | | |",  # fmt: skip
    ]
    by_teacher = []
    for sec in sections:
        values: dict[str, list[float]] = {}
        for rec in sec.results:
            values.setdefault(rec["variant"], []).append(rec["value"] * task.scale)
        by_teacher.append(values)
    for variant, label in VARIANT_LABELS.items():
        if not all(variant in values for values in by_teacher):
            continue
        cells, means, stds = [], [], []
        for sec, values in zip(sections, by_teacher, strict=True):
            mean, std = summarise(values[variant])
            means.append(mean)
            stds.append(std)
            cell = f"{mean:.2f} ± {std:.2f}"
            if variant != "student" and "student" in values:
                base = summarise(values["student"])[0]
                cell += (
                    f" ({gap_closed(mean, base, sec.teacher_rec['value'] * task.scale - base)} %)"
                )
            cells.append(cell)
        pooled = summarise([v for values in by_teacher for v in values[variant]])
        between = summarise(means)[1]
        within = sum(stds) / len(stds)
        lines.append(f"| {variant} ({label.strip()}) | {' | '.join(cells)} "
                     f"| {pooled[0]:.2f} ± {pooled[1]:.2f} | {between:.2f} | {within:.2f} |")  # fmt: skip
    return "\n".join(lines)


def study_plot(task: Task, sections: list[Section], path: Path) -> None:
    """One panel per teacher: each variant's mean ± std over seeds (dots: the seeds), the
    student alone and the teacher as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sections), figsize=(5.5 * len(sections), 4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, sec in zip(axes[0], sections, strict=True):
        values: dict[str, list[float]] = {}
        for rec in sec.results:
            values.setdefault(rec["variant"], []).append(rec["value"] * task.scale)
        order = [v for v in VARIANT_LABELS if v in values]
        for x, variant in enumerate(order):
            mean, std = summarise(values[variant])
            colour = "grey" if variant == "student" else "C0"
            ax.errorbar(x, mean, yerr=std, fmt="o", color=colour, capsize=4, ms=7)
            ax.scatter([x] * len(values[variant]), values[variant], color="k", s=10, zorder=3)
        ax.axhline(sec.teacher_rec["value"] * task.scale, color="C3", lw=1, label="teacher")
        if "student" in values:
            ax.axhline(summarise(values["student"])[0], color="grey", lw=0.8, ls="--",
                       label="student alone (mean)")  # fmt: skip
        ax.set_xticks(range(len(order)), order, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"digits {task.name}, teacher seed {sec.teacher_rec['seed']}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel(task.metric_label)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args: argparse.Namespace, cmd: str, sections: list[Section]) -> Path:
    """The report step: one CSV per task and teacher, ``feature_kd.md`` with every table
    (each with the share of the teacher–student gap closed; with several teachers also
    :func:`teacher_spread` and the figure ``feature_kd_<task>.png``, :func:`study_plot`), and
    (with ``--readme``) each task's tables between its markers."""
    args.out.mkdir(parents=True, exist_ok=True)
    md = ["# Feature KD sweep", "", "Command:", "", "```bash", cmd, "```", ""]
    readme: dict[str, list[str]] = {}
    for name in dict.fromkeys(sec.task.name for sec in sections):
        own = [sec for sec in sections if sec.task.name == name]
        task = own[0].task
        total = sum(r["seconds"] or 0.0 for sec in own for r in [sec.teacher_rec, *sec.results])
        lr = f", lr {args.lr}" if args.lr else ""
        note = (
            f"{task.name}: students {student_epochs(task, args)} epochs{lr}, teacher "
            f"{own[0].teacher_run.epochs} epochs (seed {', '.join(str(s.teacher_rec['seed']) for s in own)}), "
            f"seeds {args.seeds}, {args.threads} thread(s) per run, "
            f"{total / 60:.1f} min of training in total (this invocation's runs and earlier ones)"
        )
        parts = [f"{note}."]
        for sec in own:
            suffix = f"_t{sec.teacher_rec['seed']}" if len(own) > 1 else ""
            write_csv(args.out / f"feature_kd_{task.name}{suffix}.csv",
                      [sec.teacher_rec, *sec.results])  # fmt: skip
            table = mean_std_table(sec.results, VARIANT_LABELS, task.metric_label, task.scale,
                                   sec.teacher_rec, gap=True)  # fmt: skip
            title = f"Teacher seed {sec.teacher_rec['seed']}:\n\n" if len(own) > 1 else ""
            parts.append(f"{title}{table}")
        if len(own) > 1:
            study_plot(task, own, args.out / f"feature_kd_{task.name}.png")
            parts.append("Over the teachers (closed share of each teacher's gap in brackets):"
                         f"\n\n{teacher_spread(task, own)}")  # fmt: skip
        md += [f"## {task.name}: {task.metric}", "", *[f"{p}\n" for p in parts]]
        readme[readme_key(task, args)] = parts
    path = args.out / "feature_kd.md"
    path.write_text("\n".join(md))
    if args.readme is not None:
        for key, parts in readme.items():
            update_readme(args.readme, key, f"```bash\n{cmd}\n```\n\n" + "\n\n".join(parts))
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
    parser.add_argument(
        "--teacher-seed", type=int, nargs="+", default=[0],
        help="one teacher per seed, each with its own students (<work-root>/t<seed>/ when several)",
    )  # fmt: skip
    parser.add_argument("--lr", type=float, default=None, help="the students' learning rate")
    parser.add_argument(
        "--num-train", type=int, default=None, help="use the first N training images"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=None, metavar="VARIANT",
        help=f"of {', '.join(VARIANTS)} (default: the SRD sweep, {' '.join(SRD_SWEEP)})",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--lanes", type=int, default=1, help="student trainings at a time")
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
    for name in ("epochs", "teacher_epochs", "num_train", "threads", "lanes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    for task in ("det", "cls") if args.task == "both" else (args.task,):
        missing = [v for v in args.variants or () if v not in TASKS[task].variants]
        if missing:
            parser.error(f"--variants {' '.join(missing)}: no {task} config; {task} has "
                         f"{', '.join(TASKS[task].variants)}")  # fmt: skip
    args.data_root = args.data_root.resolve()
    args.work_root = args.work_root.resolve()
    args.out = args.out.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = shlex.join(["python", "tools/experiments/feature_kd.py", *(argv or sys.argv[1:])])
    tasks = [TASKS[t] for t in (("det", "cls") if args.task == "both" else (args.task,))]

    if args.dry_run:
        for task in tasks:
            for seed in args.teacher_seed:
                teacher, runs = plan(task, args, seed)
                for run in [teacher, *runs]:
                    print(f"# {run.name}")
                    print(f"(cd {REPO} && OMP_NUM_THREADS={args.threads} "
                          f"{shlex.join(run.command())})")  # fmt: skip
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
        check_readme(args.readme, [readme_key(t, args) for t in tasks])
    sections = []
    for task in tasks:
        if not args.report_only and not (args.data_root / task.name).is_dir():
            raise SystemExit(
                f"no {task.name} data under {args.data_root}; make it with "
                "`python tools/make_digits.py --out data/digits`"
            )
        for seed in args.teacher_seed:
            teacher, runs = plan(task, args, seed)
            if args.report_only:
                results = [recorded(r) for r in runs]
                sections.append(Section(task, teacher, recorded(teacher), results))
                continue
            teacher_rec = execute(teacher, args.threads)
            results = train_all(runs, args.threads, args.lanes)
            sections.append(Section(task, teacher, teacher_rec, results))
    print(write_report(args, cmd, sections).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
