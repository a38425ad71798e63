"""The analysis in one call: load the models, check them, and measure every property over the
evaluation images in batches.

    >>> from kd_det.analysis.what_distilled import AnalysisOptions, ModelSpec, analyse, write_report
    >>> result = analyse(
    ...     teacher=ModelSpec('configs/baselines/resnet18-w32_30e_digits-cls.py', 'T.pth'),
    ...     distilled=[ModelSpec('configs/kd/kd_resnet18-w32-w8_30e_digits-cls.py', 'Sd.pth')],
    ...     independent=ModelSpec('configs/baselines/resnet18-w8_30e_digits-cls.py', 'Si.pth'),
    ...     options=AnalysisOptions(num_images=500, seed=0))
    >>> write_report(result, 'outputs/what_distilled')

Every image is seen once: its clean predictions (and CKA layers), Grad-CAM maps, a colour
jitter and the attacks are all computed on the same batch, each model run batched.
"""

from __future__ import annotations

import copy
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from kd_det.analysis.cka import linear_cka
from kd_det.analysis.what_distilled.adversarial import (
    AttackSpec,
    classifier_attack_loss,
    detector_attack_loss,
    fooled,
    ifgsm,
    transfer_rates,
)
from kd_det.analysis.what_distilled.agreement import (
    Detections,
    box_predictions,
    classifier_logits,
    detect,
    detect_from_features,
    greedy_matches,
)
from kd_det.analysis.what_distilled.cam import (
    box_targets,
    cam_cosine,
    check_box_cam_support,
    classifier_cams,
    detector_box_cams,
    localization_score,
    upsample_cams,
)
from kd_det.analysis.what_distilled.data import (
    Batch,
    batches,
    build_dataset,
    check_ground_truth,
    choose_indices,
)
from kd_det.analysis.what_distilled.invariance import JitterSpec, color_jitter, sample_jitter
from kd_det.analysis.what_distilled.models import (
    LoadedModel,
    ModelSpec,
    check_comparable,
    load_model,
)
from kd_det.capture import FeatureRecorder

__all__ = [
    "PAPER",
    "PROPERTIES",
    "AnalysisOptions",
    "AnalysisResult",
    "analyse",
    "default_cka_layers",
    "load_models",
]

PROPERTIES = ("localization", "adversarial", "invariance", "cka", "agreement")
PAPER = (
    "What Knowledge Gets Distilled in Knowledge Distillation? (Ojha, Li, Sundara Rajan, Liang "
    "& Lee, NeurIPS 2023, arXiv:2205.16004)"
)
_CKA_PATTERNS = (r"backbone\.layer\d+", r"neck\.fpn_convs\.\d+", r"head\.fc")


