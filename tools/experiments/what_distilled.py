"""What gets distilled, over seeds: run the what-gets-distilled analysis
(``kd_det.analysis.what_distilled``, the protocol of "What Knowledge Gets Distilled in Knowledge
Distillation?", arXiv:2205.16004) for every seed ``k`` of a finished sweep — the teacher, the
students of each distillation method trained with seed ``k``, the independent student of seed
``k`` and a control model — and aggregate mean ± std over the seeds per property and method.

Two layouts of finished runs:

* ``--layout sweep`` (``tools/experiments/feature_kd.py``): ``<work-root>/<task>/teacher/`` and
  ``<work-root>/<task>/<variant>/seed<k>/``, e.g. ``work_dirs/feature_kd_e30/cls/fitnet/seed1/``;
* ``--layout demo`` (``tools/demo.py``): ``<work-root>/<config stem>/``, one run per config,
  analysed as one seed (``--seeds`` gives its label).

Each folder's checkpoint is its highest ``epoch_<N>.pth``. With two or more seeds, the
independent student of seed ``k + 1`` (cyclically) is also compared as if it were distilled
(row ``independent (next seed)``): its localization score is what chance looks like between
two independent students (the paper's "independent" column).

Per seed, ``<out>/<task>/seed<k>/`` receives the full report (``report.json``, ``report.md``,
figures) and is skipped when it exists (``--force`` recomputes); ``<out>/<task>/what_distilled.md``
and ``.json`` hold the aggregate; ``--readme FILE`` (repeatable) writes the table and the
command between the markers ``<!-- what_distilled:<task> -->`` and ``<!-- /what_distilled:<task> -->``.

    python tools/experiments/what_distilled.py --task cls --seeds 0 1 2 \\
        --work-root work_dirs/feature_kd_e30 --methods logitkd fitnet srd \\
        --control-ckpt work_dirs/feature_kd_e30/cls/control/epoch_30.pth \\
        --num-images 500 --out outputs/what_distilled --readme docs/what_distilled.md
    python tools/experiments/what_distilled.py --task det --layout demo \\
        --work-root work_dirs/demo_seed1 --seeds 1 --methods srd-mse-fpnonly \\
        --data-root data/digits_demo/det/ --out outputs/what_distilled --readme docs/what_distilled.md
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make tools.experiments importable
    sys.path.insert(0, str(REPO))

from kd_det.analysis.what_distilled import (  # noqa: E402
    PROPERTIES,
    AnalysisOptions,
    ModelSpec,
    analyse,
    paper_key,
    write_report,
)
from kd_det.analysis.what_distilled.report import PAPER_SETTING, PAPER_VALUES  # noqa: E402
from tools.experiments.common import (  # noqa: E402
    check_readme,
    progress,
    summarise,
    update_readme,
)
from tools.experiments.feature_kd import TASKS, VARIANT_LABELS  # noqa: E402

DEFAULT_CONTROL = {"cls": "configs/baselines/convmixer-96-6_30e_digits-cls.py", "det": None}
NEXT_SEED = "independent (next seed)"
#: (key, column title) of the aggregated table
COLUMNS = (
    ("localization", "localization (%)"),
    ("fooled_teacher", "fooled by T's attacks (%)"),
    ("fooled_control", "fooled by control's attacks (%)"),
    ("invariance", "unchanged under jitter (%)"),
    ("agreement", "agreement with T (%)"),
    ("cka", "mean CKA with T"),
    ("accuracy", "accuracy (%)"),
)


def variants(task: str) -> dict[str, str]:
    """Variant name → config of ``task`` (the feature-KD sweep's, the demo's recipe among
    them as ``srd-mse-fpnonly``)."""
    return TASKS[task].variants


def repo_path(config: str) -> str:
    """A config path of the repository, valid from any working directory."""
    return config if Path(config).is_file() else str(REPO / config)


def latest_checkpoint(folder: Path) -> Path:
    """The highest ``epoch_<N>.pth`` in ``folder``; ``SystemExit`` naming it when none."""
    found = sorted(
        (int(m.group(1)), p)
        for p in folder.glob("epoch_*.pth")
        if (m := re.fullmatch(r"epoch_(\d+)\.pth", p.name))
    )
    if not found:
        raise SystemExit(f"no epoch_<N>.pth in {folder}: has that run finished?")
    return found[-1][1]


def run_dir(args: argparse.Namespace, variant: str, seed: int) -> Path:
    """Where the run of ``variant`` (``'teacher'``, ``'student'`` or a method) and ``seed``
    lives in the chosen layout."""
    task = TASKS[args.task]
    if args.layout == "demo":
        config = task.teacher if variant == "teacher" else variants(args.task)[variant]
        return args.work_root / Path(config).stem
    if variant == "teacher":
        return args.work_root / args.task / "teacher"
    return args.work_root / args.task / variant / f"seed{seed}"


def plan(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The model specs of one seed's analysis."""
    task = TASKS[args.task]
    configs = variants(args.task)
    teacher = ModelSpec(
        task.teacher, latest_checkpoint(run_dir(args, "teacher", seed)), name="teacher"
    )
    distilled = [
        ModelSpec(configs[m], latest_checkpoint(run_dir(args, m, seed)), name=m, method=m)
        for m in args.methods
    ]
    if args.layout == "sweep" and len(args.seeds) > 1 and not args.no_next_seed:
        nxt = args.seeds[(args.seeds.index(seed) + 1) % len(args.seeds)]
        ckpt = latest_checkpoint(run_dir(args, "student", nxt))
        distilled.append(ModelSpec(configs["student"], ckpt, name=NEXT_SEED, method="independent"))
    independent = ModelSpec(
        configs["student"], latest_checkpoint(run_dir(args, "student", seed)), name="independent"
    )
    control = None
    if args.control_ckpt is not None:
        if not args.control_ckpt.is_file():
            raise SystemExit(
                f"control checkpoint {args.control_ckpt} does not exist; train it with\n"
                f"  python tools/train.py {args.control_config} --work-dir "
                f"{args.control_ckpt.parent} --cfg-options randomness.seed=0\n"
                "or leave the control out with --no-control"
            )
        control = ModelSpec(repo_path(args.control_config), args.control_ckpt, name="control")
    return dict(teacher=teacher, distilled=distilled, independent=independent, control=control)


