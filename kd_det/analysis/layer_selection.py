"""The angle diagnostic of the layer-selection study, with trained adapters.

"Revisiting Intermediate-Layer Matching in Knowledge Distillation: Layer-Selection Strategy
Doesn't Matter (Much)" (Yu, Wen & Mou, arXiv:2502.04499) explains why the strategy matters little
by the angles between teacher layers seen from the student. For student layer ``l`` (state
``s`` at one position) and teacher layers ``j, k``::

    c_jk = cos∠(t̃_j − s, t̃_k − s)        t̃_j − s = W_lj⁺ (t_j − W_lj s)

with ``W_lj`` the bias-free student → teacher adapter of the pair (``C_tj × C_s``) and ``t_j`` the
teacher map resized bilinearly to the student's size, as the distiller does
(:func:`kd_det.analysis.layer_angles.adapter_targets`). ``t̃_j − s`` is where matching teacher
layer ``j`` pulls the student. Acute angles (``c_jk > 0``) mean that pulling towards one teacher
layer also pulls towards the other.

Adapters: the pairs a strategy matched use the adapters trained with that student (read from the
run's distill term); every other pair uses the adapter the same MSE training converges to on the
frozen student (:func:`~kd_det.analysis.layer_angles.fit_adapter`), fitted on other images than
those the angles are measured on. Nothing regresses the teacher onto the student, which would
make the angles acute by construction. The baseline: cosines between independent random
directions in the student's width (:func:`~kd_det.analysis.layer_angles.random_direction_cosines`),
half acute at any width.

:func:`layer_angles_per_student_layer` computes the distribution per student layer;
:func:`record_layers` captures the maps of named modules; :func:`trained_adapters` reads the
adapters of a distiller's term.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.analysis.layer_angles import (
    adapter_targets,
    adapter_weight,
    fit_adapter,
    position_cosines,
    random_direction_cosines,
)

__all__ = [
    "LayerAngles",
    "layer_angles_per_student_layer",
    "record_layers",
    "trained_adapters",
]


@dataclass
class LayerAngles:
    """The angles seen from one student layer.

    Attributes:
        student_layer: the student module path.
        teacher_layers: the teacher module paths, in order (``L`` of them).
        width: the student layer's channels (the dimension of the directions).
        cosines: off-diagonal cosines ``c_jk`` (``j < k``) over the sampled positions, flattened.
        acute: share of them that is acute (``> 0``).
        acute_per_image: that share per image (its spread is the image-to-image spread).
        mean_matrix: ``[L, L]`` mean cosine over positions.
        trained: teacher indices whose adapter came from the run (the others were fitted).
        random_cosines: the same number of cosines between random directions of ``width``.
        random_acute: their acute share.
    """

    student_layer: str
    teacher_layers: list[str]
    width: int
    cosines: np.ndarray
    acute: float
    acute_per_image: np.ndarray
    mean_matrix: np.ndarray
    trained: list[int] = field(default_factory=list)
    random_cosines: np.ndarray = field(default_factory=lambda: np.zeros(0))
    random_acute: float = float("nan")

    _ARRAYS = ("cosines", "acute_per_image", "mean_matrix", "random_cosines")

    @staticmethod
    def save_all(layers: Sequence[LayerAngles], path: str | Path) -> None:
        """Write ``layers`` (one student layer each) to the ``.npz`` file ``path``: arrays as
        arrays, the rest as JSON (loadable without pickle)."""
        arrays: dict[str, np.ndarray] = {}
        meta = []
        for i, layer in enumerate(layers):
            meta.append(dict(student_layer=layer.student_layer, teacher_layers=layer.teacher_layers,
                             width=layer.width, acute=layer.acute, trained=layer.trained,
                             random_acute=layer.random_acute))  # fmt: skip
            arrays.update({f"{i}.{name}": getattr(layer, name) for name in LayerAngles._ARRAYS})
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)

    @staticmethod
    def load_all(path: str | Path) -> list[LayerAngles]:
        """The layers :meth:`save_all` wrote to ``path``."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return [
                LayerAngles(**m, **{name: data[f"{i}.{name}"] for name in LayerAngles._ARRAYS})
                for i, m in enumerate(meta)
            ]

    def summary(self) -> dict:
        """JSON-ready numbers (no per-position arrays)."""
        return dict(
            student_layer=self.student_layer,
            width=self.width,
            acute=self.acute,
            acute_image_std=float(self.acute_per_image.std(ddof=1))
            if self.acute_per_image.size > 1
            else 0.0,
            mean_cosine=float(self.cosines.mean()) if self.cosines.size else float("nan"),
            random_acute=self.random_acute,
            trained=self.trained,
            mean_matrix=np.round(self.mean_matrix, 4).tolist(),
        )