@dataclass
class AnalysisOptions:
    """What to measure and on what.

    Args:
        num_images: analyse this many images of the split (a seeded random subset), or all.
        batch_size: images per batch (default: the config's dataloader batch size).
        seed: seeds the image subset, the colour jitter and torch.
        properties: a subset of :data:`PROPERTIES`.
        attack: iterative FGSM ``eps``/``step``/``steps`` in pixel units.
        jitter: colour jitter strengths.
        score_thr: detections below this score are not predictions (detectors).
        iou_thr: IoU for matching detections with each other and with ground-truth boxes.
        cka_layers: module paths compared by CKA in the teacher and every student (default:
            :func:`default_cka_layers`).
        cka_images: CKA uses the first this-many analysed images.
        cam_chunk: ground-truth boxes per Grad-CAM call (detectors).
        num_examples: images (boxes) whose CAM maps are kept for the overlay figure.
        split: ``'val'`` or ``'test'`` dataloader of the teacher's config.
        dataset_options: overrides merged into the teacher's config before its dataset is
            built, e.g. ``{'val_dataloader.dataset.data_root': 'data/digits_demo/det/'}``.
        progress: show a progress bar on stderr.
    """

    num_images: int | None = None
    batch_size: int | None = None
    seed: int = 0
    properties: tuple[str, ...] = PROPERTIES
    attack: AttackSpec = field(default_factory=AttackSpec)
    jitter: JitterSpec = field(default_factory=JitterSpec)
    score_thr: float = 0.3
    iou_thr: float = 0.5
    cka_layers: tuple[str, ...] | None = None
    cka_images: int = 500
    cam_chunk: int = 64
    num_examples: int = 4
    split: str = "val"
    dataset_options: dict[str, Any] | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.properties = tuple(self.properties)
        unknown = [p for p in self.properties if p not in PROPERTIES]
        if unknown or not self.properties:
            raise ValueError(
                f"properties must be a non-empty subset of {PROPERTIES}, got {list(self.properties)}"
            )
        for name, low in (("num_images", 1), ("batch_size", 1), ("cka_images", 2),
                          ("cam_chunk", 1), ("num_examples", 0)):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 < self.score_thr < 1:
            raise ValueError(f"score_thr must be in (0, 1), got {self.score_thr}")
        if not 0 < self.iou_thr <= 1:
            raise ValueError(f"iou_thr must be in (0, 1], got {self.iou_thr}")
        if self.split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {self.split!r}")
        if self.cka_layers is not None:
            self.cka_layers = tuple(self.cka_layers)


@dataclass
class AnalysisResult:
    """``summary``: every number (JSON-ready); ``examples``: CAM maps of the first images
    (boxes) for the overlay figure."""

    summary: dict[str, Any]
    examples: list[dict[str, Any]]


def load_models(
    teacher: ModelSpec,
    distilled: Sequence[ModelSpec],
    independent: ModelSpec,
    control: ModelSpec | None = None,
) -> list[LoadedModel]:
    """Load and check every model: teacher, distilled students, independent student, control."""
    if not distilled:
        raise ValueError("give at least one distilled student")
    models = [load_model(teacher, "teacher")]
    models += [load_model(spec, "distilled") for spec in distilled]
    models.append(load_model(independent, "independent"))
    if control is not None:
        models.append(load_model(control, "control"))
    check_comparable(models)
    return models


def default_cka_layers(models: Sequence[LoadedModel]) -> list[str]:
    """The modules named ``backbone.layer<i>``, ``neck.fpn_convs.<i>`` and ``head.fc`` that
    every given model has, in the teacher's order."""
    names = [dict(m.model.named_modules()) for m in models]
    regex = re.compile("^(" + "|".join(_CKA_PATTERNS) + ")$")
    return [n for n in names[0] if regex.match(n) and all(n in other for other in names[1:])]


def _check_cka_layers(layers: Sequence[str], models: Sequence[LoadedModel]) -> None:
    if not layers:
        raise ValueError(
            "no CKA layers: the models share no module named backbone.layer<i>, "
            "neck.fpn_convs.<i> or head.fc; give cka_layers (--cka-layers) or leave 'cka' out"
        )
    for m in models:
        modules = dict(m.model.named_modules())
        missing = [p for p in layers if p not in modules]
        if missing:
            raise ValueError(
                f"CKA layers {missing} do not exist in {m.role} {m.name!r}; valid examples: "
                f"{[n for n in modules if n.count('.') <= 1][:12]}"
            )


