"""Layer-selection strategies for intermediate-layer matching.

The strategies of "Revisiting Intermediate-Layer Matching in Knowledge Distillation:
Layer-Selection Strategy Doesn't Matter (Much)" (Yu, Wen and Mou, arXiv:2502.04499).

A mapper answers one question: given ``S`` student layers and ``T`` teacher layers (the lists a
distill entry names), which (student, teacher) pairs does the loss match? Every mapper is called
as ``mapper(num_student, num_teacher)`` and returns 0-based ``(student_index, teacher_index)``
pairs, one per student layer in student order unless the strategy says otherwise (``NoneMapper``
returns no pairs; ``ExplicitMapper`` returns the configured pairs sorted by student index).

Seeded strategies draw from their own ``random.Random(seed)``, so a mapping depends only on the
seed and the counts — never on global RNG state, the process or the time of the call. Calling a
mapper twice gives the same list.

Build a mapper from a config with :func:`build_mapper`::

    build_mapper(None)                                  # ForwardMapper()
    build_mapper(dict(type='InOrderRandomMapper', seed=3))
    build_mapper(dict(type='ExplicitMapper', pairs=[[0, 3], [1, 7], [2, 11]]))
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from kd_det.registry import MAPPERS, build_kd_module, check_type

__all__ = [
    "AllToOneMapper",
    "ExplicitMapper",
    "ForwardMapper",
    "InOrderRandomMapper",
    "LayerMapper",
    "NoneMapper",
    "RandomMapper",
    "ReverseMapper",
    "build_mapper",
    "forward_indices",
]

Pairs = list[tuple[int, int]]


def _check_counts(strategy: str, num_student: int, num_teacher: int) -> None:
    """Raise ``ValueError`` unless both layer counts are positive integers."""
    for name, value in (("num_student", num_student), ("num_teacher", num_teacher)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"{strategy}: {name} must be an int, got {type(value).__name__} {value!r}"
            )
    if num_student <= 0 or num_teacher <= 0:
        raise ValueError(
            f"{strategy} needs at least one student and one teacher layer, got "
            f"num_student={num_student}, num_teacher={num_teacher}; use NoneMapper for no "
            "intermediate matching"
        )


def _check_seed(strategy: str, seed: Any) -> int:
    """Return ``seed`` if it is an int (not a bool), else raise ``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{strategy}: seed must be an int, got {type(seed).__name__} {seed!r}")
    return seed


