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
        main: (B, F) Shapley values of the players from the same rows, if computed.
        main_stderr: (B, F) their standard errors.
        empty: (B,) v(∅), if evaluated.
    """

    values: Tensor
    stderr: Tensor
    main: Tensor | None = None
    main_stderr: Tensor | None = None
    empty: Tensor | None = None

    @classmethod
    def exact(cls, values: Tensor, main: Tensor | None = None,
              empty: Tensor | None = None) -> PairEstimate:
        """Values without sampling error."""
        return cls(values, torch.zeros_like(values), main,
                   None if main is None else torch.zeros_like(main), empty)