class _Store:
    """Per-unit results gathered over batches (lists of tensors, concatenated at the end)."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Tensor]] = defaultdict(list)

    def add(self, key: str, value: Tensor) -> None:
        self.lists[key].append(value.detach().cpu())

    def cat(self, key: str) -> Tensor:
        return (
            torch.cat(self.lists[key]) if self.lists.get(key) else torch.zeros(0, dtype=torch.bool)
        )


def _pct(mask: Tensor) -> float | None:
    return None if mask.numel() == 0 else 100.0 * mask.double().mean().item()


def _rgb_image(pixels: Tensor, rgb: bool) -> Tensor:
    img = pixels.detach().clamp(0, 255).round().to(torch.uint8)
    img = img if rgb else img.flip(0)
    return img.permute(1, 2, 0).contiguous()


class _Analysis:
    def __init__(self, models: list[LoadedModel], options: AnalysisOptions) -> None:
        self.options = options
        self.models = models
        self.teacher = models[0]
        self.distilled = [m for m in models if m.role == "distilled"]
        self.independent = next(m for m in models if m.role == "independent")
        self.control = next((m for m in models if m.role == "control"), None)
        self.students = [*self.distilled, self.independent]
        self.cam_models = [self.teacher, *self.students]
        self.task = self.teacher.task
        self.store = _Store()
        self.examples: list[dict[str, Any]] = []
        self.seconds: dict[str, float] = defaultdict(float)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.cka_rows = 0
        self.cka_labels: dict[str, list[str]] = {}
        self.cka_feats: dict[str, list[list[Tensor]]] = {}
        self.recorders: dict[str, FeatureRecorder] = {}

    # -- set-up --------------------------------------------------------------------------------

    def prepare(self) -> None:
        opts = self.options
        cfg = copy.deepcopy(self.teacher.cfg)
        if opts.dataset_options:
            cfg.merge_from_dict(opts.dataset_options)
        where = f"the {opts.split} split of {self.teacher.spec.config_label!r}"
        self.dataset = build_dataset(cfg, opts.split)
        classes = (getattr(self.dataset, "metainfo", None) or {}).get("classes")
        if classes is not None and len(classes) != self.teacher.num_classes:
            raise ValueError(
                f"{where} has {len(classes)} classes, the teacher {self.teacher.num_classes}"
            )
        self.indices = choose_indices(len(self.dataset), opts.num_images, opts.seed)
        check_ground_truth(self.dataset, self.indices[0], self.task, where)
        if "localization" in opts.properties and self.task == "detection":
            for m in self.cam_models:
                check_box_cam_support(m)
        if "cka" in opts.properties:
            layers = list(opts.cka_layers or default_cka_layers(self.cam_models))
            _check_cka_layers(layers, self.cam_models)
            self.cka_layers = layers
            for m in self.cam_models:
                self.recorders[m.name] = FeatureRecorder(m.model, [(p, "output") for p in layers])
        loader = cfg.get(f"{opts.split}_dataloader") or {}
        self.batch_size = opts.batch_size or int(loader.get("batch_size", 16))

    def close(self) -> None:
        for rec in self.recorders.values():
            rec.remove()

    # -- per batch -----------------------------------------------------------------------------

    def _record_cka(self, name: str, batch_size: int) -> None:
        rec = self.recorders[name]
        targets = [(p, "output") for p in self.cka_layers]
        layers = rec.layers(targets)
        if name not in self.cka_labels:
            self.cka_labels[name] = rec.labels(targets)
            self.cka_feats[name] = [[] for _ in layers]
        take = min(batch_size, self.options.cka_images - self.cka_rows)
        for store, layer in zip(self.cka_feats[name], layers):
            store.append(layer[:take].detach().float().reshape(take, -1).cpu())

    def _clean_pass(self, batch: Batch) -> dict[str, Any]:
        """Clean predictions of every model (and CKA layers, and detector features)."""
        record = "cka" in self.options.properties and self.cka_rows < self.options.cka_images
        out: dict[str, Any] = {}
        for m in self.models:
            rec = self.recorders.get(m.name) if record else None
            with torch.no_grad():
                if rec is not None:
                    with rec.recording():
                        out[m.name] = self._predict(m, batch, keep_features=True)
                    self._record_cka(m.name, batch.pixels.shape[0])
                else:
                    out[m.name] = self._predict(m, batch, keep_features=True)
        if record:
            self.cka_rows += min(batch.pixels.shape[0], self.options.cka_images - self.cka_rows)
        return out

    def _predict(self, m: LoadedModel, batch: Batch, pixels: Tensor | None = None,
                 keep_features: bool = False) -> Any:  # fmt: skip
        x = batch.pixels if pixels is None else pixels
        if self.task == "classification":
            return classifier_logits(m, x).argmax(dim=1).cpu()
        if keep_features and "localization" in self.options.properties and m in self.cam_models:
            feats = m.model.extract_feat(m.normalize(x))
            dets = detect_from_features(m, feats, batch.data_samples, self.options.score_thr)
            return dets, tuple(f.detach() for f in feats)
        return detect(m, x, batch.data_samples, self.options.score_thr), None

    def _box_preds(self, dets: list[Detections], batch: Batch) -> Tensor:
        return torch.cat(
            [box_predictions(d, g, self.options.iou_thr) for d, g in zip(dets, batch.gt_boxes)]
        )

    def run_batch(self, batch: Batch) -> None:
        opts, store = self.options, self.store
        det = self.task == "detection"
        tic = time.perf_counter()
        clean = self._clean_pass(batch)
        if det:
            gt = torch.cat(batch.gt_labels)
            clean_units = {m.name: self._box_preds(clean[m.name][0], batch) for m in self.models}
        else:
            gt = batch.labels
            clean_units = clean
        for m in self.models:
            store.add(f"correct/{m.name}", clean_units[m.name] == gt)
        for m in [*self.students, *([self.control] if self.control else [])]:
            if det:
                t_dets, s_dets = clean[self.teacher.name][0], clean[m.name][0]
                matched = [greedy_matches(a, b, opts.iou_thr) for a, b in zip(t_dets, s_dets)]
                store.add(f"agree/{m.name}", torch.cat(matched) if matched else torch.zeros(0))
            else:
                store.add(f"agree/{m.name}", clean[m.name] == clean[self.teacher.name])
        self.seconds["clean predictions, agreement, CKA features"] += time.perf_counter() - tic

        if "localization" in opts.properties:
            tic = time.perf_counter()
            self._localization(batch, clean)
            self.seconds["localization"] += time.perf_counter() - tic
        if "invariance" in opts.properties:
            tic = time.perf_counter()
            params = sample_jitter(opts.jitter, batch.pixels.shape[0], self.generator)
            jittered = color_jitter(batch.pixels, params, rgb=self.teacher.channel_conversion)
            for m in self.models:
                with torch.no_grad():
                    pred = self._predict(m, batch, jittered)
                if det:
                    kept = [greedy_matches(a, b, opts.iou_thr)
                            for a, b in zip(clean[m.name][0], pred[0])]  # fmt: skip
                    store.add(f"invariant/{m.name}", torch.cat(kept))
                else:
                    store.add(f"invariant/{m.name}", pred == clean[m.name])
            self.seconds["invariance"] += time.perf_counter() - tic
        if "adversarial" in opts.properties:
            tic = time.perf_counter()
            sources = [self.teacher, *([self.control] if self.control else [])]
            for source in sources:
                if det:
                    loss = detector_attack_loss(source, batch.data_samples)
                else:
                    loss = classifier_attack_loss(source, batch.labels)
                attacked = ifgsm(loss, batch.pixels, opts.attack)
                for m in self.models:
                    with torch.no_grad():
                        pred = self._predict(m, batch, attacked)
                    units = self._box_preds(pred[0], batch) if det else pred
                    counts = clean_units[m.name] >= 0
                    store.add(f"adv/{source.role}/{m.name}/fooled",
                              fooled(clean_units[m.name], units, counts))  # fmt: skip
                    store.add(f"adv/{source.role}/{m.name}/counts", counts)
            self.seconds["adversarial"] += time.perf_counter() - tic

    def _localization(self, batch: Batch, clean: dict[str, Any]) -> None:
        size = tuple(batch.pixels.shape[-2:])
        cams: dict[str, Tensor] = {}
        for m in self.cam_models:
            if self.task == "classification":
                cams[m.name] = upsample_cams(classifier_cams(m, batch.pixels, batch.labels), size)
            else:
                feats = clean[m.name][1]
                targets = box_targets(m, [tuple(f.shape[-2:]) for f in feats],
                                      batch.gt_boxes, batch.gt_labels)  # fmt: skip
                cams[m.name] = detector_box_cams(m, feats, targets, size, self.options.cam_chunk)
        t_cams = cams[self.teacher.name]
        for m in self.students:
            self.store.add(f"cos/{m.name}", cam_cosine(t_cams, cams[m.name]).float())
        for m in self.cam_models:
            zero = cams[m.name].reshape(cams[m.name].shape[0], -1).amax(dim=1) <= 0
            self.store.add(f"zero_cam/{m.name}", zero)
        self._keep_examples(batch, cams)

    def _keep_examples(self, batch: Batch, cams: dict[str, Tensor]) -> None:
        room = self.options.num_examples - len(self.examples)
        if room <= 0:
            return
        rgb = self.teacher.channel_conversion
        if self.task == "classification":
            for i in range(min(room, batch.pixels.shape[0])):
                self.examples.append(dict(
                    image=_rgb_image(batch.pixels[i], rgb), label=int(batch.labels[i]), box=None,
                    index=batch.indices[i], cams={k: v[i].clone() for k, v in cams.items()}))  # fmt: skip
            return
        # one box per image (its first), so that the figure shows several images
        unit = 0
        for b, (boxes, labels) in enumerate(zip(batch.gt_boxes, batch.gt_labels)):
            if boxes.shape[0] and len(self.examples) < self.options.num_examples:
                self.examples.append(dict(
                    image=_rgb_image(batch.pixels[b], rgb), label=int(labels[0]),
                    box=boxes[0].tolist(), index=batch.indices[b],
                    cams={n: v[unit].clone() for n, v in cams.items()}))  # fmt: skip
            unit += boxes.shape[0]

    # -- summary -------------------------------------------------------------------------------

    def summary(self, num_units: int) -> dict[str, Any]:
        opts, store = self.options, self.store
        det = self.task == "detection"
        out: dict[str, Any] = {
            "task": self.task,
            "paper": PAPER,
            "data": {
                "config": self.teacher.spec.config_label,
                "split": opts.split,
                "dataset_size": len(self.dataset),
                "num_images": len(self.indices),
                "num_boxes": num_units if det else None,
                "image_indices_seed": opts.seed,
            },
            "options": _options_dict(opts),
            "models": [m.describe() for m in self.models],
            "units": "ground-truth boxes" if det else "images",
        }
        out["accuracy"] = {m.name: _pct(store.cat(f"correct/{m.name}")) for m in self.models}
        out["agreement"] = {
            name.split("/", 1)[1]: _pct(store.cat(name))
            for name in store.lists
            if name.startswith("agree/")
        }
        if "localization" in opts.properties:
            cos_i = store.cat(f"cos/{self.independent.name}")
            loc: dict[str, Any] = {"independent": self.independent.name, "per_model": {}}
            for m in self.students:
                cos = store.cat(f"cos/{m.name}")
                entry = {
                    "mean_cos_with_teacher": cos.double().mean().item() if cos.numel() else None,
                    "n": int(cos.numel()),
                    "zero_maps": int(store.cat(f"zero_cam/{m.name}").sum()),
                }
                if m.role == "distilled" and cos.numel():
                    entry["score"] = localization_score(cos, cos_i)
                loc["per_model"][m.name] = entry
            loc["teacher_zero_maps"] = int(store.cat(f"zero_cam/{self.teacher.name}").sum())
            out["localization"] = loc
        if "invariance" in opts.properties:
            out["invariance"] = {}
            for m in self.models:
                kept = store.cat(f"invariant/{m.name}")
                out["invariance"][m.name] = {"unchanged": _pct(kept), "n": int(kept.numel())}
        if "adversarial" in opts.properties:
            adv: dict[str, Any] = {"attack": asdict(opts.attack)}
            sources = [self.teacher, *([self.control] if self.control else [])]
            for source in sources:
                key = f"adv/{source.role}"
                src_fooled = store.cat(f"{key}/{source.name}/fooled")
                src_counts = store.cat(f"{key}/{source.name}/counts")
                block: dict[str, Any] = {
                    "source": source.name,
                    "units": int(src_counts.sum()),
                    "source_fooled": int(src_fooled.sum()),
                    "source_fooled_pct": _pct(src_fooled[src_counts.bool()]),
                    "per_model": {},
                }
                for m in self.models:
                    if m is source:
                        continue
                    rate, n = transfer_rates(
                        src_fooled, store.cat(f"{key}/{m.name}/fooled"),
                        store.cat(f"{key}/{m.name}/counts"))  # fmt: skip
                    block["per_model"][m.name] = {"fooling_rate": rate, "n": n}
                adv[source.role] = block
            out["adversarial"] = adv
        if "cka" in opts.properties and self.cka_feats:
            out["cka"] = self._cka()
        return out

    def _cka(self) -> dict[str, Any]:
        t_name = self.teacher.name
        labels = self.cka_labels[t_name]
        per_model: dict[str, list[float | None]] = {}
        for m in self.students:
            if len(self.cka_labels[m.name]) != len(labels):
                raise ValueError(
                    f"CKA layers give {len(labels)} tensors in the teacher and "
                    f"{len(self.cka_labels[m.name])} in {m.name!r}; name modules that run once"
                )
            values: list[float | None] = []
            for t_feats, s_feats in zip(self.cka_feats[t_name], self.cka_feats[m.name]):
                x, y = torch.cat(t_feats), torch.cat(s_feats)
                try:
                    values.append(float(linear_cka(x, y)))
                except ValueError:  # constant over the images: CKA undefined
                    values.append(None)
            per_model[m.name] = values
        return {"layers": labels, "images": self.cka_rows, "mode": "sample", "per_model": per_model}


def _options_dict(opts: AnalysisOptions) -> dict[str, Any]:
    d = asdict(opts)
    d.pop("progress")
    d["properties"] = list(opts.properties)
    if opts.cka_layers is not None:
        d["cka_layers"] = list(opts.cka_layers)
    return d


def analyse(
    teacher: ModelSpec,
    distilled: Sequence[ModelSpec],
    independent: ModelSpec,
    control: ModelSpec | None = None,
    options: AnalysisOptions | None = None,
) -> AnalysisResult:
    """Measure how much more each distilled student resembles the teacher than the independent
    student does. Every input is checked before anything is computed (``ValueError`` naming
    the problem); see the modules ``cam``, ``adversarial``, ``invariance`` and ``agreement``
    for the measures."""
    options = options or AnalysisOptions()
    start = time.perf_counter()
    models = load_models(teacher, distilled, independent, control)
    analysis = _Analysis(models, options)
    analysis.prepare()
    load_seconds = time.perf_counter() - start
    torch.manual_seed(options.seed)
    bar = None
    if options.progress:
        from mmengine.utils import ProgressBar

        bar = ProgressBar(len(analysis.indices), file=sys.stderr)
    num_units = 0
    try:
        for batch in batches(analysis.dataset, analysis.indices, analysis.batch_size,
                             analysis.teacher):  # fmt: skip
            analysis.run_batch(batch)
            num_units += sum(len(b) for b in batch.gt_labels) if batch.gt_labels else 0
            if bar is not None:
                bar.update(batch.pixels.shape[0])
    finally:
        analysis.close()
        if bar is not None:
            bar.file.write("\n")
    summary = analysis.summary(num_units)
    seconds = {k: round(v, 2) for k, v in analysis.seconds.items()}
    seconds["loading and checks"] = round(load_seconds, 2)
    seconds["total"] = round(time.perf_counter() - start, 2)
    summary["seconds"] = seconds
    summary["threads"] = torch.get_num_threads()
    return AnalysisResult(summary, analysis.examples)
