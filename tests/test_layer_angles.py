"""The layer-angle diagnostic with student -> teacher adapters (arXiv:2502.04499), and why the
older least-squares fit of the teacher onto the student is biased towards acute angles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kd_det.analysis.layer_angles import (
    acute_fraction,
    adapter_targets,
    adapter_weight,
    align_feature_maps,
    feature_map_angle_matrix,
    fit_adapter,
    lstsq_projection,
    position_cosines,
    random_direction_cosines,
)
from kd_det.connectors import LinearProjector


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def test_adapter_targets_by_hand() -> None:
    # W maps the 2-d student to a 3-d teacher: W = [[1, 0], [0, 2], [0, 0]] (full column rank),
    # W⁺ = [[1, 0, 0], [0, 1/2, 0]]; s = (1, 1), t = (3, 4, 5): t - W s = (2, 2, 5),
    # W⁺ (t - W s) = (2, 1) and t̃ = s + (2, 1) = (3, 2) = W⁺ t.
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    s = torch.tensor([[1.0, 1.0]])
    t = torch.tensor([[3.0, 4.0, 5.0]])
    torch.testing.assert_close(adapter_targets(s, t, w), torch.tensor([[3.0, 2.0]]))
    # A teacher narrower than the student (rank-deficient W): t̃ is the point of the preimage
    # {x : W x = t} nearest s, so the direction has no component in W's null space.
    w_narrow = torch.tensor([[1.0, 0.0]])  # sees only the first coordinate
    s2 = torch.tensor([[1.0, 7.0]])
    got = adapter_targets(s2, torch.tensor([[4.0]]), w_narrow)
    torch.testing.assert_close(got, torch.tensor([[4.0, 7.0]]))


def test_adapter_targets_is_the_pull_of_the_mse() -> None:
    # For a square invertible adapter, t̃ - s is parallel to the gradient step of ‖W s − t‖² in
    # W's metric: W (t̃ − s) = t − W s exactly.
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 5, generator=g, dtype=torch.float64)
    s = torch.randn(20, 5, generator=g, dtype=torch.float64)
    t = torch.randn(20, 5, generator=g, dtype=torch.float64)
    d = adapter_targets(s, t, w) - s
    torch.testing.assert_close(d @ w.T, t - s @ w.T)


def test_adapter_weight_accepts_modules_and_refuses_bad_ones() -> None:
    proj = LinearProjector(3, 6, spatial=True)
    assert adapter_weight(proj).shape == (6, 3)
    conv = nn.Conv2d(3, 6, 1, bias=False)
    torch.testing.assert_close(adapter_weight(conv), conv.weight[:, :, 0, 0])
    with pytest.raises(ValueError, match="has a bias"):
        adapter_weight(nn.Conv2d(3, 6, 1))
    with pytest.raises(ValueError, match=r"\[C_t, C_s\]"):
        adapter_weight(torch.zeros(6, 3, 3, 3))
    with pytest.raises(ValueError, match="expected \\[C_t, C_s\\]"):
        adapter_targets(torch.zeros(4, 3), torch.zeros(4, 6), torch.zeros(3, 6))


def test_fit_adapter_is_the_converged_mse_adapter() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(200, 4, generator=g, dtype=torch.float64)
    w_true = torch.randn(7, 4, generator=g, dtype=torch.float64)
    t = s @ w_true.T + 0.01 * torch.randn(200, 7, generator=g, dtype=torch.float64)
    w = fit_adapter(s, t)
    assert w.shape == (7, 4)
    torch.testing.assert_close(w, lstsq_projection(s, t).T)
    # the normal equations of min ‖s Wᵀ − t‖: the residual is orthogonal to s
    torch.testing.assert_close(s.T @ (s @ w.T - t), torch.zeros(4, 7, dtype=torch.float64))
    assert (w - w_true).abs().max() < 0.01


def test_lstsq_fit_is_biased_the_adapter_fit_is_not() -> None:
    # Teacher maps independent of the student and of each other: no real geometry, so an
    # unbiased diagnostic gives half acute angles. Regressing each teacher onto the student makes
    # t̃_j − s minus the residual of s on t_j; these share the part of s no teacher explains.
    g = torch.Generator().manual_seed(2)
    s = torch.randn(8, 16, 6, 6, generator=g, dtype=torch.float64)
    ts = [torch.randn(8, 24, 6, 6, generator=g, dtype=torch.float64) for _ in range(5)]
    with pytest.warns(UserWarning, match="acute by construction"):
        biased = feature_map_angle_matrix(s, ts, fit="lstsq")
    fair = feature_map_angle_matrix(s, ts, fit="adapter")
    off = ~torch.eye(5, dtype=torch.bool)
    assert acute_fraction(biased) == 1.0 and biased[off].min() > 0.3
    assert fair[off].abs().max() < 0.1
    s_rows, t_rows = align_feature_maps(s, ts, fit="adapter")
    assert 0.4 < acute_fraction(position_cosines(s_rows, t_rows)) < 0.6


def test_trained_adapters_are_used_as_given() -> None:
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 3, 4, 4, generator=g)
    t = torch.randn(2, 5, 2, 2, generator=g)  # resized to 4x4 first
    proj = LinearProjector(3, 5, spatial=True)
    s_rows, (got,) = align_feature_maps(s, [t], adapters=[proj])
    t_up = torch.nn.functional.interpolate(t, size=(4, 4), mode="bilinear", align_corners=False)
    ref = adapter_targets(s_rows, _rows(t_up), proj.weight)
    torch.testing.assert_close(got, ref)
    # None in the list falls back to fit / identity; a wrong count is refused
    _, (ident,) = align_feature_maps(s, [torch.randn(2, 3, 4, 4, generator=g)], adapters=[None])
    assert ident.shape == s_rows.shape
    with pytest.raises(ValueError, match="adapters has 2 entries for 1 teacher"):
        align_feature_maps(s, [t], adapters=[proj, proj])
    with pytest.raises(ValueError, match=r"teachers\[0\].*expected \[C_t, C_s\]"):
        align_feature_maps(s, [t], adapters=[LinearProjector(3, 4, spatial=True)])
    with pytest.raises(ValueError, match="fit must be one of"):
        align_feature_maps(s, [t], fit="ridge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fit='adapter'"):
        align_feature_maps(s, [t])


def test_random_direction_baseline() -> None:
    g = torch.Generator().manual_seed(4)
    cos = random_direction_cosines(4000, 4, 16, generator=g)
    assert cos.shape == (4000, 4, 4)
    torch.testing.assert_close(torch.diagonal(cos, dim1=1, dim2=2), torch.ones(4000, 4).double())
    assert abs(acute_fraction(cos) - 0.5) < 0.02
    off = cos[:, ~torch.eye(4, dtype=torch.bool)]
    assert abs(off.std().item() - 1 / math.sqrt(16)) < 0.02
    with pytest.raises(ValueError, match="num_layers must be an int >= 2"):
        random_direction_cosines(10, 1, 4)
    with pytest.raises(ValueError, match="dim must be an int >= 1"):
        random_direction_cosines(10, 2, 0)
