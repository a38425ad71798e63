"""Measure IE-KD and IE-DML against their baselines on the digits sets, over several seeds.

IE-KD and IE-DML are the methods of "Revisiting Knowledge Distillation: An Inheritance and
Exploration Framework" (Huang et al., CVPR 2021, arXiv:2107.00181); DML is "Deep Mutual
Learning" (Zhang et al., CVPR 2018, arXiv:1706.00384). One schedule, several seeds per row:

============ =========================================================================
student      the student alone
logitkd      logit KD alone (softmax KL τ 1 on the classifier, sigmoid KD on the detector)
iekd-inh     logit KD + inheritance only (the exploration loss at weight 0)
iekd         logit KD + inheritance and exploration, natural split (first / second half)
iekd-random  the same with a seeded random channel split
dml          two students trained together, each with KL to the other (both reported)
iedml        DML + the inheritance / exploration split on both networks (both reported)
iedml-code   the same at the released code's weights (1 / 1) instead of the paper's (50 / 50)
============ =========================================================================

The teacher and its auto-encoder (stage 1 of IE-KD) are trained once per task; the teacher,
student and logitkd runs are the ones ``feature_kd.py`` trains with the same options (same
work directories), so the two studies share them. Every run is a ``tools/train.py``
subprocess; finished runs are skipped, so a sweep resumes where it stopped. ``--lanes 2`` runs
two trainings at a time (one thread each by default).

    python tools/experiments/inherit_explore.py --task cls --seeds 0 1 2 --lanes 2 \\
        --work-root work_dirs/feature_kd_e30 --out outputs/inherit_explore \\
        --readme docs/inherit_explore.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
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
    train_all,
    update_readme,
    write_csv,
)
from tools.experiments.feature_kd import TASKS, Task, data_options  # noqa: E402

LABELS = {
    "student": "student alone",
    "logitkd": "logit KD",
    "iekd-inh": "logit KD + inheritance only",
    "iekd": "IE-KD, natural split",
    "iekd-random": "IE-KD, random split",
    "dml-net1": "DML, network 1",
    "dml-net2": "DML, network 2",
    "iedml-net1": "IE-DML, network 1",
    "iedml-net2": "IE-DML, network 2",
    "iedml-code-net1": "IE-DML at weights 1, network 1",
    "iedml-code-net2": "IE-DML at weights 1, network 2",
}
VARIANTS = ("student", "logitkd", "iekd-inh", "iekd", "iekd-random", "dml", "iedml", "iedml-code")
MUTUAL = ("dml", "iedml", "iedml-code")

#: task -> (auto-encoder config, its epochs, {variant: config}); student / logitkd from TASKS
CONFIGS = {
    "cls": (
        "configs/iekd/iekd-ae_resnet18-w32_10e_digits-cls.py",
        10,
        {
            "iekd-inh": "configs/iekd/iekd-inh_resnet18-w32-w8_30e_digits-cls.py",
            "iekd": "configs/iekd/iekd_resnet18-w32-w8_30e_digits-cls.py",
            "iekd-random": "configs/iekd/iekd-random_resnet18-w32-w8_30e_digits-cls.py",
            "dml": "configs/dml/dml_resnet18-w8-w8_30e_digits-cls.py",
            "iedml": "configs/iedml/iedml_resnet18-w8-w8_30e_digits-cls.py",
            "iedml-code": "configs/iedml/iedml-code_resnet18-w8-w8_30e_digits-cls.py",
        },
    ),
    "det": (
        "configs/iekd/iekd-ae_retinanet-w32_fpn_5e_digits.py",
        5,
        {
            "iekd-inh": "configs/iekd/iekd-inh_retinanet-w32-w8_fpn_24e_digits.py",
            "iekd": "configs/iekd/iekd_retinanet-w32-w8_fpn_24e_digits.py",
            "iekd-random": "configs/iekd/iekd-random_retinanet-w32-w8_fpn_24e_digits.py",
            "dml": "configs/dml/dml_retinanet-w8-w8_fpn_24e_digits.py",
            "iedml": "configs/iedml/iedml_retinanet-w8-w8_fpn_24e_digits.py",
            "iedml-code": "configs/iedml/iedml-code_retinanet-w8-w8_fpn_24e_digits.py",
        },
    ),
}


def plan(task: Task, args: argparse.Namespace) -> tuple[Run, Run, list[Run]]:
    """The teacher run, the auto-encoder run and the seed × variant runs (seed-major). A
    mutual run appears twice, once per network's metric, with one work directory."""
    epochs = args.epochs or task.default_epochs
    data = data_options(task, args.data_root, args.num_train)
    lr = [f"optim_wrapper.optimizer.lr={args.lr}"] if args.lr else []
    root = args.work_root / task.name
    ae_config, ae_epochs, configs = CONFIGS[task.name]

    def run(variant, seed, config, work_dir, ep, extra, milestones=task.milestones, metric=None):
        loaders, evaluators = data, ("val_evaluator.", "test_evaluator.")
        if metric == "recon/l1":  # the auto-encoder's evaluator reads no annotation file
            loaders = [o for o in data if not o.startswith(evaluators)]
        elif variant.startswith(MUTUAL):  # kd_det.MutualMetric wraps the task's metric
            loaders = [o.replace(".", ".metric.", 1) if o.startswith(evaluators) else o
                       for o in data]  # fmt: skip
        opts = [f"randomness.seed={seed}", *schedule_options(ep, milestones), *loaders, *extra]
        return Run(task.name, variant, seed, config, work_dir, ep, opts, metric or task.metric,
                   task.missing_value, task.missing_note)  # fmt: skip

    teacher = run("teacher", args.teacher_seed, task.teacher, root / "teacher",
                  args.teacher_epochs or epochs, [])  # fmt: skip
    teach = [f"model.teacher_ckpt={teacher.checkpoint}"]
    ae = run("autoencoder", args.teacher_seed, ae_config, root / "ie_autoencoder", ae_epochs,
             teach, milestones=(), metric="recon/l1")  # fmt: skip
    ae = replace(ae, missing_value=None)
    encoder = [f"model.distill.ie.connector.teacher_encoder.checkpoint={ae.checkpoint}"]
    runs = []
    for seed in args.seeds:
        for variant in args.variants:
            work = root / variant / f"seed{seed}"
            if variant in ("student", "logitkd"):
                extra = [*lr] if variant == "student" else [*lr, *teach]
                runs.append(run(variant, seed, task.variants[variant], work, epochs, extra))
            elif variant in MUTUAL:
                for net in ("net1", "net2"):
                    r = run(f"{variant}-{net}", seed, configs[variant], work, epochs, lr,
                            metric=f"{net}/{task.metric}")  # fmt: skip
                    runs.append(replace(r, result_name=f"result_{net}.json"))
            else:
                runs.append(run(variant, seed, configs[variant], work, epochs,
                                [*lr, *teach, *encoder]))  # fmt: skip
    return teacher, ae, runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["det", "cls"], default="cls")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--teacher-seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="students' learning rate")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--lanes", type=int, default=1, help="trainings at a time")
    parser.add_argument("--data-root", type=Path, default=Path("data/digits"))
    parser.add_argument("--work-root", type=Path, default=Path("work_dirs/feature_kd_e30"))
    parser.add_argument("--out", type=Path, default=Path("outputs/inherit_explore"))
    parser.add_argument("--readme", type=Path, default=None,
                        help="write the table between its inherit_explore markers in this file")  # fmt: skip
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--dry-run", action="store_true", help="print the commands only")
    steps.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)
    for name in ("epochs", "teacher_epochs", "num_train", "threads", "lanes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    for name in ("data_root", "work_root", "out"):
        setattr(args, name, getattr(args, name).resolve())
    args.variants = [v for v in VARIANTS if v in args.variants]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = shlex.join(["python", "tools/experiments/inherit_explore.py", *(argv or sys.argv[1:])])
    task = TASKS[args.task]
    teacher, ae, runs = plan(task, args)
    key = f"inherit_explore:{task.name}"
    if args.dry_run:
        for run in [teacher, ae, *runs]:
            print(f"# {run.name}\n(cd {REPO} && OMP_NUM_THREADS={args.threads} "
                  f"{shlex.join(run.command())})")  # fmt: skip
        return 0
    if args.readme is not None:
        check_readme(args.readme, [key])
    if args.report_only:
        t_rec, ae_rec, results = recorded(teacher), recorded(ae), [recorded(r) for r in runs]
    else:
        if not (args.data_root / task.name).is_dir():
            raise SystemExit(f"no {task.name} data under {args.data_root}; make it with "
                             "`python tools/make_digits.py --out data/digits`")  # fmt: skip
        t_rec = execute(teacher, args.threads)
        ae_rec = execute(ae, args.threads)
        results = train_all(runs, args.threads, args.lanes)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / f"inherit_explore_{task.name}.csv", [t_rec, ae_rec, *results])
    seconds = sum(r["seconds"] or 0.0 for r in [t_rec, ae_rec, *results])
    note = (
        f"{task.name}: students {runs[0].epochs if runs else '-'} epochs, teacher "
        f"{teacher.epochs} epochs (seed {teacher.seed}), auto-encoder {ae.epochs} epochs "
        f"(validation L1 {ae_rec['value']:.4f}), seeds {args.seeds}, {args.threads} thread(s) "
        f"per run, {seconds / 60:.0f} min of training recorded"
    )
    table = mean_std_table(results, LABELS, task.metric_label, task.scale, t_rec)
    section = f"```bash\n{cmd}\n```\n\n{note}.\n\n{table}"
    (args.out / f"inherit_explore_{task.name}.md").write_text(f"# IE-KD / IE-DML\n\n{section}\n")
    if args.readme is not None:
        update_readme(args.readme, key, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
