"""The main job behind ``make demo``: distillation on the digits detection set, on a CPU.

1. writes the digits detection set under ``data/digits`` (real handwriting from scikit-learn);
2. trains the wide RetinaNet teacher (both cores);
3. trains the narrow student alone and the narrow student distilled from the teacher side by
   side, one core each;
4. exports the distilled student to a plain mmdet checkpoint and evaluates it with mmdet's own
   ``test.py``;
5. prints a table (COCO mAP of each model, from the runs' own validation) and writes it with a
   figure (``demo.png``: the scores, and the students' training curves with each distill term)
   to the output folder.

Every stage shows one live progress line (stage, epoch/iteration, loss, estimate); full logs
go to ``<out>/<stage>.log``, and a stage that fails prints the end of its log. Stages whose
final checkpoint exists are skipped, so an interrupted demo continues where it stopped.

Sizes: the default (``make demo``) is sized to finish in under 20 minutes on 2 cores;
``--full`` (``make demo-full``) is the 24-epoch, 2,000-image study; ``--quick`` is a
few-minute smoke run whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kd_det.apis import read_metrics, read_scalars

REPO = Path(__file__).resolve().parents[1]
TEACHER = "configs/baselines/retinanet_r18-w32_fpn_24e_digits.py"
STUDENT = "configs/baselines/retinanet_r18-w8_fpn_24e_digits.py"
DISTILLED = "configs/srd/srd-mse-fpnonly_retinanet-w32-w8_fpn_24e_digits.py"
#: the students' AdamW learning rate in the short default schedule: of 1e-3 (the configs'),
#: 3e-3 and 6e-3, the one at which the student *alone* scored best (5.0, 7.4, 6.4 mAP)
STUDENT_LR = 3e-3
METRIC = "coco/bbox_mAP"

#: name: (train images, val images, teacher epochs, student epochs, students' lr or None)
SIZES = {
    "default": (2000, 300, 10, 4, STUDENT_LR),
    "full": (2000, 500, 24, 24, None),
    "quick": (120, 40, 2, 1, None),
}

TRAIN_LINE = re.compile(
    r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\].*?eta: (\S+).*?\bloss: ([0-9.]+)"
)
VAL_LINE = re.compile(r"Epoch\(val\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")


def fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class Job:
    """One subprocess of the demo, its log, and what its log says about its progress."""

    name: str
    args: list[str]
    log: Path
    threads: int
    epochs: int = 0
    proc: subprocess.Popen | None = None
    start: float = field(default_factory=time.monotonic)
    status: str = "starting"

    def launch(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1")
        env["MKL_NUM_THREADS"] = str(self.threads)
        with self.log.open("w") as f:
            f.write("$ python " + " ".join(self.args) + "\n")
            f.flush()
            self.proc = subprocess.Popen(
                [sys.executable, *self.args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env
            )
        self.start = time.monotonic()

    def refresh(self) -> None:
        """Read the newest training or validation line of the log into ``status``."""
        text = self.log.read_text(errors="replace")[-20000:]
        train = list(TRAIN_LINE.finditer(text))
        val = list(VAL_LINE.finditer(text))
        last_train = train[-1] if train else None
        if val and (last_train is None or val[-1].start() > last_train.start()):
            epoch, i, n = val[-1].groups()
            self.status = f"validating after epoch {epoch} ({i}/{n})"
        elif last_train is not None:
            epoch, i, n, eta, loss = last_train.groups()
            self.status = f"epoch {epoch}/{self.epochs} it {i}/{n} loss {loss} eta {eta}"

    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def check(self) -> None:
        assert self.proc is not None
        if self.proc.returncode:
            tail = self.log.read_text(errors="replace")[-3000:]
            sys.exit(
                f"\n[{self.name}] failed (exit {self.proc.returncode}); the end of {self.log}:\n"
                f"{tail}"
            )


def run_jobs(jobs: list[Job]) -> None:
    """Run ``jobs`` at the same time, showing one progress line until all have finished."""
    for job in jobs:
        print(f"[{job.name}] log: {job.log}", flush=True)
        job.launch()
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((120, 20)).columns
    last_print = 0.0
    while True:
        done = all(job.finished() for job in jobs)
        for job in jobs:
            job.refresh()
        line = " | ".join(
            f"{job.name} {fmt_time(time.monotonic() - job.start)}: "
            + ("done" if job.finished() and not job.proc.returncode else job.status)
            for job in jobs
        )
        if tty:
            print("\r" + line[: width - 1].ljust(width - 1), end="", flush=True)
        elif done or time.monotonic() - last_print >= 30:
            print(line, flush=True)
            last_print = time.monotonic()
        if done:
            break
        time.sleep(1.0)
    if tty:
        print()
    for job in jobs:
        job.check()


def metric(work_dir: Path, key: str) -> float:
    """``key`` of the last evaluation logged in ``work_dir``."""
    value = read_metrics(work_dir).get(key)
    if value is None:
        sys.exit(f"no {key} logged under {work_dir}: its evaluation found no detection")
    return value


def check_data(root: Path, num_train: int, num_val: int) -> None:
    """Refuse a data folder written with other sizes than this demo's (it would be reused)."""
    for split, want in (("train", num_train), ("val", num_val)):
        ann = root / "det" / "annotations" / f"{split}.json"
        if ann.is_file() and (got := len(json.loads(ann.read_text())["images"])) != want:
            sys.exit(
                f"{ann} holds {got} {split} images, this demo uses {want}: give another --data "
                f"folder, or remove {root} to have it written again"
            )