def record_layers(
    model: nn.Module, names: Sequence[str], run: Callable[[], object]
) -> list[Tensor]:
    """The outputs of the modules ``names`` of ``model`` while ``run()`` executes (no grad).

    Raises ``ValueError`` for a path that does not exist, or a module that did not run or
    returned something other than one tensor.
    """
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"record_layers: {type(model).__name__} has no modules {missing}")
    out: dict[str, Tensor] = {}

    def hook(name: str):
        def fn(_module: nn.Module, _args: tuple, output: object) -> None:
            if not isinstance(output, Tensor):
                raise ValueError(
                    f"record_layers: {name!r} returned {type(output).__name__}, not a tensor"
                )
            out[name] = output.detach()

        return fn

    with ExitStack() as stack, torch.no_grad():
        for n in names:
            stack.callback(modules[n].register_forward_hook(hook(n)).remove)
        run()
    not_run = [n for n in names if n not in out]
    if not_run:
        raise ValueError(f"record_layers: {not_run} did not run in the forward pass")
    return [out[n] for n in names]


def trained_adapters(term: nn.Module) -> dict[tuple[int, int], Tensor]:
    """``{(student_index, teacher_index): [C_t, C_s] adapter}`` of a distill term's pairs.

    ``term`` is a :class:`kd_det.distillers.term.DistillTerm` (``pairs`` buffer and one
    connector per pair, each a ``ProjectNorm`` with a ``LinearProjector``). A pair whose connector
    has no linear projector (identity, or a norm) raises ``ValueError``: the diagnostic needs the
    adapter that was trained.
    """
    pairs = getattr(term, "pairs", None)
    connectors = getattr(term, "connectors", None)
    if not isinstance(pairs, Tensor) or connectors is None:
        raise ValueError(f"trained_adapters needs a DistillTerm, got {type(term).__name__}")
    out: dict[tuple[int, int], Tensor] = {}
    for k, (i, j) in enumerate(pairs.tolist()):
        conn = connectors[k]
        norm = getattr(conn, "norm", None)
        if norm is not None and not isinstance(norm, nn.Identity):
            raise ValueError(
                f"pair ({i}, {j}): its connector normalises ({type(conn.norm).__name__}); the "
                "diagnostic needs a plain bias-free linear adapter"
            )
        projector = getattr(conn, "projector", None)
        if projector is None or isinstance(projector, nn.Identity):
            raise ValueError(f"pair ({i}, {j}): its connector has no projector (no adapter)")
        out[(i, j)] = adapter_weight(conn, f"pair ({i}, {j})").clone()
    return out


