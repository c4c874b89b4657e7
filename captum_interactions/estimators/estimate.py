"""What an SII estimator returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PairEstimate:
    """Pair values of every example and their standard errors.

    Attributes:
        values: (B, F, F) float64; the diagonal and unrequested pairs are not yet masked.
        stderr: (B, F, F) float64 (zero for exact values).
    """

    values: Tensor
    stderr: Tensor

    @classmethod
    def exact(cls, values: Tensor) -> PairEstimate:
        """Values without sampling error."""
        return cls(values, torch.zeros_like(values))
