"""The report of an analysis: ``report.json`` (every number), ``report.md`` (tables beside the
paper's values) and PNG figures (CAM overlays, one bar chart per property).

The paper's values are those of "What Knowledge Gets Distilled in Knowledge Distillation?"
(arXiv:2205.16004) for ImageNet, a ResNet-50 teacher and ResNet-18 students; they show the
direction to expect, not numbers to match on another data set.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

from kd_det.analysis.what_distilled.pipeline import AnalysisResult

__all__ = ["PAPER_SETTING", "PAPER_VALUES", "markdown_report", "paper_key", "write_report"]

PAPER_SETTING = "ImageNet, ResNet-50 → ResNet-18"
#: Reported values per property and method: localization score (%), fooling rate of the
#: teacher's attacks (%), invariance to colour jitter (%, the paper's teacher trained with it).
PAPER_VALUES: dict[str, dict[str, float]] = {
    "localization": {"independent": 50.3, "KL": 67.2, "Hint": 52.9, "CRD": 55.6},
    "adversarial": {"independent": 44.2, "KL": 52.0, "Hint": 48.3, "CRD": 50.5},
    "invariance": {"teacher": 92.5, "independent": 71.3, "KL": 82.1},
}
_ROLE_LABELS = {"teacher": "T:", "distilled": "S_d:", "independent": "S_i:", "control": "C:"}
_METHOD_KEYS = {
    "kd": "KL", "logitkd": "KL", "kl": "KL", "fitnet": "Hint", "hint": "Hint", "crd": "CRD",
    "independent": "independent", "student": "independent", "teacher": "teacher",
}  # fmt: skip


def paper_key(method: str | None, role: str) -> str | None:
    """The paper's row for a model: its role for the teacher and the independent student, else
    its method (``'kd'``, ``'kd-tau4'``, ``'logitkd'`` → KL; ``'fitnet'`` → Hint; ``'crd'``)."""
    if role in ("teacher", "independent"):
        return role
    if not method:
        return None
    method = method.lower()
    return _METHOD_KEYS.get(method) or _METHOD_KEYS.get(method.split("-", 1)[0])


def _paper(prop: str, model: dict[str, Any]) -> str:
    key = paper_key(model.get("method"), model["role"])
    value = PAPER_VALUES[prop].get(key) if key else None
    return f"{value:.1f} ({key})" if value is not None else ""


def _fmt(value: float | None, digits: int = 1) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def markdown_report(summary: dict[str, Any]) -> str:
    """The Markdown report of an analysis summary."""
    models = summary["models"]
    by_name = {m["name"]: m for m in models}
    data = summary["data"]
    units = summary["units"]
    lines = [
        "# What did the students learn from their teacher?",
        "",
        f"Protocol of {summary['paper']}, for {summary['task']}. {data['num_images']} images "
        f"of the {data['split']} split of `{data['config']}`"
        + (f" ({data['num_boxes']} ground-truth boxes)" if data.get("num_boxes") else "")
        + f"; seed {summary['options']['seed']}; {summary['seconds']['total']:.0f} s on "
        f"{summary['threads']} thread(s). Paper values: {PAPER_SETTING}.",
        "",
        "| model | role | method | params | accuracy (%) | agreement with T (%) | config | checkpoint |",
        "|---|---|---|---|---|---|---|---|",
    ]
    acc, agree = summary["accuracy"], summary.get("agreement", {})
    for m in models:
        lines.append(
            f"| {m['name']} | {m['role']} | {m['method']} | {m['params']:,} | "
            f"{_fmt(acc.get(m['name']))} | {_fmt(agree.get(m['name'])) if m['role'] != 'teacher' else ''} | "
            f"`{m['config']}` | `{m['checkpoint']}` |"
        )
    lines += [
        "",
        "Accuracy: top-1 on the images (classifiers); % of ground-truth boxes whose box "
        "prediction is their class (detectors). Agreement: % of images with the teacher's top-1 "
        "class (classifiers); % of the teacher's detections matched by the model's, same class, "
        f"IoU >= {summary['options']['iou_thr']} (detectors).",
    ]
    if "localization" in summary:
        loc = summary["localization"]
        lines += [
            "",
            "## Localization: Grad-CAM of the ground-truth class",
            "",
            f"Score: % of {units} where cos(CAM_T, CAM_S) > cos(CAM_T, CAM_Si), S_i = "
            f"{loc['independent']!r} (chance 50).",
            "",
            f"| student | role | score (%) | mean cos(CAM_T, CAM_S) | {units} | all-zero maps | paper score |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, entry in loc["per_model"].items():
            m = by_name[name]
            lines.append(
                f"| {name} | {m['role']} | {_fmt(entry.get('score'))} | "
                f"{_fmt(entry['mean_cos_with_teacher'], 3)} | {entry['n']} | {entry['zero_maps']} | "
                f"{_paper('localization', m) if m['role'] == 'distilled' else ''} |"
            )
    if "adversarial" in summary:
        adv = summary["adversarial"]
        attack = adv["attack"]
        lines += [
            "",
            f"## Adversarial transfer: iterative FGSM, k = {attack['steps']}, ε = {attack['eps']:g}, "
            f"α = {attack['step']:g} (pixel units, 0–255)",
            "",
        ]
        for role in ("teacher", "control"):
            if role in adv:
                b = adv[role]
                lines.append(
                    f"* attacks crafted on the {role} {b['source']!r}: {b['source_fooled']} of "
                    f"{b['units']} {units} fool it ({_fmt(b['source_fooled_pct'])} %); kept."
                )
        header = "| model | role | fooled by the teacher's attacks (%) | n |"
        sep = "|---|---|---|---|"
        if "control" in adv:
            header += " fooled by the control's attacks (%) | n |"
            sep += "---|---|"
        lines += ["", header + " paper (teacher's attacks) |", sep + "---|"]
        for m in models:
            cells = [m["name"], m["role"]]
            for role in ("teacher", "control"):
                if role not in adv:
                    continue
                entry = adv[role]["per_model"].get(m["name"])
                cells += (
                    ["(source)", ""]
                    if entry is None
                    else [_fmt(entry["fooling_rate"]), str(entry["n"])]
                )
            cells.append(
                _paper("adversarial", m) if m["role"] in ("distilled", "independent") else ""
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append(
            "\nFooling rate: % of the kept units (those that fool the attacked model) whose "
            "prediction also changes for the model; for detectors a unit is a ground-truth box the "
            "model detected on the clean image, fooled when that detection changes class or is lost."
        )
    if "invariance" in summary:
        jitter = summary["options"]["jitter"]
        lines += [
            "",
            f"## Invariance to colour jitter (brightness {jitter['brightness']:g}, contrast "
            f"{jitter['contrast']:g}, saturation {jitter['saturation']:g}, hue {jitter['hue']:g})",
            "",
            "| model | role | unchanged (%) | n | paper |",
            "|---|---|---|---|---|",
        ]
        for m in models:
            entry = summary["invariance"][m["name"]]
            lines.append(
                f"| {m['name']} | {m['role']} | {_fmt(entry['unchanged'])} | {entry['n']} | "
                f"{_paper('invariance', m)} |"
            )
        lines.append(
            "\nUnchanged: % of images with the same top-1 class (classifiers); % of the model's "
            "clean detections matched on the jittered image, same class, IoU >= "
            f"{summary['options']['iou_thr']} (detectors). The paper's teacher was trained with "
            "colour jitter, its students without."
        )
    if "cka" in summary:
        cka = summary["cka"]
        names = list(cka["per_model"])
        lines += [
            "",
            f"## Linear CKA with the teacher's corresponding layer ({cka['images']} images)",
            "",
            "| layer | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for i, layer in enumerate(cka["layers"]):
            lines.append(
                f"| {layer} | " + " | ".join(_fmt(cka["per_model"][n][i], 3) for n in names) + " |"
            )
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
    lines += ["", f"Time: {seconds}.", ""]
    return "\n".join(lines)


def _bar(ax: Any, labels: list[str], values: list[float | None], title: str, ylabel: str,
         chance: float | None = None) -> None:  # fmt: skip
    xs = range(len(labels))
    ax.bar(xs, [0 if v is None else v for v in values], color="tab:blue")
    for x, v in zip(xs, values):
        ax.text(x, 0 if v is None else v, _fmt(v), ha="center", va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.legend(fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)


def _figures(result: AnalysisResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result.summary
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if result.examples:
        roles = {m["name"]: m["role"] for m in summary["models"]}
        names = list(result.examples[0]["cams"])
        rows, cols = len(result.examples), len(names) + 1
        fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
        for r, ex in enumerate(result.examples):
            image = ex["image"].numpy()
            for c in range(cols):
                ax = axes[r][c]
                ax.imshow(image)
                if c > 0:
                    cam = ex["cams"][names[c - 1]].numpy()
                    peak = cam.max()
                    ax.imshow(
                        cam / peak if peak > 0 else cam, cmap="jet", alpha=0.5, vmin=0, vmax=1
                    )
                if ex["box"] is not None:
                    x1, y1, x2, y2 = ex["box"]
                    ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                                               edgecolor="white", linewidth=1.2))  # fmt: skip
                title = (
                    f"image {ex['index']}, class {ex['label']}"
                    if c == 0
                    else f"{_ROLE_LABELS.get(roles.get(names[c - 1]), '')} {names[c - 1]}"
                )
                ax.set_title(textwrap.fill(title, 26), fontsize=7)
                ax.axis("off")
        save(fig, "cam_examples.png")
    if "localization" in summary:
        per = {n: e for n, e in summary["localization"]["per_model"].items() if "score" in e}
        fig, ax = plt.subplots(figsize=(1.2 * len(per) + 2.5, 3.2))
        _bar(ax, list(per), [e["score"] for e in per.values()],
             f"Localization vs {summary['localization']['independent']}", "% closer to T", 50.0)  # fmt: skip
        save(fig, "localization.png")
    if "adversarial" in summary:
        adv = summary["adversarial"]
        roles = [r for r in ("teacher", "control") if r in adv]
        fig, axes = plt.subplots(1, len(roles), figsize=(4.2 * len(roles), 3.4), squeeze=False)
        for ax, role in zip(axes[0], roles):
            per = adv[role]["per_model"]
            _bar(ax, list(per), [e["fooling_rate"] for e in per.values()],
                 f"Attacks crafted on {adv[role]['source']}", "fooling rate (%)")  # fmt: skip
        save(fig, "adversarial.png")
    if "invariance" in summary:
        inv = summary["invariance"]
        fig, ax = plt.subplots(figsize=(1.1 * len(inv) + 2.5, 3.2))
        _bar(ax, list(inv), [e["unchanged"] for e in inv.values()], "Invariance to colour jitter",
             "unchanged (%)")  # fmt: skip
        save(fig, "invariance.png")
    agree = summary.get("agreement") or {}
    if agree:
        fig, ax = plt.subplots(figsize=(1.1 * len(agree) + 2.5, 3.2))
        _bar(ax, list(agree), list(agree.values()), "Agreement with the teacher (clean)", "%")
        save(fig, "agreement.png")
    if "cka" in summary:
        cka = summary["cka"]
        names = list(cka["per_model"])
        layers = cka["layers"]
        width = 0.8 / max(1, len(names))
        fig, ax = plt.subplots(figsize=(0.9 * len(layers) + 3, 3.4))
        for k, name in enumerate(names):
            vals = [0 if v is None else v for v in cka["per_model"][name]]
            ax.bar([i + k * width for i in range(len(layers))], vals, width, label=name)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], layers, rotation=20,
                      ha="right", fontsize=8)  # fmt: skip
        ax.set_ylabel("linear CKA with T")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title("CKA between corresponding layers", fontsize=10)
        save(fig, "cka.png")
    return written


def write_report(result: AnalysisResult, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the PNG figures into ``out``; returns their
    paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    paths["json"].write_text(json.dumps(result.summary, indent=1))
    paths["markdown"].write_text(markdown_report(result.summary))
    for path in _figures(result, out):
        paths[path.stem] = path
    return paths