def data_options(data: str) -> list[str]:
    return [
        f"train_dataloader.dataset.data_root={data}/det/",
        f"val_dataloader.dataset.data_root={data}/det/",
        f"test_dataloader.dataset.data_root={data}/det/",
        f"val_evaluator.ann_file={data}/det/annotations/val.json",
        f"test_evaluator.ann_file={data}/det/annotations/val.json",
    ]


def schedule_options(epochs: int) -> list[str]:
    """The configs' step schedule (decay at 2/3 and 11/12 of training) for ``epochs``."""
    milestones = sorted({max(1, round(epochs * 2 / 3)), max(1, round(epochs * 11 / 12))})
    return [
        f"train_cfg.max_epochs={epochs}",
        f"train_cfg.val_interval={epochs}",
        f"param_scheduler.1.end={epochs}",
        f"param_scheduler.1.milestones={milestones}",
        "default_hooks.logger.interval=10",
    ]


def figure(path: Path, scores: dict[str, float], curves: dict[str, list[dict]], title: str) -> None:
    """Bars of the scores; the students' training losses and distill terms over iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_bar, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(scores)
    colors = ["#4c72b0", "#8c8c8c", "#dd8452", "#c44e52"][: len(names)]
    bars = ax_bar.bar(range(len(names)), [100 * scores[n] for n in names], color=colors)
    ax_bar.bar_label(bars, fmt="%.1f")
    ax_bar.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)
    ax_bar.set_ylabel("COCO mAP (%)")
    ax_bar.set_title(title, fontsize=9)

    def smooth(values: list[float], k: int = 10) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return np.convolve(v, np.ones(k) / k, mode="valid") if len(v) > k else v

    for label, records in curves.items():
        train = [r for r in records if "loss" in r and "step" in r]
        terms = sorted({k for r in train for k in r if k.startswith("distill.")})
        steps = smooth([r["step"] for r in train])
        # the task loss: what the student is trained on besides the distill terms
        task = [r["loss"] - sum(r.get(k, 0.0) for k in terms) for r in train]
        ax_loss.plot(steps, smooth(task), "-", label=f"{label}: task loss")
        for key in terms:
            values = [r.get(key, float("nan")) for r in train]
            ax_loss.plot(steps, smooth(values), "--", label=f"{label}: {key}")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss (moving average of 10 logs)")
    ax_loss.set_yscale("symlog", linthresh=0.1)
    ax_loss.legend(fontsize=7)
    ax_loss.set_title("training losses of the two students", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the 24-epoch, 2000-image study")
    size.add_argument("--quick", action="store_true", help="a few-minute smoke run")
    parser.add_argument(
        "--data",
        default=None,
        help="data folder (default data/digits_demo[_quick]; full: data/digits)",
    )
    parser.add_argument("--out", default=None, help="output folder (default work_dirs/demo[_SIZE])")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every model (default 0; the data stay fixed)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all (default 2)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = "full" if args.full else "quick" if args.quick else "default"
    num_train, num_val, teacher_epochs, epochs, student_lr = SIZES[size]
    suffix = "" if size == "default" else f"_{size}"
    # the full size is make_digits.py's default set, the one the configs read
    data = args.data or ("data/digits" if size == "full" else f"data/digits_demo{suffix}")
    out = Path(args.out or f"work_dirs/demo{suffix}")
    if not out.is_absolute():
        out = REPO / out
    both, one = args.threads, max(1, args.threads // 2)
    start = time.monotonic()
    print(
        f"kd_det demo ({size}): RetinaNet teacher ({teacher_epochs} epochs) and students "
        f"({epochs} epochs) on {num_train} digits images, seed {args.seed}; output in {out}",
        flush=True,
    )

    check_data(REPO / data, num_train, num_val)
    if not (REPO / data / "det/annotations/val.json").is_file():
        make = ["tools/make_digits.py", "--out", data, "--num-train", str(num_train),
                "--num-val", str(num_val), "--only", "det"]  # fmt: skip
        run_jobs([Job("data", make, out / "make_digits.log", both)])
    common = [*data_options(data), f"randomness.seed={args.seed}"]

    def train(
        name: str, config: str, threads: int, epochs: int, *extra: str
    ) -> tuple[Path, Job | None]:
        work = out / Path(config).stem
        ckpt = work / f"epoch_{epochs}.pth"
        if ckpt.is_file():
            print(f"[{name}] {ckpt} exists: skipped", flush=True)
            return work, None
        options = [*common, *schedule_options(epochs), *extra]
        argv = ["tools/train.py", config, "--work-dir", str(work), "--cfg-options", *options]
        return work, Job(name, argv, out / f"{work.name}.log", threads, epochs)

    teacher_dir, job = train("teacher", TEACHER, both, teacher_epochs)
    if job:
        run_jobs([job])
    teacher_ckpt = teacher_dir / f"epoch_{teacher_epochs}.pth"
    lr = [f"optim_wrapper.optimizer.lr={student_lr}"] if student_lr else []
    student_dir, job_s = train("student alone", STUDENT, one, epochs, *lr)
    distill_dir, job_d = train(
        "distilled", DISTILLED, one, epochs, *lr, f"model.teacher_ckpt={teacher_ckpt}"
    )
    if job_s or job_d:
        run_jobs([j for j in (job_s, job_d) if j])

    export = out / "export"
    exported = export / "student.pth"
    mmdet_test = Path(__import__("mmdet").__file__).parent / ".mim" / "tools" / "test.py"
    run_jobs([Job("export", ["tools/export_student.py", DISTILLED,
                             str(distill_dir / f"epoch_{epochs}.pth"), str(exported)],
                  out / "export.log", both)])  # fmt: skip
    run_jobs([Job("exported student, mmdet test.py", [str(mmdet_test), str(exported.with_suffix(".py")),
                  str(exported), "--work-dir", str(export / "test"), "--cfg-options",
                  *data_options(data)], out / "export_test.log", both)])  # fmt: skip

    dirs = {"teacher": teacher_dir, "student alone": student_dir, "distilled": distill_dir}
    scores = {name: metric(d, METRIC) for name, d in dirs.items()}
    scores["exported student"] = metric(export / "test", METRIC)
    ap50 = {name: metric(d, METRIC + "_50") for name, d in dirs.items()}
    curves = {"student alone": read_scalars(student_dir), "distilled": read_scalars(distill_dir)}
    gap = scores["teacher"] - scores["student alone"]
    closed = (scores["distilled"] - scores["student alone"]) / gap if gap > 0 else float("nan")
    minutes = (time.monotonic() - start) / 60
    labels = {
        "teacher": f"teacher ({TEACHER})",
        "student alone": f"student alone ({STUDENT})",
        "distilled": f"student distilled ({DISTILLED})",
        "exported student": "exported student, evaluated by mmdet's test.py",
    }
    lines = [
        f"Digits detection, {num_train} train / {num_val} val images; teacher {teacher_epochs} "
        f"epochs, students {epochs} epochs"
        + (f" at lr {student_lr:g}" if student_lr else "")
        + f"; 1 seed ({args.seed}) per model; {args.threads} CPU threads; this run took "
        f"{minutes:.1f} min.",
        "",
        "| model | COCO mAP (%) | mAP@0.5 (%) |",
        "|---|---|---|",
        *[
            f"| {labels[n]} | {100 * s:.1f} | {100 * ap50[n]:.1f} |"
            if n in ap50
            else f"| {labels[n]} | {100 * s:.1f} | |"
            for n, s in scores.items()
        ],
        "",
        f"Teacher − student gap {100 * gap:.1f} points; the distilled student closes "
        f"{100 * closed:.0f} % of it.",
    ]
    table = "\n".join(lines)
    (out / "demo_results.md").write_text(table + "\n")
    png = out / "demo.png"
    title = (
        f"teacher {teacher_epochs} ep, students {epochs} ep, {num_train} images, seed {args.seed}"
    )
    figure(png, scores, curves, title)
    print(f"\n{table}\n\nwritten to {out / 'demo_results.md'} and {png}")


if __name__ == "__main__":
    main()
