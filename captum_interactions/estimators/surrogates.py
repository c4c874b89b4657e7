"""One interface over the fitted control variates of the SII sampler.

The sampler needs two things from a fitted surrogate: its value g_r(T) on replicate r's units
(to form residuals) and its SII on the sampled sizes, for each replicate r (added back to that
replicate's estimate). :class:`FittedSurrogate` is that interface; :func:`fit_surrogate` fits
either the streamed regressions of :mod:`.control_variate` or the screened surrogate of
:mod:`.screened`, which makes its own passes over the units.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from captum_interactions.estimators.control_variate import ReplicateRegression
from captum_interactions.estimators.screened import Blocks, ScreenedFit, fit_screened
from captum_interactions.modes import Surrogate


class FittedSurrogate(Protocol):
    def fitted(self, replicate: Tensor, size: Tensor, present: Tensor) -> Tensor:
        """g_r(T) of rows grouped by replicate: (rows, B)."""
        ...

    def replicate_sii(self, rep: int) -> Tensor | None:
        """SII of g_rep over the sampled sizes: (B, n, n), or None where it is 0."""
        ...


@dataclass
class RegressionFit:
    """A :class:`ReplicateRegression` after its leave-one-replicate-out fit."""

    regression: ReplicateRegression
    intercept: Tensor
    slopes: Tensor
    sii: Tensor | None  # (R, B, n, n), already scaled by the share of sampled sizes

    def fitted(self, replicate: Tensor, size: Tensor, present: Tensor) -> Tensor:
        return self.regression.fitted(self.intercept, self.slopes, replicate, size, present)

    def replicate_sii(self, rep: int) -> Tensor | None:
        return None if self.sii is None else self.sii[rep]


@dataclass
class PerExample:
    """One :class:`.screened.ScreenedFit` per example, used as one surrogate of the batch."""

    fits: list[ScreenedFit]

    def fitted(self, replicate: Tensor, size: Tensor, present: Tensor) -> Tensor:
        return torch.cat([fit.fitted(replicate, size, present) for fit in self.fits], dim=1)

    def replicate_sii(self, rep: int) -> Tensor | None:
        parts = [fit.replicate_sii(rep) for fit in self.fits]
        if all(part is None for part in parts):
            return None
        n = self.fits[0].n_players
        return torch.cat([torch.zeros(1, n, n, dtype=torch.float64, device=fit.levels.device)
                          if part is None else part for fit, part in zip(self.fits, parts,
                                                                          strict=True)])


def _column(blocks: Blocks, b: int) -> Blocks:
    """The blocks with the values of example b only."""
    def column() -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        for reps, sizes, first, w in blocks():
            yield reps, sizes, first, w[:, b : b + 1]
    return column


def fit_surrogate(regression: ReplicateRegression, mode: Surrogate, blocks: Blocks, *,
                  n_units: int, size_weight: Tensor) -> FittedSurrogate:
    """Fit the surrogate ``mode``.

    Args:
        regression: the streamed statistics (for every mode but ``"sparse"``).
        mode: the surrogate.
        blocks: the sampled units grouped by replicate (read only by ``"sparse"``).
        n_units: sampled units in all.
        size_weight: (n + 1,) ω_t, what a unit of sampled size t stands for (1, or 1/2 for a
            paired middle size n/2; 0 where not sampled).
    """
    if mode == "sparse":
        # Each example gets its own terms (screening is per example), so that an example's
        # estimate does not depend on the other examples of the batch.
        fits = [fit_screened(_column(blocks, b), n_players=regression.n_players,
                             n_replicates=regression.n_replicates, batch=1, n_units=n_units,
                             size_weight=size_weight, device=regression.count.device)
                for b in range(regression.batch_size)]
        return PerExample(fits)
    intercept, slopes = regression.fit()
    sii = regression.sii_per_size(slopes)
    # Pair terms have the same SII on every interior size.
    share = float(size_weight.sum())
    return RegressionFit(regression, intercept, slopes, None if sii is None else sii * share)
