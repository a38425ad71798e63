"""DistillTerm on toy tensors: pairing, alignment, connectors, gradients, state dict."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kd_det.distillers import DistillTerm

SRD = dict(
    type="ProjectNorm", projector=dict(type="LinearProjector"), norm=dict(type="AffineFreeBN")
)
MSE = dict(type="MSEFeatureLoss", loss_weight=1.0)


def _term(connector=SRD, mapper=None, loss=MSE, s_sizes=(8, 4), t_sizes=(8, 4, 2), **kwargs):
    """A term between student maps of width 3 and teacher maps of width 5 (batch 4)."""
    torch.manual_seed(0)
    return DistillTerm(
        "fpn",
        student_labels=[f"s{i}" for i in range(len(s_sizes))],
        teacher_labels=[f"t{j}" for j in range(len(t_sizes))],
        student_shapes=[(4, 3, h, h) for h in s_sizes],
        teacher_shapes=[(4, 5, h, h) for h in t_sizes],
        loss=loss,
        mapper=mapper,
        connector=connector,
        **kwargs,
    )


def _maps(width: int, sizes, seed: int, grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, width, h, h, generator=g).requires_grad_(grad) for h in sizes]


def _bn(x: torch.Tensor) -> torch.Tensor:
    """Affine-free BatchNorm by hand: per channel over batch and locations, eps 1e-4."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-4)


def test_pairs_come_from_the_mapper() -> None:
    forward = _term()
    assert forward.pairs.tolist() == [[0, 1], [1, 2]]  # round((i + 1) * 3 / 2) - 1
    assert forward.pair_labels == [("s0", "t1"), ("s1", "t2")]
    reverse = _term(mapper=dict(type="ReverseMapper"))
    assert reverse.pairs.tolist() == [[0, 2], [1, 1]]
    explicit = _term(mapper=dict(type="ExplicitMapper", pairs=[[1, 0]]))
    assert explicit.pair_labels == [("s1", "t0")]
    assert len(explicit.connectors) == 1
    # one connector per pair, each from the student's width to the teacher's
    assert [tuple(c.projector.weight.shape) for c in forward.connectors] == [(5, 3, 1, 1)] * 2


def test_value_is_the_loss_of_the_connected_and_resized_pairs_by_hand() -> None:
    # student s0 (8x8) <- teacher t0 (8x8); s1 (4x4) <- t2 (2x2), resized up to 4x4
    term = _term(mapper=dict(type="ExplicitMapper", pairs=[[0, 0], [1, 2]]))
    student, teacher = _maps(3, (8, 4), seed=1), _maps(5, (8, 4, 2), seed=2)
    expected = 0.0
    for k, (i, j) in enumerate([(0, 0), (1, 2)]):
        weight = term.connectors[k].projector.weight[:, :, 0, 0]
        s = _bn(torch.einsum("oc,bchw->bohw", weight, student[i]))
        t = teacher[j]
        if t.shape[2:] != s.shape[2:]:
            t = F.interpolate(t, size=s.shape[2:], mode="bilinear", align_corners=False)
        expected = expected + ((s - _bn(t)) ** 2).mean()
    torch.testing.assert_close(term(student, teacher), expected, rtol=1e-4, atol=1e-5)
    # the scale (set by DistillWeightScheduler) multiplies the sum
    term.scale = 0.25
    torch.testing.assert_close(term(student, teacher), 0.25 * expected, rtol=1e-4, atol=1e-5)


def test_align_none_compares_maps_of_one_size_as_they_are() -> None:
    term = _term(connector=dict(type="ProjectNorm", projector=dict(type="LinearProjector")),
                 s_sizes=(4,), t_sizes=(4,), align="none")  # fmt: skip
    student, teacher = _maps(3, (4,), seed=3), _maps(5, (4,), seed=4)
    weight = term.connectors[0].projector.weight[:, :, 0, 0]
    s = torch.einsum("oc,bchw->bohw", weight, student[0])
    torch.testing.assert_close(term(student, teacher), ((s - teacher[0]) ** 2).mean())


def test_gradients_reach_the_student_and_the_connector_never_the_teacher() -> None:
    term = _term()
    student, teacher = _maps(3, (8, 4), seed=5, grad=True), _maps(5, (8, 4, 2), seed=6, grad=True)
    term(student, teacher).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)
    assert all(c.projector.weight.grad.abs().sum() > 0 for c in term.connectors)


def test_without_a_connector_the_features_are_compared_as_they_are() -> None:
    term = DistillTerm("logits", ["s"], ["t"], [(4, 7)], [(4, 7)], loss=MSE)
    s, t = torch.randn(4, 7), torch.randn(4, 7)
    torch.testing.assert_close(term([s], [t]), ((s - t) ** 2).mean())
    assert list(term.parameters()) == []


def test_none_mapper_gives_a_zero_term() -> None:
    term = _term(mapper=dict(type="NoneMapper"))
    assert term.pairs.shape == (0, 2) and len(term.connectors) == 0
    value = term(_maps(3, (8, 4), seed=7), _maps(5, (8, 4, 2), seed=8))
    assert value.item() == 0.0 and value.shape == ()


def test_state_dict_round_trip_of_connectors_and_pairs() -> None:
    trained = _term(mapper=dict(type="RandomMapper", seed=1))
    with torch.no_grad():
        for conn in trained.connectors:
            conn.projector.weight.add_(1.0)
    state = trained.state_dict()
    assert set(state) == {"pairs", "connectors.0.projector.weight", "connectors.1.projector.weight"}
    fresh = _term(mapper=dict(type="RandomMapper", seed=1))
    assert not torch.equal(
        fresh.connectors[0].projector.weight, state["connectors.0.projector.weight"]
    )
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    student, teacher = _maps(3, (8, 4), seed=9), _maps(5, (8, 4, 2), seed=10)
    torch.testing.assert_close(fresh(student, teacher), trained(student, teacher))


def test_a_state_with_other_pairs_is_refused() -> None:
    state = _term(mapper=dict(type="ForwardMapper")).state_dict()
    other = _term(mapper=dict(type="ReverseMapper"))
    with pytest.raises(
        ValueError,
        match=r"distill term 'fpn': the checkpoint was trained with layer pairs \[\[0, 1\], "
        r"\[1, 2\]\], the config now maps \[\[0, 2\], \[1, 1\]\]",
    ):
        other.load_state_dict(state)


def test_shapes_that_cannot_be_paired() -> None:
    with pytest.raises(
        ValueError, match=r"distill term 'x', s <- t: shapes \(4, 3\) and \(4, 3, 2, 2\)"
    ):
        DistillTerm("x", ["s"], ["t"], [(4, 3)], [(4, 3, 2, 2)], loss=MSE)
    with pytest.raises(ValueError, match=r"unknown mapper type 'Forward'"):
        _term(mapper=dict(type="Forward"))
