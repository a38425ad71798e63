"""Does the layer-selection strategy matter? Train a student with each strategy, over seeds.

The study of "Revisiting Intermediate-Layer Matching in Knowledge Distillation: Layer-Selection
Strategy Doesn't Matter (Much)" (Yu, Wen & Mou, arXiv:2502.04499) on the digits sets. The
teacher has twice the residual blocks of the student (ResNet-34 → ResNet-18, 16 → 8 blocks,
``backbone.layer*.*``); every distilled run has the same losses — logit KD (softmax KL τ 1 on the
classifier, sigmoid KD on the detector's ``retina_cls``) plus the MSE between each student block
and the teacher block its strategy picks, through a learned bias-free linear adapter — and only
the mapper changes:

================== ==========================================================================
student            the student alone (no teacher)
none               logit KD only (no intermediate matching)
forward            student block i ↔ teacher block round((i+1)·16/8)−1 (1, 3, …, 15)
reverse            the forward list reversed (15, 13, …, 1)
inorder-random     a random sorted subset of 8 of the 16 teacher blocks (mapper seed = run seed)
random             a random permutation of the forward list (mapper seed = run seed)
all2one-shallow    every student block ↔ teacher block 2 (end of stage 1)
all2one-middle     every student block ↔ teacher block 7
all2one-deep       every student block ↔ teacher block 15 (the last)
================== ==========================================================================

A teacher is trained for each of ``--teacher-seeds`` and teaches its own set of students (the
student alone is shared); every run is a ``tools/train.py`` subprocess (``--cfg-options`` for
the seed, schedule, learning rate, data root, teacher checkpoint and mapper seed). Finished runs
are skipped, so an interrupted study resumes where it stopped; ``--lanes N`` trains N runs at a
time. Steps:

* train (default): every run not yet finished, then the report;
* report (``--report-only``): from finished runs only: ``<out>/layer_selection_<task>.csv``,
  ``<out>/layer_selection_<task>.md`` (mean ± std, per seed, the difference to ``none`` with its
  standard error, the paper's numbers beside), the accuracy plot
  ``<figures>/layer_selection_<task>_accuracy.png``, and with ``--readme FILE`` the table between
  ``<!-- layer_selection:<task> -->`` and ``<!-- /layer_selection:<task> -->`` of FILE;
* angles (``--angles``, after training): the angle diagnostic of
  :mod:`kd_det.analysis.layer_selection` for each strategy's trained students (``--seeds``) and
  the untrained student of each seed: ``<out>/layer_selection_<task>_angles.json|md``, the
  histograms ``<figures>/layer_selection_<task>_angles.png`` and, with ``--readme``, the table
  between ``<!-- layer_selection:<task>-angles -->`` markers.

    python tools/experiments/layer_selection.py --task cls --seeds 0 1 2 --lanes 1 \\
        --readme docs/layer_selection.md
    python tools/experiments/layer_selection.py --task cls --seeds 0 1 2 --angles \\
        --readme docs/layer_selection.md
    python tools/experiments/layer_selection.py --task det --seeds 0 1 2 --strategies student \\
        none forward reverse all2one-deep --epochs 4 --teacher-epochs 10 --lr 3e-3 --lanes 2
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make tools.experiments importable
    sys.path.insert(0, str(REPO))

from tools.experiments.common import (  # noqa: E402
    Run,
    check_readme,
    mean_std_table,
    progress,
    recorded,
    schedule_options,
    summarise,
    teachers_suffix,
    train_all,
    update_readme,
    write_csv,
)

LABELS = {
    "teacher": "teacher alone",
    "student": "student alone",
    "none": "logit KD only",
    "forward": "forward",
    "reverse": "reverse",
    "inorder-random": "in-order random",
    "random": "random",
    "all2one-shallow": "all-to-one, shallow teacher block",
    "all2one-middle": "all-to-one, middle teacher block",
    "all2one-deep": "all-to-one, deepest teacher block",
}
STRATEGIES = tuple(k for k in LABELS if k not in ("teacher", "student"))
VARIANTS = ("student", *STRATEGIES)
SEEDED_MAPPERS = ("inorder-random", "random")
#: "Revisiting Intermediate-Layer Matching ..." (arXiv:2502.04499): BERT-base → 3-layer student,
#: MNLI-m accuracy (%); all-to-one there is to the last teacher layer
PAPER = {"none": 63.2, "forward": 72.5, "reverse": 69.3, "all2one-deep": 74.0, "random": 71.2}
HIDDEN_TERM = "hidden"
FIT_IMAGES = 128  # training images the adapters of unmatched pairs are fitted on
ANGLE_IMAGES = 64  # validation images the angles are measured on


@dataclass(frozen=True)
class Task:
    """One data set: its teacher, student, metric and the config of every strategy."""

    name: str
    metric: str
    metric_label: str
    scale: float
    teacher: str
    student: str
    strategies: dict[str, str]
    epochs: int
    teacher_epochs: int
    milestones: tuple[float, ...]
    missing_value: float | None = None
    missing_note: str = ""

    def config(self, variant: str) -> str:
        return self.student if variant == "student" else self.strategies[variant]


def _strategy_configs(stem: str) -> dict[str, str]:
    return {s: f"configs/layer_selection/ls-{s}_{stem}.py" for s in STRATEGIES}


TASKS = {
    "cls": Task(
        name="cls",
        metric="accuracy/top1",
        metric_label="top-1 (%)",
        scale=1.0,
        teacher="configs/layer_selection/resnet34-w16-s2_30e_digits-cls.py",
        student="configs/layer_selection/resnet18-w8-s2_15e_digits-cls.py",
        strategies=_strategy_configs("resnet34-w16-resnet18-w8-s2_15e_digits-cls"),
        epochs=15,
        teacher_epochs=30,
        milestones=(),
    ),
    "det": Task(
        name="det",
        metric="coco/bbox_mAP",
        metric_label="COCO mAP (%)",
        scale=100.0,
        teacher="configs/layer_selection/retinanet_r34-w16_fpn_24e_digits.py",
        student="configs/baselines/retinanet_r18-w8_fpn_24e_digits.py",
        strategies=_strategy_configs("retinanet-r34-w16-r18-w8_fpn_24e_digits"),
        epochs=24,
        teacher_epochs=24,
        milestones=(16 / 24, 22 / 24),
        # mmdet's CocoMetric logs no mAP when the model made no detection at all: that is 0 AP
        missing_value=0.0,
        missing_note="no detections",
    ),
}


def data_options(task: Task, data_root: Path) -> list[str]:
    """``--cfg-options`` pointing every loader (and the COCO evaluator) at ``data_root``."""
    root = f"{data_root}/{task.name}/"
    opts = [f"{loader}.dataset.data_root={root}"
            for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]  # fmt: skip
    if task.name == "det":
        ann = f"{root}annotations/val.json"
        opts += [f"val_evaluator.ann_file={ann}", f"test_evaluator.ann_file={ann}"]
    return opts


def plan(task: Task, args: argparse.Namespace) -> tuple[list[Run], list[Run]]:
    """The teacher runs (one per teacher seed) and the student runs, seed-major (a partial
    study already covers every variant of every teacher): per seed, the student alone
    (``<work-root>/<task>/student/seed<s>``), then each teacher's strategies
    (``<work-root>/<task>/t<K>/<strategy>/seed<s>``, taught by the teacher of seed K)."""
    epochs = args.epochs or task.epochs
    teacher_epochs = args.teacher_epochs or task.teacher_epochs
    data = data_options(task, args.data_root)
    lr = [f"optim_wrapper.optimizer.lr={args.lr}"] if args.lr else []
    root = args.work_root / task.name

    def run(variant: str, seed: int, config: str, work_dir: Path, ep: int, extra: list[str],
            teacher_seed: int | None = None) -> Run:  # fmt: skip
        opts = [f"randomness.seed={seed}", *schedule_options(ep, task.milestones), *data, *extra]
        return Run(task.name, variant, seed, config, work_dir, ep, opts, task.metric,
                   task.missing_value, task.missing_note, teacher_seed=teacher_seed)  # fmt: skip

    teachers = {
        k: run("teacher", k, task.teacher, root / "teacher" / f"seed{k}", teacher_epochs, [])
        for k in args.teacher_seeds
    }
    runs = []
    for seed in args.seeds:
        if "student" in args.variants:
            runs.append(run("student", seed, task.student, root / "student" / f"seed{seed}",
                            epochs, lr))  # fmt: skip
        for k, teacher in teachers.items():
            for variant in args.variants:
                if variant == "student":
                    continue
                extra = [*lr, f"model.teacher_ckpt={teacher.checkpoint}"]
                if variant in SEEDED_MAPPERS:
                    extra.append(f"model.distill.{HIDDEN_TERM}.mapper.seed={seed}")
                work_dir = root / f"t{k}" / variant / f"seed{seed}"
                runs.append(run(variant, seed, task.config(variant), work_dir, epochs, extra, k))
    return list(teachers.values()), runs


# -- report ---------------------------------------------------------------------------------


def _by_variant(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for rec in records:
        out.setdefault(rec["variant"], []).append(rec["value"])
    return out


def comparison_table(task: Task, records: list[dict[str, Any]]) -> str:
    """Each strategy against ``none``: the difference of the means, its standard error
    ``√(s²_a/n_a + s²_b/n_b)``, whether it exceeds the seed spread, and the paper's numbers."""
    values = {k: [v * task.scale for v in vs] for k, vs in _by_variant(records).items()}
    if "none" not in values:
        return "(no `none` runs: nothing to compare with)"
    none_mean, none_std = summarise(values["none"])
    lines = [
        "| strategy | Δ vs none (ours) | s.e. of Δ | beyond the seed spread? | paper (MNLI-m) "
        "| paper Δ vs none |",
        "|---|---|---|---|---|---|",
    ]
    for variant in STRATEGIES:
        if variant == "none" or variant not in values:
            continue
        mean, std = summarise(values[variant])
        n_a, n_b = len(values[variant]), len(values["none"])
        se = math.sqrt(std**2 / n_a + none_std**2 / n_b)
        delta = mean - none_mean
        spread = max(std, none_std)
        verdict = "yes" if abs(delta) > 2 * se and abs(delta) > spread else "no"
        if n_a < 2 or n_b < 2:
            verdict = "(1 seed)"
        paper = PAPER.get(variant)
        paper_cols = (f"{paper:.1f} | {paper - PAPER['none']:+.1f}" if paper is not None
                      else " | ")  # fmt: skip
        lines.append(f"| {variant} | {delta:+.2f} | {se:.2f} | {verdict} | {paper_cols} |")
    lines.append(f"| none | 0 ({none_mean:.2f} ± {none_std:.2f}) | | | {PAPER['none']:.1f} | 0 |")
    return "\n".join(lines)


