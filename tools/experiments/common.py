"""Plumbing every experiment script shares: train a config for several seeds through
``tools/train.py`` (resumable), collect each run's metric with :func:`kd_det.apis.read_metrics`,
summarise mean ± std tables, and write a table between two marker lines of a README.

A study defines its configs and options and calls these; see ``feature_kd.py``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kd_det.apis import read_metrics

REPO = Path(__file__).resolve().parents[2]
TRAIN = "tools/train.py"
RECORD_FIELDS = ("task", "variant", "seed", "epochs", "metric", "value", "seconds", "note",
                 "config")  # fmt: skip

Log = Callable[[str], None]


def progress(message: str) -> None:
    """Progress on stdout, flushed at once (a sweep runs for hours)."""
    print(message, flush=True)


@dataclass
class Run:
    """One training run: what it trains, where it writes and which metric it reports.

    ``missing_value`` is what a finished run reports when its metric was not logged (with the
    note ``missing_note``); None makes that an error. mmdet's ``CocoMetric`` logs no mAP for a
    model that made no detection at all, which is an AP of 0.
    """

    task: str
    variant: str
    seed: int
    config: str
    work_dir: Path
    epochs: int
    cfg_options: list[str]
    metric: str
    missing_value: float | None = None
    missing_note: str = ""
    result_name: str = "result.json"  # runs that share a work dir report into their own file
    teacher_seed: int | None = None  # the seed of the teacher that taught it (None: no teacher)

    @property
    def checkpoint(self) -> Path:
        return self.work_dir / f"epoch_{self.epochs}.pth"

    @property
    def result_file(self) -> Path:
        return self.work_dir / self.result_name

    @property
    def name(self) -> str:
        return f"{self.task} {self.variant} seed {self.seed}"

    def command(self) -> list[str]:
        """The ``tools/train.py`` command line (relative to the repository root)."""
        return [sys.executable, TRAIN, self.config, "--work-dir", str(self.work_dir),
                "--cfg-options", *self.cfg_options]  # fmt: skip

    def metric_value(self) -> float | None:
        """The run's last validated value of its metric, None if none was logged."""
        try:
            return read_metrics(self.work_dir).get(self.metric)
        except FileNotFoundError:
            return None

    def finished(self) -> bool:
        """The final checkpoint exists and the result was recorded or the metric logged."""
        return self.checkpoint.is_file() and (
            self.result_file.is_file() or self.metric_value() is not None
        )

    def record(self, value: float, seconds: float | None, note: str = "") -> dict[str, Any]:
        """One row of the results: what ran, its metric and how long it took."""
        return dict(task=self.task, variant=self.variant, seed=self.seed, epochs=self.epochs,
                    metric=self.metric, value=value,
                    seconds=None if seconds is None else round(seconds, 1), note=note,
                    config=self.config)  # fmt: skip

    def result(self, seconds: float | None) -> dict[str, Any]:
        """The record of a trained run, from its logged metric."""
        value = self.metric_value()
        if value is not None:
            return self.record(value, seconds)
        if self.missing_value is None:
            raise RuntimeError(f"{self.work_dir}: no {self.metric} was logged")
        return self.record(self.missing_value, seconds, self.missing_note)


def schedule_options(epochs: int, milestones: Sequence[float] = ()) -> list[str]:
    """``--cfg-options`` that give a config ``epochs`` epochs: its loop, the validation at the
    end, one final checkpoint and, with ``milestones`` (fractions of the epochs), the
    ``MultiStepLR`` (second scheduler) steps."""
    opts = [
        f"train_cfg.max_epochs={epochs}",
        f"train_cfg.val_interval={epochs}",
        f"param_scheduler.1.end={epochs}",
        f"default_hooks.checkpoint.interval={epochs}",
        "default_hooks.checkpoint.max_keep_ckpts=1",
    ]
    if milestones:
        marks = sorted({min(epochs, max(1, round(f * epochs))) for f in milestones})
        opts.append(f"param_scheduler.1.milestones=[{','.join(map(str, marks))}]")
    return opts


def execute(run: Run, threads: int, log: Log = progress) -> dict[str, Any]:
    """Train ``run`` in a ``tools/train.py`` subprocess unless it finished before, and return
    its record (also kept in ``run.result_file``, so a finished run is never trained twice)."""
    if run.finished():
        log(f"skip (done): {run.name}")
        if not run.result_file.is_file():  # trained by an interrupted sweep: record it now
            run.result_file.write_text(json.dumps(run.result(None), indent=1))
        return json.loads(run.result_file.read_text())
    run.work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")  # fmt: skip
    log(f"train: {run.name}")
    start = time.time()
    train_log = run.work_dir / "train.log"
    with open(train_log, "w") as out:
        proc = subprocess.run(run.command(), cwd=REPO, env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    seconds = time.time() - start
    if proc.returncode != 0 or not run.checkpoint.is_file():
        raise RuntimeError(
            f"{run.name} failed (exit {proc.returncode}); log {train_log}:\n"
            f"{train_log.read_text()[-4000:]}"
        )
    result = run.result(seconds)
    run.result_file.write_text(json.dumps(result, indent=1))
    log(f"  {run.metric} = {result['value']:.4f} ({seconds:.0f} s)")
    return result


def train_all(runs: list[Run], threads: int, lanes: int) -> list[dict]:
    """Train every run, ``lanes`` at a time; a mutual run's second network reads the first's
    training. A failed run does not stop the others; the failures are raised at the end.
    Results in the order of ``runs``."""
    first: dict[Path, Run] = {}
    for r in runs:
        first.setdefault(r.work_dir, r)
    failed: list[str] = []

    def train(run: Run) -> None:
        try:
            execute(run, threads)
        except RuntimeError as err:
            failed.append(str(err))
            print(f"FAILED: {run.name}", flush=True)

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(train, first.values()))
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed:\n" + "\n\n".join(failed))
    return [recorded(r) for r in runs]  # all finished now: their records, no second log line


