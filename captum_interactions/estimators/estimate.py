"""What an SII estimator returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BudgetReport:
    """How an adaptive budget (``n_samples="auto"``) ended, per example.

    Attributes:
        rows: coalitions evaluated per example (the same rows serve every example).
        target_met: whether the stopping rule held for each example when the run stopped.
        max_stderr: each example's largest standard error over the requested pairs.
        separation: with ``stop_when="topk"``, each example's smallest gap between a top-k
            pair and another pair, in combined standard errors (None otherwise).
        checks: how many times the rule was checked (once per block).
    """

    rows: int
    target_met: list[bool]
    max_stderr: list[float]
    separation: list[float] | None
    checks: int


@dataclass(frozen=True)
class PairEstimate:
    """Pair values of every example and their standard errors.

    Attributes:
        values: (B, F, F) float64; the diagonal and unrequested pairs are not yet masked.
        stderr: (B, F, F) float64 (zero for exact values).
        main: (B, F) Shapley values of the players from the same rows, if computed.
        main_stderr: (B, F) their standard errors.
        empty: (B,) v(∅), if evaluated.
        budget: how an adaptive budget ended (None for a fixed budget).
    """

    values: Tensor
    stderr: Tensor
    main: Tensor | None = None
    main_stderr: Tensor | None = None
    empty: Tensor | None = None
    budget: BudgetReport | None = None

    @classmethod
    def exact(cls, values: Tensor, main: Tensor | None = None,
              empty: Tensor | None = None) -> PairEstimate:
        """Values without sampling error."""
        return cls(values, torch.zeros_like(values), main,
                   None if main is None else torch.zeros_like(main), empty)