def accuracy_plot(task: Task, records: list[dict[str, Any]], path: Path) -> None:
    """Per-seed values and mean ± std per variant (ours, left) and the paper's (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = {k: [v * task.scale for v in vs] for k, vs in _by_variant(records).items()}
    order = [v for v in ("teacher", *VARIANTS) if v in values]
    fig, (ax, axp) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw=dict(width_ratios=[3, 1.3]))
    for x, variant in enumerate(order):
        vs = values[variant]
        mean, std = summarise(vs)
        colour = "grey" if variant in ("teacher", "student") else "C0"
        ax.errorbar(x, mean, yerr=std, fmt="o", color=colour, capsize=4, ms=7)
        ax.scatter([x] * len(vs), vs, color="k", s=10, zorder=3)
    if "none" in values:
        ax.axhline(summarise(values["none"])[0], color="C3", lw=0.8, ls="--", label="none (mean)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(order)), order, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(task.metric_label)
    teacher = next((r for r in records if r["variant"] == "teacher"), None)
    taught = f", teacher seed {teacher['seed']}" if teacher else ""
    ax.set_title(f"digits {task.name}{taught}: mean ± std over seeds, dots = seeds", fontsize=9)
    names = list(PAPER)
    axp.bar(range(len(names)), [PAPER[n] for n in names], color="C1")
    axp.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    axp.set_ylim(55, 80)
    axp.set_title("paper: BERT → 3 layers, MNLI-m (%)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def readme_key(task: Task, args: argparse.Namespace, suffix: str = "") -> str:
    """The README section of ``task``: ``layer_selection:det`` with one teacher,
    ``layer_selection:det-t0-1`` with teachers 0 and 1 (``suffix`` e.g. ``-angles``)."""
    return f"layer_selection:{task.name}{teachers_suffix(args.teacher_seeds)}{suffix}"


def write_report(
    task: Task, args: argparse.Namespace, cmd: str, teachers: list[dict], runs: list[Run],
    results: list[dict],
) -> str:  # fmt: skip
    """The CSV, markdown and plots of ``task``: per teacher, the table, the comparison with
    ``none`` and the plot; with several teachers also the comparison over all their runs (the
    strategies pooled over teachers and seeds). Returns the section written to ``--readme``."""
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / f"layer_selection_{task.name}.csv", [*teachers, *results])
    seconds = [r["seconds"] for r in results if r["seconds"]]
    cost = (f"{sum(seconds) / 60:.1f} min of training recorded for {len(seconds)} student runs "
            f"({statistics_line(seconds)})" if seconds else "no timings recorded")  # fmt: skip
    epochs = results[0]["epochs"] if results else "-"
    lr = f" at lr {args.lr:g}" if args.lr else ""
    note = (
        f"{task.name}: students {epochs} epochs{lr}, teachers {teachers[0]['epochs']} epochs "
        f"(seeds {[t['seed'] for t in teachers]}, each teaching its own students), student "
        f"seeds {sorted({r['seed'] for r in results})}, {args.threads} thread(s) per run, {cost}"
    )
    alone = [rec for run, rec in zip(runs, results, strict=True) if run.teacher_seed is None]
    parts = [f"```bash\n{cmd}\n```", f"{note}."]
    several = len(teachers) > 1
    for teacher in teachers:
        taught = [rec for run, rec in zip(runs, results, strict=True)
                  if run.teacher_seed == teacher["seed"]]  # fmt: skip
        records = [teacher, *alone, *taught]
        suffix = f"_t{teacher['seed']}" if several else ""
        figure = args.figures / f"layer_selection_{task.name}{suffix}_accuracy.png"
        accuracy_plot(task, records, figure)
        table = mean_std_table(records, LABELS, task.metric_label, task.scale, baseline="none")
        title = f"Teacher seed {teacher['seed']}:\n\n" if several else ""
        parts += [f"{title}{table}", comparison_table(task, [*alone, *taught]),
                  f"![accuracy per strategy](figures/{figure.name})"]  # fmt: skip
    if several:
        parts.append(
            f"Over both teachers ({len(teachers)} teachers × {len(set(r['seed'] for r in alone))}"
            f" seeds per strategy):\n\n{comparison_table(task, results)}"
        )
    section = "\n\n".join(parts)
    (args.out / f"layer_selection_{task.name}.md").write_text(
        f"# Layer-selection study ({task.name})\n\n{section}\n"
    )
    if args.readme is not None:
        update_readme(args.readme, readme_key(task, args), section)
    return section


def statistics_line(seconds: list[float]) -> str:
    mean, std = summarise(seconds)
    return f"{mean / 60:.2f} ± {std / 60:.2f} min each"


# -- angles ---------------------------------------------------------------------------------


def _maps(model, names: list[str], batches: list[Any]) -> list[Any]:
    """The maps of ``names`` over ``batches``, concatenated over images."""
    import torch

    from kd_det.analysis.layer_selection import record_layers

    per_batch = []
    for batch in batches:
        data = model.data_preprocessor(batch, False)
        per_batch.append(
            record_layers(model, names, lambda d=data: model.extract_feat(d["inputs"]))
        )
    return [torch.cat([b[i] for b in per_batch]) for i in range(len(names))]


def _batches(cfg, split: str, count: int, batch_size: int = 32) -> list[Any]:
    """``count`` images of ``split`` through the test pipeline, collated in batches."""
    import copy

    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    loader = cfg.train_dataloader if split == "train" else cfg.val_dataloader
    ds_cfg = copy.deepcopy(loader.dataset)
    ds_cfg.pipeline = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
    ds_cfg.indices = count
    ds_cfg.pop("filter_cfg", None)
    dataset = DATASETS.build(ds_cfg)
    items = [dataset[i] for i in range(len(dataset))]
    return [pseudo_collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def run_angles(run: Run, teacher_ckpt: Path, trained: bool, seed: int) -> list[Any]:
    """The angle diagnostic of ``run``'s student, trained (its checkpoint, its adapters) or
    untrained (the seed's initialisation, every adapter fitted)."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import set_random_seed

    from kd_det.analysis.layer_selection import layer_angles_per_student_layer, trained_adapters
    from kd_det.apis import build_model_from_cfg
    from kd_det.capture import resolve_layers

    cfg = Config.fromfile(REPO / run.config)
    options = {"model.teacher_ckpt": str(teacher_ckpt)}
    for opt in run.cfg_options:  # the run's data root and mapper seed
        key, _, value = opt.partition("=")
        if key.endswith(".data_root") or key.endswith(".mapper.seed"):
            options[key] = int(value) if key.endswith(".seed") else value
    cfg.merge_from_dict(options)
    set_random_seed(seed)
    model = build_model_from_cfg(cfg)
    adapters = {}
    if trained:
        state = torch.load(run.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        bad = [k for k in missing if not k.startswith("teacher.")] + list(unexpected)
        if bad:
            raise SystemExit(f"{run.checkpoint} does not fit {run.config}: {bad[:5]}")
        if HIDDEN_TERM in model.terms:
            adapters = trained_adapters(model.terms[HIDDEN_TERM])
    else:
        model.student.init_weights()
    model.eval()
    s_names = resolve_layers(model.student, "backbone.layer*.*", "student")
    t_names = resolve_layers(model.teacher, "backbone.layer*.*", "teacher")
    fit, evaluation = _batches(cfg, "train", FIT_IMAGES), _batches(cfg, "val", ANGLE_IMAGES)
    return layer_angles_per_student_layer(
        _maps(model.student, s_names, evaluation),
        _maps(model.teacher, t_names, evaluation),
        _maps(model.student, s_names, fit),
        _maps(model.teacher, t_names, fit),
        s_names,
        t_names,
        adapters=adapters,
        seed=seed,
    )


def cached_angles(path: Path, name: str, compute: Callable[[], list[Any]]) -> list[Any]:
    """The angles of one student, from ``path`` if an earlier angle step wrote it (the step
    resumes), else computed and written there."""
    from kd_det.analysis.layer_selection import LayerAngles

    if path.is_file():
        progress(f"angles: {name} (from {path.name})")
        return LayerAngles.load_all(path)
    start = time.time()
    layers = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    LayerAngles.save_all(layers, path)
    progress(f"angles: {name} ({time.time() - start:.0f} s)")
    return layers


def angles(task: Task, args: argparse.Namespace, cmd: str) -> str:
    """The angle step: every finished strategy run of ``--seeds`` and the untrained student of
    each seed; JSON, markdown table and histograms."""
    import numpy as np

    teachers, runs = plan(task, args)
    runs = [r for r in runs if r.teacher_seed == teachers[0].seed]  # the first teacher's
    if not teachers[0].checkpoint.is_file():
        raise SystemExit(f"--angles needs the teacher {teachers[0].checkpoint}")
    by_key: dict[str, dict[int, list[Any]]] = {}
    untrained_from = {}
    root = args.work_root / task.name
    for run in runs:
        untrained_from.setdefault(run.seed, run)
        if not run.finished():
            progress(f"angles: skip {run.name} (not trained)")
            continue
        by_key.setdefault(run.variant, {})[run.seed] = cached_angles(
            run.work_dir / "angles.npz", run.name,
            lambda r=run: run_angles(r, teachers[0].checkpoint, True, r.seed),
        )  # fmt: skip
    for seed, run in untrained_from.items():
        by_key.setdefault("untrained", {})[seed] = cached_angles(
            root / "untrained" / f"seed{seed}" / "angles.npz", f"untrained student seed {seed}",
            lambda r=run, s=seed: run_angles(r, teachers[0].checkpoint, False, s),
        )  # fmt: skip
    if not by_key:
        raise SystemExit("--angles: no finished strategy run")
    summary = {
        key: {seed: [a.summary() for a in layers] for seed, layers in seeds.items()}
        for key, seeds in by_key.items()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"layer_selection_{task.name}_angles.json").write_text(json.dumps(summary))
    any_layers = next(iter(next(iter(by_key.values())).values()))
    names = [a.student_layer for a in any_layers]
    head = "| student | " + " | ".join(f"{n} ({a.width})" for n, a in zip(names, any_layers))
    lines = [head + " | all layers |", "|---" * (len(names) + 2) + "|"]
    order = ["untrained", *[s for s in STRATEGIES if s in by_key]]
    for key in order:
        seeds = by_key[key]
        cells = []
        for i in range(len(names)):
            shares = [100 * layers[i].acute for layers in seeds.values()]
            cells.append(_mean_std(shares))
        overall = [100 * np.mean([a.acute for a in layers]) for layers in seeds.values()]
        lines.append(f"| {key} (n={len(seeds)}) | " + " | ".join(cells)
                     + f" | {_mean_std(overall)} |")  # fmt: skip
    random_cells = [f"{100 * a.random_acute:.1f}" for a in any_layers]
    lines.append("| random directions | " + " | ".join(random_cells) + " | 50 |")
    image_spread = [
        100 * float(np.mean([a.acute_per_image.std(ddof=1) for a in layers]))
        for seeds in by_key.values()
        for layers in seeds.values()
    ]
    figure = args.figures / f"layer_selection_{task.name}_angles.png"
    angle_histograms(by_key, figure)
    note = (
        f"Share of acute angles (%) between the directions to the {len(any_layers[0].teacher_layers)} "
        f"teacher blocks seen from each student block (width in brackets), {ANGLE_IMAGES} "
        f"validation images × 16 positions, mean ± std over seeds {sorted(args.seeds)}; the "
        f"image-to-image std of the share is {np.mean(image_spread):.1f} points on average. "
        f"Adapters: the run's trained ones for its matched pairs, the converged MSE adapter on "
        f"the frozen student ({FIT_IMAGES} training images) for the rest."
    )
    section = (f"```bash\n{cmd}\n```\n\n{note}\n\n" + "\n".join(lines)
               + f"\n\n![angle histograms](figures/{figure.name})")  # fmt: skip
    (args.out / f"layer_selection_{task.name}_angles.md").write_text(section + "\n")
    if args.readme is not None:
        update_readme(args.readme, readme_key(task, args, "-angles"), section)
    return section


def _mean_std(values: list[float]) -> str:
    mean, std = summarise(values)
    return f"{mean:.1f} ± {std:.1f}" if len(values) > 1 else f"{mean:.1f}"


def angle_histograms(by_key: dict[str, dict[int, list[Any]]], path: Path) -> None:
    """One panel per student layer: cosine histograms of the untrained student, the trained
    forward / reverse / none students (pooled over seeds) and random directions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [k for k in ("untrained", "none", "forward", "reverse", "all2one-deep") if k in by_key]
    first = next(iter(by_key[shown[0]].values()))
    cols = 4
    rows = math.ceil(len(first) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    bins = np.linspace(-1, 1, 41)
    for i, layer in enumerate(first):
        ax = axes[i // cols][i % cols]
        for key in shown:
            values = np.concatenate([layers[i].cosines for layers in by_key[key].values()])
            ax.hist(values, bins=bins, density=True, histtype="step", label=key, lw=1.2)
        ax.hist(layer.random_cosines, bins=bins, density=True, histtype="stepfilled",
                color="lightgrey", label="random", zorder=0)  # fmt: skip
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(f"{layer.student_layer} ({layer.width})", fontsize=8)
        ax.tick_params(labelsize=7)
    for j in range(len(first), rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("cos∠(t̃_j − s, t̃_k − s) per student block, all teacher-block pairs", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="cls")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[0],
                        help="teachers to train, each teaching its own students; the angle "
                             "step reads the first one's")  # fmt: skip
    parser.add_argument("--lr", type=float, default=None,
                        help="the students' learning rate (default: the config's)")  # fmt: skip
    parser.add_argument(
        "--strategies", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="STRATEGY",
        help=f"subset of {', '.join(VARIANTS)}",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--lanes", type=int, default=1, help="trainings at a time")
    parser.add_argument("--data-root", type=Path, default=Path("data/digits"))
    parser.add_argument("--work-root", type=Path, default=Path("work_dirs/layer_selection"))
    parser.add_argument("--out", type=Path, default=Path("outputs/layer_selection"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--readme", type=Path, default=None,
                        help="write the tables between their layer_selection markers here")  # fmt: skip
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--dry-run", action="store_true", help="print the commands only")
    steps.add_argument("--report-only", action="store_true", help="train nothing")
    steps.add_argument("--angles", action="store_true",
                       help="train nothing: the angle diagnostic of the finished runs")  # fmt: skip
    args = parser.parse_args(argv)
    for name in ("epochs", "teacher_epochs", "threads", "lanes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if len(set(args.teacher_seeds)) != len(args.teacher_seeds):
        parser.error(f"--teacher-seeds repeats a seed: {args.teacher_seeds}")
    for name in ("data_root", "work_root", "out", "figures"):
        setattr(args, name, getattr(args, name).resolve())
    args.variants = [v for v in VARIANTS if v in args.strategies]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cmd = shlex.join(["python", "tools/experiments/layer_selection.py", *(argv or sys.argv[1:])])
    task = TASKS[args.task]
    teachers, runs = plan(task, args)
    if args.dry_run:
        for run in [*teachers, *runs]:
            print(f"# {run.name}\n(cd {REPO} && OMP_NUM_THREADS={args.threads} "
                  f"{shlex.join(run.command())})")  # fmt: skip
        return 0
    key = readme_key(task, args, "-angles" if args.angles else "")
    if args.readme is not None:
        check_readme(args.readme, [key])
    if args.angles:
        print(angles(task, args, cmd))
        return 0
    if args.report_only:
        t_recs, results = [recorded(t) for t in teachers], [recorded(r) for r in runs]
    else:
        if not (args.data_root / task.name).is_dir():
            raise SystemExit(f"no {task.name} data under {args.data_root}; make it with "
                             "`python tools/make_digits.py --out data/digits`")  # fmt: skip
        total = len(teachers) + len(runs)
        done = sum(r.finished() for r in [*teachers, *runs])
        progress(f"{task.name}: {done} of {total} runs finished before; training the rest")
        t_recs = train_all(teachers, args.threads, args.lanes)
        results = train_all(runs, args.threads, args.lanes)
    print(write_report(task, args, cmd, t_recs, runs, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