def seed_values(summary: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per model name, the table's numbers from one seed's report summary."""
    out: dict[str, dict[str, float | None]] = {}
    adv = summary.get("adversarial", {})
    cka = summary.get("cka", {}).get("per_model", {})
    for model in summary["models"]:
        name = model["name"]
        values: dict[str, float | None] = {"accuracy": summary["accuracy"].get(name)}
        values["agreement"] = summary.get("agreement", {}).get(name)
        loc = summary.get("localization", {}).get("per_model", {}).get(name, {})
        values["localization"] = loc.get("score")
        for role, key in (("teacher", "fooled_teacher"), ("control", "fooled_control")):
            entry = adv.get(role, {}).get("per_model", {}).get(name)
            values[key] = entry["fooling_rate"] if entry else None
        inv = summary.get("invariance", {}).get(name)
        values["invariance"] = inv["unchanged"] if inv else None
        layers = [v for v in cka.get(name, []) if v is not None]
        values["cka"] = sum(layers) / len(layers) if layers else None
        out[name] = values
    return out


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample std and per-seed values per model and column over the seeds."""
    rows: dict[str, dict[str, Any]] = {}
    roles: dict[str, str] = {}
    methods: dict[str, str] = {}
    for seed, summary in sorted(per_seed.items()):
        for model in summary["models"]:
            roles.setdefault(model["name"], model["role"])
            methods.setdefault(model["name"], model["method"])
        for name, values in seed_values(summary).items():
            for key, value in values.items():
                if value is not None:
                    rows.setdefault(name, {}).setdefault(key, {})[seed] = value
    table: dict[str, Any] = {}
    for name, cols in rows.items():
        table[name] = {"role": roles[name], "method": methods[name]}
        for key, by_seed in cols.items():
            mean, std = summarise(list(by_seed.values()))
            table[name][key] = {"mean": mean, "std": std, "n": len(by_seed), "per_seed": by_seed}
    return table


def _paper_cell(role: str, method: str, shown: set[str]) -> str:
    key = paper_key(method, role)
    values = [PAPER_VALUES[p].get(key) if key and column in shown else None
              for p, column in (("localization", "localization"), ("adversarial", "fooled_teacher"),
                                ("invariance", "invariance"))]  # fmt: skip
    if all(v is None for v in values):
        return ""
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def markdown_table(table: dict[str, Any], order: list[str]) -> str:
    """Mean ± std (n seeds) per model and property; the paper's values beside."""
    head = "| model | " + " | ".join(title for _, title in COLUMNS)
    head += f" | paper: loc. / fooled / unchanged ({PAPER_SETTING}) |"
    lines = [head, "|---" * (len(COLUMNS) + 2) + "|"]
    for name in order:
        if name not in table:
            continue
        row = table[name]
        # the next seed's student differs from the independent one only in its localization
        # score: its other values are the independent students' again, in another order
        shown = {"localization"} if name == NEXT_SEED else {key for key, _ in COLUMNS if key in row}
        cells = []
        for key, _ in COLUMNS:
            cell = row.get(key) if key in shown else None
            if cell is None:
                cells.append("")
                continue
            digits = 3 if key == "cka" else 1
            cells.append(f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f} ({cell['n']})")
        label = f"{name} ({VARIANT_LABELS[name].strip()})" if name in VARIANT_LABELS else name
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {_paper_cell(row['role'], row['method'], shown)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="cls")
    parser.add_argument("--layout", choices=["sweep", "demo"], default="sweep")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["logitkd", "fitnet", "srd"])
    parser.add_argument("--work-root", type=Path, default=Path("work_dirs/feature_kd_e30"))
    parser.add_argument("--control-config", default=None, help="default: the task's control config")
    parser.add_argument(
        "--control-ckpt", type=Path, default=None,
        help="default: <work-root>/<task>/control/ highest epoch (sweep layout, cls)",
    )  # fmt: skip
    parser.add_argument("--no-control", action="store_true")
    parser.add_argument("--no-next-seed", action="store_true",
                        help="leave out the independent student of the next seed")  # fmt: skip
    parser.add_argument("--num-images", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="analysis seed (images, jitter)")
    parser.add_argument("--properties", nargs="+", choices=PROPERTIES, default=list(PROPERTIES))
    parser.add_argument("--data-root", help="data_root of the val dataset (default: the config's)")
    parser.add_argument("--out", type=Path, default=Path("outputs/what_distilled"))
    parser.add_argument("--readme", type=Path, action="append", default=[])
    parser.add_argument("--force", action="store_true", help="recompute finished seeds")
    parser.add_argument("--dry-run", action="store_true", help="print the models per seed only")
    args = parser.parse_args(argv)
    known = variants(args.task)
    unknown = [m for m in args.methods if m not in known or m == "student"]
    if unknown:
        parser.error(f"--methods {unknown}: choose from {sorted(set(known) - {'student'})}")
    if args.layout == "demo" and len(args.seeds) != 1:
        parser.error("--layout demo holds one run per config: give one --seeds label")
    if args.num_images < 1:
        parser.error(f"--num-images must be >= 1, got {args.num_images}")
    args.control_config = args.control_config or DEFAULT_CONTROL[args.task]
    if args.no_control or args.control_config is None:
        args.control_ckpt = None
    elif args.control_ckpt is None:
        folder = args.work_root / args.task / "control"
        found = sorted(folder.glob("epoch_*.pth"))
        args.control_ckpt = latest_checkpoint(folder) if found else folder / "epoch_30.pth"
    return args


