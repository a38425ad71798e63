"""The main job behind ``make demo``: distillation on the digits detection set, on a CPU.

1. writes the digits sets under data/digits (real handwriting from scikit-learn);
2. trains the wide RetinaNet teacher and the narrow student alone (AdamW, 24 epochs);
3. trains the narrow student distilled from the teacher (seed 001: projector + BN + log-sum on
   the FPN levels, sigmoid KD on the classification logits);
4. evaluates all three with COCO mAP, exports the distilled student to a plain mmdet
   checkpoint and evaluates that with mmdet's own test.py;
5. prints a table and writes it to work_dirs/demo_results.md.

Each model trains in work_dirs/<config name>/, the folder ``tools/train.py CONFIG`` uses, and
the distilled student's config reads its teacher from there.

Steps whose checkpoint exists are skipped, so an interrupted demo continues where it stopped.
``--quick`` runs a few-minute version (fewer images and epochs; numbers are not meaningful).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import mmdet

REPO = Path(__file__).resolve().parents[1]
MMDET_TEST = Path(mmdet.__file__).parent / ".mim" / "tools" / "test.py"
CONFIGS = {
    "teacher": "configs/demo/retinanet_teacher_digits.py",
    "student alone": "configs/demo/retinanet_student_digits.py",
    "student distilled": "configs/demo/retinanet_pkd-logsum_digits.py",
}


def run(args: list[str], log: Path) -> str:
    print("$", " ".join(args), f"  (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}); the end of {log}:\n{text[-3000:]}")
    return text


def metric(text: str, key: str = "coco/bbox_mAP") -> float:
    found = re.findall(rf"{re.escape(key)}: (-?[0-9.]+)", text)
    if not found:
        sys.exit(f"no {key} in the output")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke version")
    parser.add_argument("--data", default=None, help="data folder (default data/digits[_quick])")
    parser.add_argument(
        "--out", default=None, help="work dirs (default work_dirs, quick: work_dirs/quick)"
    )
    args = parser.parse_args()
    out = REPO / (args.out or ("work_dirs/quick" if args.quick else "work_dirs"))
    epochs, num_train = (3, 200) if args.quick else (24, 2000)
    data = args.data or ("data/digits_quick" if args.quick else "data/digits")
    start = time.time()

    if not (REPO / data / "det/annotations/val.json").is_file():
        run(["tools/make_digits.py", "--out", data, "--num-train", str(num_train),
             "--num-val", "500", "--only", "det"], out / "make_digits.log")  # fmt: skip
    common = [
        f"train_cfg.max_epochs={epochs}",
        f"train_cfg.val_interval={epochs}",
        f"train_dataloader.dataset.data_root={data}/det/",
        f"val_dataloader.dataset.data_root={data}/det/",
        f"test_dataloader.dataset.data_root={data}/det/",
        f"val_evaluator.ann_file={data}/det/annotations/val.json",
        f"test_evaluator.ann_file={data}/det/annotations/val.json",
    ]
    if args.quick:
        common.append("param_scheduler.1.milestones=[2]")
    scores: dict[str, float] = {}
    ckpts: dict[str, Path] = {}
    for name, config in CONFIGS.items():
        work = out / Path(config).stem
        ckpt = work / f"epoch_{epochs}.pth"
        options = list(common)
        if name == "student distilled":
            options.append(f"model.teacher_ckpt={ckpts['teacher']}")
        if not ckpt.is_file():
            run(["tools/train.py", config, "--work-dir", str(work), "--cfg-options", *options],
                work.parent / f"{work.name}.train.log")  # fmt: skip
        text = run(["tools/test.py", config, str(ckpt), "--work-dir", str(work / "test"),
                    "--cfg-options", *options], work.parent / f"{work.name}.test.log")  # fmt: skip
        scores[name] = metric(text)
        ckpts[name] = ckpt
        print(f"  {name}: COCO mAP {scores[name]:.3f}", flush=True)

    exported = out / "export" / "student.pth"
    run(["tools/export_student.py", CONFIGS["student distilled"], str(ckpts["student distilled"]),
         str(exported)], out / "export.log")  # fmt: skip
    # the exported config still reads the default data paths: point it at this demo's data
    text = run([str(MMDET_TEST), str(exported.with_suffix(".py")), str(exported),
                "--work-dir", str(out / "export" / "test"),
                "--cfg-options", *common[2:]], out / "export.test.log")  # fmt: skip
    scores["exported student (mmdet test.py)"] = metric(text)

    lines = [
        f"| model ({'quick, ' if args.quick else ''}{epochs} epochs, {num_train} images) | COCO mAP |",
        "|---|---|",
        *[f"| {name} | {score:.3f} |" for name, score in scores.items()],
    ]
    table = "\n".join(lines)
    results = out / "demo_results.md"
    results.write_text(table + "\n")
    print(f"\n{table}\n\nwritten to {results} in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
