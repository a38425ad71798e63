"""Tests of the layer-selection strategies (kd_det.mappers, arXiv:2502.04499)."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from kd_det.mappers import (
    AllToOneMapper,
    ExplicitMapper,
    ForwardMapper,
    InOrderRandomMapper,
    LayerMapper,
    NoneMapper,
    RandomMapper,
    ReverseMapper,
    build_mapper,
)
from kd_det.registry import MAPPERS

SEEDED = [InOrderRandomMapper, RandomMapper]


def _forward_reference(s: int, t: int) -> list[int]:
    """Round-half-up of (i+1)·T/S minus one, in exact rationals, clipped at 0."""
    return [max(math.floor(Fraction((i + 1) * t, s) + Fraction(1, 2)) - 1, 0) for i in range(s)]


def test_forward_known_lists() -> None:
    assert ForwardMapper()(3, 12) == [(0, 3), (1, 7), (2, 11)]  # layers 4, 8, 12 of 12
    assert ForwardMapper()(4, 6) == [(0, 1), (1, 2), (2, 4), (3, 5)]  # halves round up
    assert ForwardMapper()(6, 4) == [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3)]
    assert ForwardMapper()(1, 5) == [(0, 4)]
    for n in range(1, 8):
        assert ForwardMapper()(n, n) == [(i, i) for i in range(n)]


def test_forward_matches_reference_and_is_monotone() -> None:
    for s in range(1, 13):
        for t in range(1, 13):
            got = ForwardMapper()(s, t)
            assert [p[0] for p in got] == list(range(s))
            teachers = [p[1] for p in got]
            assert teachers == _forward_reference(s, t), (s, t)
            assert teachers[-1] == t - 1
            assert all(0 <= x < t for x in teachers)
            assert teachers == sorted(teachers)
            if s <= t:
                assert len(set(teachers)) == s


def test_reverse_known_lists() -> None:
    assert ReverseMapper()(3, 12) == [(0, 11), (1, 7), (2, 3)]
    assert ReverseMapper()(4, 4) == [(0, 3), (1, 2), (2, 1), (3, 0)]
    for s, t in [(2, 5), (5, 7), (6, 4)]:
        fwd = [p[1] for p in ForwardMapper()(s, t)]
        assert ReverseMapper()(s, t) == list(enumerate(fwd[::-1]))


def test_all_to_one() -> None:
    assert AllToOneMapper()(3, 12) == [(0, 11), (1, 11), (2, 11)]
    assert AllToOneMapper(teacher_index=0)(2, 12) == [(0, 0), (1, 0)]
    assert AllToOneMapper(teacher_index=-3)(2, 12) == [(0, 9), (1, 9)]
    assert AllToOneMapper(teacher_index=4)(5, 5) == [(i, 4) for i in range(5)]
    with pytest.raises(ValueError, match=r"AllToOneMapper.*teacher_index=12.*num_teacher=12"):
        AllToOneMapper(teacher_index=12)(3, 12)
    with pytest.raises(ValueError, match=r"-12 … 11"):
        AllToOneMapper(teacher_index=-13)(3, 12)


def test_none_mapper() -> None:
    assert NoneMapper()(3, 12) == []
    assert NoneMapper()(0, 0) == []
    with pytest.raises(ValueError, match="NoneMapper"):
        NoneMapper()(-1, 3)


def test_in_order_random_is_sorted_subset() -> None:
    for seed in range(20):
        for s, t in [(3, 12), (1, 4), (5, 5), (4, 9)]:
            pairs = InOrderRandomMapper(seed=seed)(s, t)
            assert [p[0] for p in pairs] == list(range(s))
            teachers = [p[1] for p in pairs]
            assert teachers == sorted(teachers)
            assert len(set(teachers)) == s
            assert set(teachers) <= set(range(t))
    assert InOrderRandomMapper(seed=7)(5, 5) == [(i, i) for i in range(5)]
    draws = {tuple(p[1] for p in InOrderRandomMapper(seed=k)(3, 12)) for k in range(30)}
    assert len(draws) > 10  # the seed really changes the subset


def test_in_order_random_uses_its_own_generator() -> None:
    # The documented draw: random.Random(seed).sample(range(T), S), sorted.
    expected = sorted(random.Random(5).sample(range(12), 3))
    assert [p[1] for p in InOrderRandomMapper(seed=5)(3, 12)] == expected


def test_random_is_permutation_of_forward() -> None:
    for seed in range(20):
        for s, t in [(3, 12), (6, 6), (6, 4)]:
            pairs = RandomMapper(seed=seed)(s, t)
            assert [p[0] for p in pairs] == list(range(s))
            fwd = [p[1] for p in ForwardMapper()(s, t)]
            assert sorted(p[1] for p in pairs) == fwd
    perms = {tuple(p[1] for p in RandomMapper(seed=k)(4, 12)) for k in range(30)}
    assert len(perms) > 5
    expected = [2, 5, 8, 11]
    random.Random(9).shuffle(expected)
    assert [p[1] for p in RandomMapper(seed=9)(4, 12)] == expected


@pytest.mark.parametrize("cls", SEEDED)
def test_seeded_mappers_ignore_global_rng(cls: type[LayerMapper]) -> None:
    ref = cls(seed=3)(4, 12)
    for global_seed in (0, 1, 12345):
        random.seed(global_seed)
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        assert cls(seed=3)(4, 12) == ref
    # Calling does not consume or disturb the global generators either.
    random.seed(11)
    before = random.random()
    random.seed(11)
    cls(seed=3)(4, 12)
    assert random.random() == before
    mapper = cls(seed=3)
    assert mapper(4, 12) == mapper(4, 12) == ref


def test_seeded_mappers_same_across_processes() -> None:
    code = (
        "from kd_det.mappers import InOrderRandomMapper, RandomMapper;"
        "print(InOrderRandomMapper(seed=4)(5, 12), RandomMapper(seed=4)(5, 12))"
    )
    env_out = []
    for hash_seed in ("1", "2"):
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        )
        env_out.append(res.stdout.strip())
    here = f"{InOrderRandomMapper(seed=4)(5, 12)} {RandomMapper(seed=4)(5, 12)}"
    assert env_out == [here, here]


def test_explicit_mapper() -> None:
    m = ExplicitMapper(pairs=[[2, 11], [0, 3], [1, 7]])
    assert m(3, 12) == [(0, 3), (1, 7), (2, 11)]
    assert ExplicitMapper(pairs=[[-1, -1], [0, 0]])(3, 12) == [(0, 0), (2, 11)]
    # One student layer may meet several teacher layers; order kept within a student.
    assert ExplicitMapper(pairs=[[1, 5], [0, 2], [1, 4]])(2, 6) == [(0, 2), (1, 5), (1, 4)]
    assert ExplicitMapper(pairs=[])(2, 6) == []


def test_explicit_mapper_errors() -> None:
    with pytest.raises(ValueError, match=r"pairs\[1\].*teacher index 12.*num_teacher=12"):
        ExplicitMapper(pairs=[[0, 3], [1, 12]])(3, 12)
    with pytest.raises(ValueError, match=r"student index 3.*valid student indexes: -3 … 2"):
        ExplicitMapper(pairs=[[3, 0]])(3, 12)
    with pytest.raises(ValueError, match=r"pairs\[2\].*duplicates pairs\[0\]"):
        ExplicitMapper(pairs=[[0, 3], [1, 7], [0, 3]])(3, 12)
    with pytest.raises(ValueError, match=r"duplicates"):
        ExplicitMapper(pairs=[[2, 11], [-1, -1]])(3, 12)
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        ExplicitMapper(pairs=[[0, 1, 2]])
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        ExplicitMapper(pairs=[[0, 1.0]])
    with pytest.raises(ValueError, match="list of"):
        ExplicitMapper(pairs="0,1")


@pytest.mark.parametrize(
    "mapper",
    [ForwardMapper(), ReverseMapper(), InOrderRandomMapper(), RandomMapper(), AllToOneMapper()],
)
@pytest.mark.parametrize("counts", [(0, 12), (3, 0), (0, 0)])
def test_zero_counts_raise(mapper: LayerMapper, counts: tuple[int, int]) -> None:
    name = type(mapper).__name__
    with pytest.raises(
        ValueError, match=rf"{name}.*num_student={counts[0]}, num_teacher={counts[1]}"
    ):
        mapper(*counts)


def test_in_order_random_needs_enough_teachers() -> None:
    with pytest.raises(
        ValueError, match=r"InOrderRandomMapper.*num_teacher >= num_student.*=4.*=3"
    ):
        InOrderRandomMapper()(4, 3)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="seed must be an int"):
        RandomMapper(seed="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="teacher_index must be an int"):
        AllToOneMapper(teacher_index=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_student must be an int"):
        ForwardMapper()(3.0, 12)  # type: ignore[arg-type]


def test_build_mapper() -> None:
    assert isinstance(build_mapper(None), ForwardMapper)
    rev = ReverseMapper()
    assert build_mapper(rev) is rev
    built = build_mapper(dict(type="InOrderRandomMapper", seed=2))
    assert built == InOrderRandomMapper(seed=2)
    assert built(3, 12) == InOrderRandomMapper(seed=2)(3, 12)
    assert build_mapper(dict(type="kd_det.AllToOneMapper", teacher_index=0))(2, 4) == [
        (0, 0),
        (1, 0),
    ]
    pairs = build_mapper(dict(type="ExplicitMapper", pairs=[[0, 1]]))(1, 2)
    assert pairs == [(0, 1)]
    for name in ("ForwardMapper", "ReverseMapper", "RandomMapper", "NoneMapper"):
        assert MAPPERS.get(name) is not None
    with pytest.raises(ValueError, match=r"unknown mapper type 'Sideways'.*ForwardMapper"):
        build_mapper(dict(type="Sideways"))
    with pytest.raises(ValueError, match="no 'type'"):
        build_mapper(dict(seed=1))
    with pytest.raises(ValueError, match="LayerMapper or a config dict"):
        build_mapper("forward")  # type: ignore[arg-type]


def test_build_mapper_under_mmdet_scope() -> None:
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):
        assert build_mapper(dict(type="ReverseMapper"))(2, 4) == [(0, 3), (1, 1)]


def test_repr_names_arguments() -> None:
    assert repr(InOrderRandomMapper(seed=3)) == "InOrderRandomMapper(seed=3)"
    assert repr(ExplicitMapper(pairs=[(0, 1)])) == "ExplicitMapper(pairs=[[0, 1]])"
    assert ForwardMapper() == ForwardMapper() and RandomMapper(1) != RandomMapper(2)