def forward_indices(
    num_student: int, num_teacher: int, strategy: str = "ForwardMapper"
) -> list[int]:
    """Teacher index of each student layer under forward (evenly spaced) matching.

    ``g(i) = round((i + 1) · T / S) − 1`` for ``i = 0 … S−1``, rounding halves up (computed in
    integers, so there is no float or banker's-rounding surprise): 3 of 12 → ``[3, 7, 11]``,
    ``S == T`` → identity, and the last student layer always meets the last teacher layer.
    When ``S > T`` several student layers share a teacher layer and the index is clipped at 0
    (4 of 2 → ``[0, 0, 1, 1]``). ``strategy`` names the caller in error messages.
    """
    _check_counts(strategy, num_student, num_teacher)
    return [
        max((2 * (i + 1) * num_teacher + num_student) // (2 * num_student) - 1, 0)
        for i in range(num_student)
    ]


class LayerMapper:
    """Base class of the layer-selection strategies.

    Subclasses implement :meth:`__call__`; ``repr`` shows the strategy and its arguments so a log
    records which mapping a run used.
    """

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return the ``(student_index, teacher_index)`` pairs for these layer counts."""
        raise NotImplementedError

    def _args(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args() == self._args()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


@MAPPERS.register_module()
class ForwardMapper(LayerMapper):
    """Forward matching: student ``i`` ↔ teacher ``round((i + 1) · T / S) − 1``.

    Evenly spaced and in order (3 student layers ↔ teacher layers 4, 8, 12 of 12, i.e. indices
    3, 7, 11); identity when ``S == T``. See :func:`forward_indices` for rounding and ``S > T``.
    """

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[(i, g(i)) for i in range(S)]`` with ``g`` the forward map."""
        return list(enumerate(forward_indices(num_student, num_teacher)))


@MAPPERS.register_module()
class ReverseMapper(LayerMapper):
    """Reverse matching: the forward list reversed, student ``i`` ↔ ``g(S − 1 − i)``.

    3 of 12 → teacher indices ``[11, 7, 3]``: the first student layer meets the last teacher layer.
    """

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[(i, g(S − 1 − i)) for i in range(S)]`` with ``g`` the forward map."""
        return list(enumerate(reversed(forward_indices(num_student, num_teacher, "ReverseMapper"))))


@MAPPERS.register_module()
class InOrderRandomMapper(LayerMapper):
    """In-order random matching: a random ``S``-subset of the ``T`` teacher layers, sorted.

    Student ``i`` meets the ``i``-th smallest chosen teacher index. The subset is drawn with
    ``random.Random(seed).sample(range(T), S)``: fixed by the seed and the counts. Needs
    ``T >= S``.

    Args:
        seed: seed of the mapper's own generator.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed("InOrderRandomMapper", seed)

    def _args(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[(i, c_i)]`` with ``c_0 < c_1 < …`` the sorted random teacher subset."""
        _check_counts("InOrderRandomMapper", num_student, num_teacher)
        if num_teacher < num_student:
            raise ValueError(
                f"InOrderRandomMapper needs at least as many teacher as student layers "
                f"(num_teacher >= num_student), got num_student={num_student}, "
                f"num_teacher={num_teacher}; ForwardMapper or RandomMapper map S > T"
            )
        chosen = sorted(random.Random(self.seed).sample(range(num_teacher), num_student))
        return list(enumerate(chosen))


@MAPPERS.register_module()
class RandomMapper(LayerMapper):
    """Random matching: a random permutation of the forward list, fixed by the seed.

    The teacher layers used are exactly the forward ones; only their order among the student
    layers is shuffled (``random.Random(seed).shuffle``).

    Args:
        seed: seed of the mapper's own generator.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed("RandomMapper", seed)

    def _args(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[(i, π(g)_i)]`` with ``π`` a seeded permutation of the forward list ``g``."""
        teachers = forward_indices(num_student, num_teacher, "RandomMapper")
        random.Random(self.seed).shuffle(teachers)
        return list(enumerate(teachers))


@MAPPERS.register_module()
class AllToOneMapper(LayerMapper):
    """All-to-one matching: every student layer ↔ teacher layer ``k``.

    Args:
        teacher_index: ``k``; negative values count from the end (``-1`` = last teacher layer).
    """

    def __init__(self, teacher_index: int = -1) -> None:
        if isinstance(teacher_index, bool) or not isinstance(teacher_index, int):
            raise ValueError(
                f"AllToOneMapper: teacher_index must be an int, got "
                f"{type(teacher_index).__name__} {teacher_index!r}"
            )
        self.teacher_index = teacher_index

    def _args(self) -> dict[str, Any]:
        return {"teacher_index": self.teacher_index}

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[(i, k mod T) for i in range(S)]``."""
        _check_counts("AllToOneMapper", num_student, num_teacher)
        k = self.teacher_index
        if not -num_teacher <= k < num_teacher:
            raise ValueError(
                f"AllToOneMapper: teacher_index={k} is out of range for num_teacher={num_teacher} "
                f"(num_student={num_student}); valid: {-num_teacher} … {num_teacher - 1}"
            )
        return [(i, k % num_teacher) for i in range(num_student)]


@MAPPERS.register_module()
class ExplicitMapper(LayerMapper):
    """Explicit matching: the ``(student, teacher)`` pairs given in the config.

    Pairs are returned sorted by student index (stable, so one student layer may meet several
    teacher layers in the order given). Negative indexes count from the end and are normalised
    when the mapper is called; a pair repeated (after normalisation) is an error, and so is an
    index outside ``-n … n−1``. Student layers left out are simply not matched.

    Args:
        pairs: sequence of ``[student_index, teacher_index]``.
    """

    def __init__(self, pairs: Sequence[Sequence[int]]) -> None:
        if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
            raise ValueError(
                f"ExplicitMapper: pairs must be a list of [student_index, teacher_index], "
                f"got {pairs!r}"
            )
        parsed: Pairs = []
        for n, pair in enumerate(pairs):
            ok = (
                isinstance(pair, Sequence)
                and not isinstance(pair, str | bytes)
                and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            )
            if not ok:
                raise ValueError(
                    f"ExplicitMapper: pairs[{n}] = {pair!r} is not a [student_index, "
                    "teacher_index] pair of ints"
                )
            parsed.append((pair[0], pair[1]))
        self.pairs = parsed

    def _args(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self.pairs]}

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return the configured pairs, normalised to non-negative indexes, by student index."""
        _check_counts("ExplicitMapper", num_student, num_teacher)
        out: Pairs = []
        seen: dict[tuple[int, int], int] = {}
        for n, (s, t) in enumerate(self.pairs):
            for role, idx, count in (("student", s, num_student), ("teacher", t, num_teacher)):
                if not -count <= idx < count:
                    raise ValueError(
                        f"ExplicitMapper: pairs[{n}] = {[s, t]} has {role} index {idx} out of "
                        f"range for num_student={num_student}, num_teacher={num_teacher}; "
                        f"valid {role} indexes: {-count} … {count - 1}"
                    )
            pair = (s % num_student, t % num_teacher)
            if pair in seen:
                raise ValueError(
                    f"ExplicitMapper: pairs[{n}] = {[s, t]} duplicates pairs[{seen[pair]}] = "
                    f"{list(self.pairs[seen[pair]])} (both are {list(pair)} for "
                    f"num_student={num_student}, num_teacher={num_teacher}); list each pair once"
                )
            seen[pair] = n
            out.append(pair)
        return sorted(out, key=lambda p: p[0])


@MAPPERS.register_module()
class NoneMapper(LayerMapper):
    """No intermediate matching (logit KD only): always returns no pairs."""

    def __call__(self, num_student: int, num_teacher: int) -> Pairs:
        """Return ``[]`` for any non-negative counts."""
        for name, value in (("num_student", num_student), ("num_teacher", num_teacher)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"NoneMapper: {name} must be a non-negative int, got {value!r}")
        return []


def build_mapper(cfg: dict[str, Any] | LayerMapper | None) -> LayerMapper:
    """Build a layer mapper.

    ``None`` gives the default :class:`ForwardMapper`; a :class:`LayerMapper` is returned as is;
    a dict (``dict(type='ReverseMapper')``) is built from :data:`kd_det.registry.MAPPERS`.
    """
    if cfg is None:
        return ForwardMapper()
    if isinstance(cfg, LayerMapper):
        return cfg
    if not isinstance(cfg, dict):
        raise ValueError(
            f"mapper must be None, a LayerMapper or a config dict such as "
            f"dict(type='ForwardMapper'), got {type(cfg).__name__} {cfg!r}"
        )
    if "type" not in cfg:
        raise ValueError(
            f"mapper config {cfg!r} has no 'type'; registered mappers: "
            f"{sorted(MAPPERS.module_dict)}"
        )
    if not isinstance(cfg["type"], type):  # "did you mean" and the registered mappers
        check_type(cfg["type"], MAPPERS, kind="mapper", valid=sorted(MAPPERS.module_dict))
    mapper = build_kd_module(cfg, registry=MAPPERS)
    if not isinstance(mapper, LayerMapper):
        raise ValueError(
            f"mapper config {cfg!r} built a {type(mapper).__name__}, which is not a LayerMapper"
        )
    return mapper