def recorded(run: Run) -> dict[str, Any]:
    """The record of a finished run, without training; ``SystemExit`` if it did not finish."""
    if not run.finished():
        raise SystemExit(f"{run.name} has not finished (no {run.checkpoint} with a result)")
    if run.result_file.is_file():
        return json.loads(run.result_file.read_text())
    return run.result(None)


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def teachers_suffix(seeds: Sequence[int]) -> str:
    """What a study's README key adds when it has several teachers: ``'-t0-1'`` for seeds 0
    and 1, nothing for one."""
    return "-t" + "-".join(map(str, seeds)) if len(seeds) > 1 else ""


def gap_closed(mean: float, base: float, gap: float) -> str:
    """``100 · (mean − base) / gap`` rounded, as table text; ``'–'`` when there is no gap (a
    teacher no better than the baseline closes nothing that can be counted)."""
    return f"{100 * (mean - base) / gap:.0f}" if gap > 0 else "–"


def mean_std_table(
    records: Iterable[dict[str, Any]],
    labels: dict[str, str],
    metric_label: str,
    scale: float = 1.0,
    teacher: dict[str, Any] | None = None,
    baseline: str | None = "student",
    gap: bool = False,
) -> str:
    """A markdown table: one row per variant of ``labels`` (in that order) that has records,
    with mean ± std of ``value × scale`` over seeds, the count, the difference to the
    ``baseline`` variant's mean and the per-seed values; the ``teacher`` record first. With
    ``gap``, also the share of the teacher–baseline gap each variant closes,
    ``100 · (mean − baseline) / (teacher − baseline)``."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_variant.setdefault(rec["variant"], []).append(rec)
    base_recs = by_variant.get(baseline) if baseline else None
    base = summarise([r["value"] * scale for r in base_recs])[0] if base_recs else None
    gap_to = teacher["value"] * scale - base if gap and teacher and base is not None else None
    extra = ("", "") if gap_to is None else (" gap closed (%) |", "---|")
    lines = [
        f"| variant | {metric_label} mean ± std | n | Δ vs {baseline or '-'} |{extra[0]} per seed |",
        f"|---|---|---|---|{extra[1]}---|",
    ]
    if teacher is not None:
        lines.append(
            f"| teacher (seed {teacher['seed']}, {teacher['epochs']} ep) "
            f"| {teacher['value'] * scale:.2f} | 1 | |{'' if gap_to is None else ' |'} |"
        )
    for variant, label in labels.items():
        recs = sorted(by_variant.get(variant, []), key=lambda r: r["seed"])
        if not recs:
            continue
        values = [r["value"] * scale for r in recs]
        mean, std = summarise(values)
        delta = "" if base is None or variant == baseline else f"{mean - base:+.2f}"
        closed = ""
        if gap_to is not None:
            closed = " |" if variant == baseline else f" {gap_closed(mean, base, gap_to)} |"
        seeds = ", ".join(f"{r['seed']}: {v:.2f}" for r, v in zip(recs, values, strict=True))
        lines.append(f"| {variant} ({label.strip()}) | {mean:.2f} ± {std:.2f} | {len(recs)} "
                     f"| {delta} |{closed} {seeds} |")  # fmt: skip
    return "\n".join(lines)


def write_csv(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One row per run record."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(records)


def readme_markers(key: str) -> tuple[str, str]:
    """The two lines that enclose the section ``key`` of a README."""
    return f"<!-- {key} -->", f"<!-- /{key} -->"


def check_readme(path: Path, keys: Iterable[str]) -> None:
    """Raise ``SystemExit`` naming the missing markers unless ``path`` has every section
    (call it before anything trains)."""
    if not path.is_file():
        raise SystemExit(f"--readme {path}: no such file")
    text = path.read_text()
    missing = [
        f"{begin} … {end}"
        for begin, end in map(readme_markers, keys)
        if not 0 <= text.find(begin) < text.find(end)
    ]
    if missing:
        raise SystemExit(
            f"--readme {path}: add these marker lines, in this order, where the tables "
            f"should go: {'; '.join(missing)}"
        )


def update_readme(path: Path, key: str, section: str) -> None:
    """Replace what lies between the markers of ``key`` in ``path`` with ``section``."""
    begin, end = readme_markers(key)
    head, _, rest = path.read_text().partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{section}\n{end}{tail}")
