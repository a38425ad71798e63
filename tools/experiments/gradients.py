"""Gradient diagnostic of a distiller's loss terms: how large each term's gradient is next to
the task loss's, and how aligned.

For every term ``k`` (``distill.<name>.loss``) and the task loss (the sum of the student's own
losses), the gradient ``g_k`` with respect to the student's trainable parameters is taken on
each of the first training batches (in order, no shuffling); reported per term are the means
over those batches of the term's value, ``‖g_k‖ / ‖g_task‖`` and ``cos(g_k, g_task)``.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed
from torch import Tensor

from kd_det.apis import build_model_from_cfg
from kd_det.compat import load_local_checkpoint


@dataclass(frozen=True)
class TermGradient:
    """Means over the batches: the term's value, its gradient's norm relative to the task
    loss's, and the cosine between the two gradients."""

    term: str
    value: float
    norm_ratio: float
    cosine: float


def _summed(value: Any) -> Tensor:
    """A loss entry (a tensor or a list of per-level tensors) as one scalar."""
    return sum(value) if isinstance(value, (list, tuple)) else value


def _flat_grad(loss: Tensor, params: list[torch.nn.Parameter]) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                      for g, p in zip(grads, params, strict=True)])  # fmt: skip


def term_gradients(
    config: str | Path | Config,
    cfg_options: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    num_batches: int = 4,
) -> list[TermGradient]:
    """The diagnostic of the distiller of ``config`` (with ``cfg_options`` merged), built
    (:func:`kd_det.apis.build_model_from_cfg`) and initialised as the Runner does before
    training (e.g. RetinaNet's classifier bias prior; the teacher keeps its loaded weights),
    under ``seed``; with ``checkpoint``, its weights are loaded over that initialisation.

    The first entry is the task loss itself (ratio 1, cosine 1).
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be at least 1, got {num_batches}")
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.train_dataloader.sampler = dict(type="DefaultSampler", shuffle=False)
    set_random_seed(seed)  # python, numpy (the crop augmentation) and torch
    model = build_model_from_cfg(cfg)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    model.init_weights()
    if checkpoint is not None:
        state = load_local_checkpoint(str(checkpoint), map_location="cpu")
        model.load_state_dict(state["state_dict"])
    model.train()
    params = [p for p in model.student.parameters() if p.requires_grad]
    stats: dict[str, list[tuple[float, float, float]]] = {}
    for _, batch in zip(range(num_batches), loader, strict=False):
        data = model.data_preprocessor(batch, True)
        losses = model.loss(data["inputs"], data["data_samples"])
        terms = {"task": sum(_summed(v) for k, v in losses.items()
                             if "loss" in k and not k.startswith("distill."))}  # fmt: skip
        terms.update({k: v for k, v in losses.items() if k.startswith("distill.")})
        grads = {key: _flat_grad(value, params) for key, value in terms.items()}
        base = grads["task"]
        for key, grad in grads.items():
            cos = torch.nn.functional.cosine_similarity(grad, base, dim=0)
            stats.setdefault(key, []).append(
                (terms[key].item(), grad.norm().item() / base.norm().item(), cos.item())
            )
    return [
        TermGradient(key, *(statistics.fmean(col) for col in zip(*values, strict=True)))
        for key, values in stats.items()
    ]


TABLE_HEAD = [
    "| variant | state | term | value | ‖g‖ / ‖g_task‖ | cos(g, g_task) |",
    "|---|---|---|---|---|---|",
]


def table_rows(variant: str, state: str, terms: list[TermGradient]) -> list[str]:
    """Markdown rows under :data:`TABLE_HEAD`."""
    return [
        f"| {variant} | {state} | {t.term} | {t.value:.3f} | {t.norm_ratio:.2f} | {t.cosine:+.2f} |"
        for t in terms
    ]
