"""Hooks: per-iteration weight schedules of distill terms."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kd_det.registry import HOOKS

SCHEDULE_KEYS = {"warmup_iters", "decay", "stop_iter", "stop_epoch"}
DECAYS = ("none", "linear", "cosine")


def schedule_factor(
    it: int,
    epoch: int,
    max_iters: int,
    warmup_iters: int = 0,
    decay: str = "none",
    stop_iter: int | None = None,
    stop_epoch: int | None = None,
) -> float:
    """Multiplier of a term's loss at iteration ``it`` (0-based) of ``max_iters``.

    ``min(1, (it + 1) / warmup_iters)`` during warm-up; then 1, or decaying to 0 at
    ``max_iters`` (``linear``: ``1 - p``; ``cosine``: ``(1 + cos(pi p)) / 2``, ``p`` the
    fraction of the post-warm-up iterations done); 0 from ``stop_iter`` / ``stop_epoch`` on.
    """
    if (stop_iter is not None and it >= stop_iter) or (
        stop_epoch is not None and epoch >= stop_epoch
    ):
        return 0.0
    if warmup_iters > 0 and it < warmup_iters:
        return (it + 1) / warmup_iters
    if decay == "none":
        return 1.0
    p = min(1.0, (it - warmup_iters) / max(1, max_iters - warmup_iters))
    return 1.0 - p if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))


@HOOKS.register_module()
class DistillWeightScheduler(Hook):
    """Scale distill terms over training: warm-up, decay, stop after N iterations or epochs.

    ``schedules`` maps a term name to ``dict(warmup_iters=0, decay='none'|'linear'|'cosine',
    stop_iter=None, stop_epoch=None)``. The factor depends only on the Runner's iteration and
    epoch, so a resumed run continues the schedule where it stopped. Unknown term names or keys
    fail in ``before_train``, before the first iteration. The factors are logged as
    ``distill.<name>.weight``.
    """

    priority = "NORMAL"

    def __init__(self, schedules: dict[str, dict[str, Any]]) -> None:
        for name, sched in schedules.items():
            unknown = sorted(set(sched) - SCHEDULE_KEYS)
            if unknown:
                hints = [
                    f"{key!r}: did you mean {close[0]!r}?"
                    for key in unknown
                    if (close := difflib.get_close_matches(key, sorted(SCHEDULE_KEYS), n=1))
                ]
                raise ValueError(
                    f"schedule of term {name!r}: unknown keys {unknown}"
                    + (f" ({'; '.join(hints)})" if hints else "")
                    + f"; valid: {sorted(SCHEDULE_KEYS)}"
                )
            for key in ("warmup_iters", "stop_iter", "stop_epoch"):
                if key not in sched or (sched[key] is None and key != "warmup_iters"):
                    continue
                value = sched[key]
                if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                    valid = "an int >= 0" + ("" if key == "warmup_iters" else " or None")
                    raise ValueError(
                        f"schedule of term {name!r}: {key} must be {valid}, got {value!r}"
                    )
            decay = sched.get("decay", "none")
            if decay not in DECAYS:
                close = difflib.get_close_matches(str(decay), DECAYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"schedule of term {name!r}: decay must be one of {DECAYS}, got {decay!r}{hint}"
                )
        self.schedules = schedules

    @staticmethod
    def _distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, "term"):
            raise TypeError(f"DistillWeightScheduler needs a distiller, got {type(model).__name__}")
        return model

    def before_train(self, runner) -> None:
        model = self._distiller(runner)
        for name in self.schedules:
            model.term(name)  # raises KeyError naming the valid terms

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = self._distiller(runner)
        for name, sched in self.schedules.items():
            factor = schedule_factor(runner.iter, runner.epoch, runner.max_iters, **sched)
            model.term(name).scale = factor
            runner.message_hub.update_scalar(f"train/distill.{name}.weight", factor)