def readme_key(task: str) -> str:
    return f"what_distilled:{task}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = shlex.join(["python", "tools/experiments/what_distilled.py", *(argv or sys.argv[1:])])
    for readme in args.readme:
        check_readme(readme, [readme_key(args.task)])
    plans = {seed: plan(args, seed) for seed in args.seeds}
    if args.dry_run:
        for seed, p in plans.items():
            print(f"# seed {seed}")
            for role in ("teacher", "distilled", "independent", "control"):
                specs = p[role] if isinstance(p[role], list) else [p[role]]
                for spec in filter(None, specs):
                    print(f"{role:12s} {spec.label():24s} {spec.config_label} {spec.checkpoint}")
        return 0
    out = args.out / args.task
    per_seed: dict[int, dict[str, Any]] = {}
    for seed, p in plans.items():
        seed_out = out / f"seed{seed}"
        report = seed_out / "report.json"
        if report.is_file() and not args.force:
            progress(f"skip (done): seed {seed} ({report})")
            per_seed[seed] = json.loads(report.read_text())
            continue
        progress(f"analyse: {args.task} seed {seed}")
        options = AnalysisOptions(
            num_images=args.num_images,
            seed=args.seed,
            properties=tuple(args.properties),
            dataset_options={"val_dataloader.dataset.data_root": args.data_root}
            if args.data_root
            else None,
        )
        start = time.time()
        result = analyse(options=options, **p)
        write_report(result, seed_out)
        per_seed[seed] = result.summary
        progress(f"  {time.time() - start:.0f} s -> {seed_out}")
    table = aggregate(per_seed)
    order = ["teacher", *args.methods, NEXT_SEED, "independent", "control"]
    first = per_seed[args.seeds[0]]
    units = first["units"]
    note = (
        f"{args.task}: {first['data']['num_images']} images of the val split (units: {units}), seeds "
        f"{args.seeds} (mean ± sample std over seeds, number of seeds in brackets), analysis "
        f"seed {args.seed}; attacks ε = {first['options']['attack']['eps']:g}, α = "
        f"{first['options']['attack']['step']:g}, k = {first['options']['attack']['steps']} in "
        "pixel units; localization: % of units where cos(CAM_T, CAM_S) > cos(CAM_T, CAM_Si) with "
        "S_i the same seed's independent student"
    )
    md_table = markdown_table(table, order)
    section = f"```bash\n{cmd}\n```\n\n{note}.\n\n{md_table}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "what_distilled.json").write_text(json.dumps({"command": cmd, "table": table}, indent=1))
    (out / "what_distilled.md").write_text(f"# What gets distilled ({args.task})\n\n{section}\n")
    for readme in args.readme:
        update_readme(readme, readme_key(args.task), section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
