"""IE-KD's inheritance and exploration losses on factors.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181). With ``n(x) = x / ‖x‖₂`` over a sample's flattened factor and
``D`` its number of elements::

    d(a, b) = (1/D) Σ_i | n(a)_i − n(b)_i |                (per sample)
    L_inh = mean_b d(F_inh, F_T)                           (similarity: inherit)
    L_exp = − mean_b d(F_exp, F_T)                         (dis-similarity: explore)
    L = w · (λ_inh · L_inh + λ_exp · L_exp)

The two weightings in use: the paper's ``λ_inh = λ_exp = 50`` (``weighting='paper'``) and
the authors' released code, which weights both by 1 (``weighting='code'``). The code's loss is
this mean over elements (its ``‖·‖₁ / numel``, the batch included, is the same mean since every
sample has ``D`` elements).
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from kd_det.registry import MODELS

__all__ = ["WEIGHTINGS", "InheritExploreLoss", "factor_distance"]

#: ``weighting`` -> ``(λ_inh, λ_exp)``
WEIGHTINGS: dict[str, tuple[float, float]] = {"paper": (50.0, 50.0), "code": (1.0, 1.0)}


def factor_distance(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """``d(a, b)`` per sample, shape ``[B]``: the mean absolute difference of the L2-normalised
    flattened samples, ``(1/D) Σ_i |a_i/‖a‖₂ − b_i/‖b‖₂|`` (a zero sample counts as zero)."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"factor_distance: expected two tensors [B, …] of one shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    a = F.normalize(a.float().flatten(1), p=2.0, dim=1, eps=eps)
    b = F.normalize(b.float().flatten(1), p=2.0, dim=1, eps=eps)
    return (a - b).abs().mean(dim=1)


def _weight(name: str, value: object) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(f"InheritExploreLoss: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


@MODELS.register_module()
class InheritExploreLoss(nn.Module):
    """``L = w · (λ_inh · L_inh + λ_exp · L_exp)`` on stacked (inheritance, exploration) factors.

    ``forward(student, teacher)`` takes ``[B, 2, …]`` tensors, as
    :class:`~kd_det.inherit_explore.InheritExploreConnector` returns them: ``student[:, 0]`` is
    ``F_inh``, ``student[:, 1]`` is ``F_exp``, ``teacher[:, 0]`` and ``teacher[:, 1]`` the
    teacher factor ``F_T`` each is compared with. The teacher side is detached; the result is a
    float32 scalar. See the module docstring for ``L_inh`` and ``L_exp``.

    Args:
        weighting: ``'paper'`` (``λ_inh = λ_exp = 50``) or ``'code'`` (both 1).
        inh_weight: ``λ_inh``, overriding the weighting's (``0`` drops the inheritance loss).
        exp_weight: ``λ_exp``, overriding the weighting's (``0`` drops the exploration loss:
            inheritance only, the exploration part then learns from the task loss alone).
        loss_weight: ``w``, a common factor.
    """

    input_kind: ClassVar[str] = "features"

    def __init__(
        self,
        weighting: str = "paper",
        inh_weight: float | None = None,
        exp_weight: float | None = None,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(
                f"InheritExploreLoss: weighting must be one of {list(WEIGHTINGS)} (λ_inh, λ_exp "
                f"= {WEIGHTINGS}), got {weighting!r}"
            )
        self.weighting = weighting
        default_inh, default_exp = WEIGHTINGS[weighting]
        self.inh_weight = _weight("inh_weight", default_inh if inh_weight is None else inh_weight)
        self.exp_weight = _weight("exp_weight", default_exp if exp_weight is None else exp_weight)
        self.loss_weight = _weight("loss_weight", loss_weight)

    def components(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        """The unweighted ``(L_inh, L_exp)`` of stacked ``[B, 2, …]`` factors."""
        if student.shape != teacher.shape or student.ndim < 3 or student.shape[1] != 2:
            raise ValueError(
                "InheritExploreLoss compares [B, 2, …] stacks of (inheritance, exploration) "
                "factors with the teacher factor expanded to the same shape, as "
                f"InheritExploreConnector returns them; got student {tuple(student.shape)} and "
                f"teacher {tuple(teacher.shape)}"
            )
        teacher = teacher.detach()
        l_inh = factor_distance(student[:, 0], teacher[:, 0]).mean()
        l_exp = -factor_distance(student[:, 1], teacher[:, 1]).mean()
        return l_inh, l_exp

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        l_inh, l_exp = self.components(student, teacher)
        return self.loss_weight * (self.inh_weight * l_inh + self.exp_weight * l_exp)

    def extra_repr(self) -> str:
        return (
            f"weighting={self.weighting!r}, inh_weight={self.inh_weight}, "
            f"exp_weight={self.exp_weight}, loss_weight={self.loss_weight}"
        )
