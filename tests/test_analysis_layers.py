"""Tests of the layer-angle diagnostic (arXiv:2502.04499) and linear CKA (arXiv:1905.00414)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kd_det.analysis import (
    acute_fraction,
    align_feature_maps,
    cka_matrix,
    feature_map_angle_matrix,
    feature_map_cka,
    flatten_representation,
    layer_angle_matrix,
    linear_cka,
    lstsq_projection,
    position_cosines,
)

R2 = 1 / math.sqrt(2)


def _reference_angles(s: np.ndarray, ts: list[np.ndarray]) -> np.ndarray:
    """Straightforward loop: mean over positions of cos between t_j − s and t_k − s."""
    n, num = s.shape[0], len(ts)
    out = np.zeros((num, num))
    for p in range(n):
        for j in range(num):
            for k in range(num):
                a, b = ts[j][p] - s[p], ts[k][p] - s[p]
                out[j, k] += a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return out / n


# ---------------------------------------------------------------- layer angles


def test_two_d_example_by_hand() -> None:
    # Position 0: s = (2, 3); directions (1, 0), (1, 1), (-1, 0).
    # Position 1: s = (0, 0); directions (0, 2), (3, 0), (0, -1).
    s = torch.tensor([[2.0, 3.0], [0.0, 0.0]])
    t1 = torch.tensor([[3.0, 3.0], [0.0, 2.0]])
    t2 = torch.tensor([[3.0, 4.0], [3.0, 0.0]])
    t3 = torch.tensor([[1.0, 3.0], [0.0, -1.0]])
    per_pos = position_cosines(s, [t1, t2, t3])
    expected_pos = torch.tensor(
        [
            [[1, R2, -1], [R2, 1, -R2], [-1, -R2, 1]],
            [[1, 0, -1], [0, 1, 0], [-1, 0, 1]],
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(per_pos, expected_pos)
    a = layer_angle_matrix(s, [t1, t2, t3])
    expected = torch.tensor([[1, R2 / 2, -1], [R2 / 2, 1, -R2 / 2], [-1, -R2 / 2, 1]])
    torch.testing.assert_close(a, expected)
    # Mean matrix: only the (1, 2) pair is acute -> 2 of 6 off-diagonal entries.
    assert acute_fraction(a) == pytest.approx(1 / 3)
    # Per position: 2 of 6 at position 0, none at position 1 (right angles are not acute).
    assert acute_fraction(per_pos) == pytest.approx(2 / 12)


def test_same_side_all_acute_opposite_sides_obtuse() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, 8, generator=g)
    # Directions with all-positive coordinates: every pairwise dot product is positive.
    same = [s + torch.rand(50, 8, generator=g) + 0.1 for _ in range(4)]
    a = layer_angle_matrix(s, same)
    assert (a > 0).all()
    assert acute_fraction(a) == 1.0
    assert acute_fraction(position_cosines(s, same)) == 1.0
    torch.testing.assert_close(torch.diagonal(a), torch.ones(4))
    # t_1 on one side of s, t_2 = its mirror image through s: angle is exactly 180°.
    u = torch.randn(50, 8, generator=g)
    a2 = layer_angle_matrix(s, [s + u, s - 3 * u])
    torch.testing.assert_close(a2, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    assert acute_fraction(a2) == 0.0
    # Collinear on the same side: angle 0.
    a3 = layer_angle_matrix(s, [s + u, s + 2 * u])
    torch.testing.assert_close(a3, torch.ones(2, 2))


def test_matches_loop_reference_and_stacked_input() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(13, 5, dtype=torch.float64, generator=g)
    ts = [torch.randn(13, 5, dtype=torch.float64, generator=g) for _ in range(3)]
    ref = _reference_angles(s.numpy(), [t.numpy() for t in ts])
    np.testing.assert_allclose(layer_angle_matrix(s, ts).numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        layer_angle_matrix(s, torch.stack(ts)).numpy(), ref, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(position_cosines(s, ts).mean(0).numpy(), ref, atol=1e-12)


def test_teacher_equal_to_student_counts_zero() -> None:
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    t1 = torch.tensor([[0.0, 0.0], [2.0, 1.0]])  # equal to s at position 0
    t2 = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    a = layer_angle_matrix(s, [t1, t2])
    # Position 0 contributes 0 to row/column 1 (diagonal included); position 1 gives all ones.
    torch.testing.assert_close(a, torch.tensor([[0.5, 0.5], [0.5, 1.0]]))


def test_angle_errors() -> None:
    s = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"teachers\[1\] has shape \(4, 2\)"):
        layer_angle_matrix(s, [torch.ones(4, 3), torch.ones(4, 2)])
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        layer_angle_matrix(torch.zeros(2, 4, 3), [torch.ones(4, 3)])
    with pytest.raises(ValueError, match="empty"):
        layer_angle_matrix(s, [])
    with pytest.raises(ValueError, match="at least 2 teacher layers"):
        acute_fraction(torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"\[L, L\] or \[N, L, L\]"):
        acute_fraction(torch.ones(2, 3))


def test_feature_maps_resize_and_flatten() -> None:
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 3, 4, 5, generator=g)
    t_small = [torch.randn(2, 3, 4, 5, generator=g) for _ in range(2)]
    # A teacher at twice the resolution whose 2x2 blocks are constant: bilinear resizing
    # (align_corners=False) samples each block's centre, so it recovers the small map exactly.
    t_big = t_small[1].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    got = feature_map_angle_matrix(s, [t_small[0], t_big])
    rows = lambda x: x.permute(0, 2, 3, 1).reshape(-1, 3).numpy()  # noqa: E731
    ref = _reference_angles(rows(s), [rows(t) for t in t_small])
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)
    s_rows, t_rows = align_feature_maps(s, [t_small[0], t_big])
    assert s_rows.shape == (2 * 4 * 5, 3) and [t.shape for t in t_rows] == [(40, 3)] * 2
    # Position (b=1, h=2, w=3) is row 1*20 + 2*5 + 3.
    torch.testing.assert_close(s_rows[33], s[1, :, 2, 3])
    # A non-trivial resize (upsampling) matches F.interpolate.
    t_low = torch.randn(2, 3, 2, 3, generator=g)
    _, (up,) = align_feature_maps(s, [t_low])
    ref_up = F.interpolate(t_low, size=(4, 5), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, ref_up.permute(0, 2, 3, 1).reshape(-1, 3))


def test_feature_maps_projection() -> None:
    g = torch.Generator().manual_seed(3)
    s = torch.randn(1, 2, 3, 3, generator=g)
    t = torch.randn(1, 4, 3, 3, generator=g)
    with pytest.raises(ValueError, match=r"teachers\[0\] has 4 channels, the student 2.*lstsq"):
        feature_map_angle_matrix(s, [t, t])
    conv = nn.Conv2d(4, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]).view(2, 4, 1, 1))
    # The projection keeps channels 0 and 2, so it equals slicing by hand.
    t2 = torch.randn(1, 2, 3, 3, generator=g)
    got = feature_map_angle_matrix(s, [t, t2], projections=[conv, None])
    ref = feature_map_angle_matrix(s, [t[:, [0, 2]], t2])
    torch.testing.assert_close(got, ref)
    got_ml = feature_map_angle_matrix(s, [t, t], projections=nn.ModuleList([conv, conv]))
    got_one = feature_map_angle_matrix(s, [t, t], projections=conv)
    torch.testing.assert_close(got_ml, got_one)
    with pytest.raises(ValueError, match="projections has 1 entries for 2"):
        feature_map_angle_matrix(s, [t, t], projections=[conv])
    with pytest.raises(ValueError, match=r"projections\[0\] returned shape"):
        feature_map_angle_matrix(s, [t], projections=nn.Conv2d(4, 3, 1))
    with pytest.raises(ValueError, match="B=1"):
        feature_map_angle_matrix(s, [torch.randn(2, 2, 3, 3)])
    with pytest.raises(ValueError, match="fit must be"):
        feature_map_angle_matrix(s, [t], fit="ridge")  # type: ignore[arg-type]


def test_lstsq_projection_and_fit() -> None:
    g = torch.Generator().manual_seed(4)
    src = torch.randn(30, 5, dtype=torch.float64, generator=g)
    tgt = torch.randn(30, 3, dtype=torch.float64, generator=g)
    w = lstsq_projection(src, tgt)
    ref = np.linalg.lstsq(src.numpy(), tgt.numpy(), rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-10, atol=1e-10)
    # Normal equations: the residual is orthogonal to the columns of src.
    np.testing.assert_allclose((src.T @ (src @ w - tgt)).numpy(), 0.0, atol=1e-10)

    # Teacher maps with 5 channels; student width 3. fit='lstsq' equals applying the
    # least-squares matrix by hand.
    s = torch.randn(2, 3, 3, 3, dtype=torch.float64, generator=g)
    ts = [torch.randn(2, 5, 3, 3, dtype=torch.float64, generator=g) for _ in range(2)]
    rows = lambda x: x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # noqa: E731
    s_rows = rows(s).numpy()
    projected = [
        rows(t).numpy() @ np.linalg.lstsq(rows(t).numpy(), s_rows, rcond=None)[0] for t in ts
    ]
    got = feature_map_angle_matrix(s, ts, fit="lstsq")
    np.testing.assert_allclose(got.numpy(), _reference_angles(s_rows, projected), atol=1e-10)


# ------------------------------------------------------------------------- CKA


def _reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC form with an explicit centring matrix H = I − 11ᵀ/n."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, lg = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.trace(k @ lg) / math.sqrt(np.trace(k @ k) * np.trace(lg @ lg)))


def test_cka_hand_examples() -> None:
    # One column each: CKA = squared Pearson correlation. Centred x = (-1, 0, 1),
    # y = (-11, -2, 13)/3: r² = 8² / (2 · 98/3) = 48/49.
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [4.0], [9.0]])
    assert linear_cka(x, y).item() == pytest.approx(48 / 49, abs=1e-12)
    # X = (±e1, ±e2), Y = first column: ‖ỸᵀX̃‖² = 4, ‖X̃ᵀX̃‖ = 2√2, ‖ỸᵀỸ‖ = 2 → 1/√2.
    x2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert linear_cka(x2, x2[:, :1]).item() == pytest.approx(R2, abs=1e-12)
    assert linear_cka(x2[:, :1], x2).item() == pytest.approx(R2, abs=1e-12)


@pytest.mark.parametrize("shape", [(100, 3, 4), (6, 40, 70)])  # feature form, Gram form
def test_cka_matches_reference(shape: tuple[int, int, int]) -> None:
    n, d1, d2 = shape
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, d1, generator=g)
    y = x[:, :1].repeat(1, d2) * 0.5 + torch.randn(n, d2, generator=g)
    got = linear_cka(x, y).item()
    assert got == pytest.approx(_reference_cka(x.double().numpy(), y.double().numpy()), rel=1e-9)
    assert 0.0 < got < 1.0


def test_cka_identity_and_invariances() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 6, dtype=torch.float64, generator=g)
    y = torch.randn(40, 4, dtype=torch.float64, generator=g) + x[:, :4]
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=g))
    base = linear_cka(x, y).item()
    assert linear_cka(x @ q, y).item() == pytest.approx(base, abs=1e-12)
    assert linear_cka(3.7 * x, 0.01 * y).item() == pytest.approx(base, abs=1e-12)
    assert linear_cka(x + 5.0, y - 2.0).item() == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, x @ q * 2.5).item() == pytest.approx(1.0, abs=1e-12)
    # Not invariant to a general invertible map: an anisotropic scaling changes the value.
    stretch = torch.diag(torch.tensor([10.0, 1, 1, 1, 1, 0.1], dtype=torch.float64))
    assert abs(linear_cka(x @ stretch, y).item() - base) > 1e-3


def test_cka_errors() -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(torch.randn(4, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match="at least 2 examples"):
        linear_cka(torch.randn(1, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="x is constant"):
        linear_cka(torch.full((5, 3), 0.3), torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        linear_cka(torch.randn(2, 3, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match="mode must be"):
        flatten_representation(torch.randn(2, 3), mode="channel")  # type: ignore[arg-type]


def test_feature_map_cka_modes() -> None:
    g = torch.Generator().manual_seed(7)
    a = torch.randn(6, 3, 4, 4, generator=g)
    b = torch.randn(6, 5, 2, 2, generator=g)
    assert feature_map_cka(a, b).item() == pytest.approx(
        _reference_cka(a.reshape(6, -1).double().numpy(), b.reshape(6, -1).double().numpy()),
        rel=1e-9,
    )
    b_up = F.interpolate(b, size=(4, 4), mode="bilinear", align_corners=False)
    loc = lambda x: x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double().numpy()  # noqa: E731
    assert feature_map_cka(a, b, mode="location").item() == pytest.approx(
        _reference_cka(loc(a), loc(b_up)), rel=1e-6
    )
    assert flatten_representation(a, "location").shape == (6 * 16, 3)
    pooled = a.mean(dim=(2, 3))
    assert flatten_representation(pooled, "location") is pooled
    m = cka_matrix([a, b], [a, b, pooled])
    assert m.shape == (2, 3)
    assert m[0, 0].item() == pytest.approx(1.0) and m[1, 1].item() == pytest.approx(1.0)
    assert m[0, 1].item() == pytest.approx(m[1, 0].item())
    with pytest.raises(ValueError, match="mode='location' needs both maps"):
        feature_map_cka(a, pooled, mode="location")