def _rows(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _resized(t: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(t.shape[2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def layer_angles_per_student_layer(
    student_maps: Sequence[Tensor],
    teacher_maps: Sequence[Tensor],
    fit_student_maps: Sequence[Tensor],
    fit_teacher_maps: Sequence[Tensor],
    student_names: Sequence[str],
    teacher_names: Sequence[str],
    adapters: Mapping[tuple[int, int], Tensor] | None = None,
    positions_per_image: int = 16,
    seed: int = 0,
) -> list[LayerAngles]:
    """The angle distribution seen from every student layer, over all teacher layers.

    Args:
        student_maps: per student layer, ``[B, C_s, H, W]`` maps of the evaluation images.
        teacher_maps: per teacher layer, ``[B, C_t, H_t, W_t]`` maps of the same images.
        fit_student_maps: the same on the images the missing adapters are fitted on.
        fit_teacher_maps: the teacher's maps of those images.
        student_names: student module paths (labels).
        teacher_names: teacher module paths (labels).
        adapters: trained ``[C_t, C_s]`` adapters by ``(student_index, teacher_index)``; the
            other pairs get :func:`fit_adapter` on the fit images.
        positions_per_image: positions sampled per image (all when the map has fewer).
        seed: seed of the position sample and of the random-direction baseline.

    Returns:
        One :class:`LayerAngles` per student layer.
    """
    if len(student_maps) != len(student_names) or len(fit_student_maps) != len(student_names):
        raise ValueError(
            f"{len(student_names)} student names, {len(student_maps)} maps and "
            f"{len(fit_student_maps)} fit maps; give one of each per student layer"
        )
    if len(teacher_maps) != len(teacher_names) or len(fit_teacher_maps) != len(teacher_names):
        raise ValueError(
            f"{len(teacher_names)} teacher names, {len(teacher_maps)} maps and "
            f"{len(fit_teacher_maps)} fit maps; give one of each per teacher layer"
        )
    if len(teacher_names) < 2:
        raise ValueError("the diagnostic needs at least 2 teacher layers")
    if positions_per_image < 1:
        raise ValueError(f"positions_per_image must be >= 1, got {positions_per_image}")
    adapters = dict(adapters or {})
    gen = torch.Generator().manual_seed(seed)
    results = []
    num_t = len(teacher_names)
    upper = torch.triu(torch.ones(num_t, num_t, dtype=torch.bool), diagonal=1)
    for li, (s_map, s_fit) in enumerate(zip(student_maps, fit_student_maps)):
        batch, width, height, wid = s_map.shape
        s_map, s_fit = s_map.double(), s_fit.double()
        # the same positions of every image for all teacher layers: (image, y, x)
        per_image = min(positions_per_image, height * wid)
        picks = torch.stack([torch.randperm(height * wid, generator=gen)[:per_image]
                             for _ in range(batch)])  # fmt: skip
        index = (picks + torch.arange(batch)[:, None] * height * wid).reshape(-1)
        s_rows = _rows(s_map)[index]
        s_fit_rows = _rows(s_fit)
        targets = []
        for j in range(num_t):
            t_rows = _rows(_resized(teacher_maps[j].double(), (height, wid)))[index]
            adapter = adapters.get((li, j))
            if adapter is None:
                t_fit = _rows(_resized(fit_teacher_maps[j].double(), tuple(s_fit.shape[2:])))
                adapter = fit_adapter(s_fit_rows, t_fit)
            targets.append(adapter_targets(s_rows, t_rows, adapter.double()))
        cos = position_cosines(s_rows, targets)  # [N, L, L]
        pairs = cos[:, upper]  # [N, L(L-1)/2]
        acute_img = (pairs > 0).double().reshape(batch, -1).mean(dim=1)
        rand = random_direction_cosines(pairs.shape[0], num_t, width, generator=gen)[:, upper]
        results.append(
            LayerAngles(
                student_layer=student_names[li],
                teacher_layers=list(teacher_names),
                width=width,
                cosines=pairs.reshape(-1).float().numpy(),
                acute=float((pairs > 0).double().mean()),
                acute_per_image=acute_img.numpy(),
                mean_matrix=cos.mean(dim=0).numpy(),
                trained=sorted(j for (i, j) in adapters if i == li),
                random_cosines=rand.reshape(-1).float().numpy(),
                random_acute=float((rand > 0).double().mean()),
            )
        )
    return results
