"""Record module outputs (or inputs) by dotted path with forward hooks.

A *layer* of a distill term is one tensor a module produced in one forward pass. A module that
returns a tuple of maps (a backbone, an FPN neck) gives one layer per element, and a module
called several times per pass (a detection head shared across FPN levels) gives one layer per
call, so ``'neck'`` names P3…P7 and ``'bbox_head.retina_cls'`` names its five per-level outputs.

The recorder can stop the forward pass right after the last tensor any term needs, so that a
teacher runs only as far as it has to (:class:`StopForward`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from torch import Tensor, nn

Capture = Literal["output", "input"]


class StopForward(Exception):
    """Raised by a hook after the last recorded layer to cut a forward pass short."""


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # '*' matches one path component (no dots), so 'neck.fpn_convs.*' is the five convs,
    # not their sub-modules.
    parts = (re.escape(p) for p in pattern.split("*"))
    return re.compile("^" + r"[^.]+".join(parts) + "$")


def resolve_layers(model: nn.Module, patterns: str | Sequence[str], role: str) -> list[str]:
    """Module paths named by ``patterns`` (exact dotted paths or ``*`` wildcards), in order.

    Raises ``ValueError`` naming the closest valid paths when a pattern matches nothing.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError(f"no {role} layers given: name at least one module path")
    names = [name for name, _ in model.named_modules() if name]
    resolved: list[str] = []
    for pattern in patterns:
        if "*" in pattern:
            regex = _pattern_regex(pattern)
            found = [n for n in names if regex.match(n)]
        else:
            found = [pattern] if pattern in names else []
        if not found:
            close = difflib.get_close_matches(pattern.replace("*", "0"), names, n=5, cutoff=0.5)
            hint = (
                f"closest valid paths: {close}"
                if close
                else "top-level modules: " + str([n for n in names if "." not in n])
            )
            raise ValueError(
                f"{role} layer {pattern!r} does not exist in {type(model).__name__}; {hint}"
            )
        resolved.extend(n for n in found if n not in resolved)
    return resolved


def _tensors(value: object, path: str) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Tensor) for v in value):
        return list(value)
    raise ValueError(
        f"layer {path!r} produced {type(value).__name__}; only a tensor or a tuple/list of "
        "tensors can be distilled — name a sub-module that returns a tensor"
    )


Target = tuple[str, Capture]  # (module path, 'output' | 'input')


class _RecordHook:
    """The forward hook of one target: an object rather than a closure, so that a deep copy of
    the model (an EMA copy, ``copy.deepcopy``) carries hooks that record into the copy of the
    recorder made by the same deep copy, and the model stays picklable."""

    def __init__(self, recorder: FeatureRecorder, target: Target) -> None:
        self.recorder = recorder
        self.target = target

    def __call__(self, module: nn.Module, args: tuple, output: object) -> None:
        self.recorder._record(self.target, args, output)


class FeatureRecorder:
    """Forward hooks on the ``targets`` of ``model`` that record what those modules produce.

    Hooks do nothing outside :meth:`recording`, so the model behaves normally otherwise (a
    teacher can still be evaluated). After :meth:`set_stop_after_last`, a stopping recording
    raises :class:`StopForward` right after the event that came last in the previous recording,
    and :meth:`recording` ends the block quietly. What a recording holds stays until the next
    recording starts or :meth:`clear` drops it. :meth:`remove` takes the hooks off the model;
    used as a context manager (``with FeatureRecorder(model, targets) as rec:``) the recorder
    removes them when the block ends.

    Args:
        model: the module whose sub-modules are recorded.
        targets: ``(module path, 'output' | 'input')`` pairs; ``'input'`` records the first
            positional argument (all of them, as a tuple, when there are several).
    """

    def __init__(self, model: nn.Module, targets: Sequence[Target]) -> None:
        self.targets: list[Target] = list(dict.fromkeys(targets))
        for _, capture in self.targets:
            if capture not in ("output", "input"):
                raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
        self.records: dict[Target, list[Tensor]] = {}
        self.calls: dict[Target, int] = {}
        self.stop_after: tuple[Target, int] | None = None
        self._last: Target | None = None
        self._active = self._stopping = False
        modules = dict(model.named_modules())
        unknown = [path for path, _ in self.targets if path not in modules]
        if unknown:
            raise ValueError(
                f"{unknown} are not module paths of {type(model).__name__}; resolve patterns "
                "with resolve_layers first"
            )
        self._handles = [
            modules[path].register_forward_hook(_RecordHook(self, (path, capture)))
            for path, capture in self.targets
        ]

    def _record(self, target: Target, args: tuple, output: object) -> None:
        if not self._active:
            return
        path, capture = target
        value = output if capture == "output" else (args[0] if len(args) == 1 else args)
        self.records.setdefault(target, []).extend(_tensors(value, path))
        self.calls[target] = self.calls.get(target, 0) + 1
        self._last = target
        if self._stopping and self.stop_after == (target, self.calls[target]):
            raise StopForward

    @contextmanager
    def recording(self, stop: bool = False) -> Iterator[dict[Target, list[Tensor]]]:
        """Record during the block; with ``stop``, cut the forward short after the last layer."""
        self.records, self.calls, self._last = {}, {}, None
        self._active, self._stopping = True, stop and self.stop_after is not None
        try:
            yield self.records
        except StopForward:
            if not self._stopping:
                raise
        finally:
            self._active = self._stopping = False

    def set_stop_after_last(self) -> None:
        """Make stopping recordings end after the event that came last in the previous one."""
        if self._last is None:
            raise RuntimeError("nothing was recorded yet")
        self.stop_after = (self._last, self.calls[self._last])

    def clear(self) -> None:
        """Drop the recorded tensors (and call counts) so that nothing keeps them alive."""
        self.records, self.calls, self._last = {}, {}, None

    def release(self, targets: Sequence[Target]) -> None:
        """Drop the recorded tensors of ``targets`` (their call counts stay)."""
        for target in targets:
            self.records.pop(target, None)

    def counts(self) -> dict[Target, int]:
        """How many tensors each target recorded in the last recording (0 if it did not run)."""
        return {t: len(self.records.get(t, ())) for t in self.targets}

    def layers(self, targets: Sequence[Target]) -> list[Tensor]:
        """The recorded tensors of ``targets`` in order, calls and tuple elements flattened."""
        missing = [t for t in targets if t not in self.records]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in this forward pass")
        return [x for t in targets for x in self.records[t]]

    def labels(self, targets: Sequence[Target]) -> list[str]:
        """Readable names of the layers of ``targets``: ``'neck[2]'`` is the third tensor."""
        labels: list[str] = []
        for target in targets:
            path, capture = target
            name = path if capture == "output" else f"{path}(input)"
            n = len(self.records.get(target, []))
            labels.extend([name] if n == 1 else [f"{name}[{i}]" for i in range(n)])
        return labels

    def remove(self) -> None:
        """Remove the forward hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FeatureRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
