"""Stratified, paired, cross-fitted control-variate estimator of pairwise SII (the default).

* Sizes 0, 1, n-1, n, and any size the budget covers, are enumerated: their contribution is
  exact.
* Every other size gets a fixed number of sampling *units* (Neyman-style allocation), split
  into R independent replicates. With ``paired=True`` (default) a unit is a uniform coalition T
  of size t <= n/2 together with its complement N∖T. Because h_{n-t}(2-k) = h_t(k), the unit
  enters the estimator through the symmetrised value w(T) = v(T) + v(N∖T), in which every
  odd-order Möbius term of degree 3 becomes quadratic in T.
* Each unit updates every pair through one matrix product (:mod:`.sii_kernel`), applied to the
  residual of a surrogate fitted on the other replicates (:mod:`.control_variate`), plus the
  surrogate's own closed-form SII. With pairing, the (tied) quadratic surrogate absorbs all
  pairwise *and* three-way effects.
* The replicate-to-replicate spread gives the standard error.

``control_variate`` picks the surrogate: ``"quadratic"``, ``"linear"``, ``"size"`` (per-size
means) or ``"none"`` (SHAP-IQ's Horvitz-Thompson estimator with stratified sizes). ``"auto"``
(default) takes the quadratic surrogate up to :data:`QUADRATIC_MAX_PLAYERS` players, where its
n(n+1)/2 coefficients stay cheap to fit, and the linear one above. docs/estimators.md compares
the options.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_interactions.estimators.coalitions import BLOCK_ROWS, StratifiedDesign
from captum_interactions.estimators.control_variate import ReplicateRegression
from captum_interactions.estimators.estimate import PairEstimate
from captum_interactions.estimators.main_effects import MainEffectSums
from captum_interactions.estimators.sii_kernel import accumulate_pair_sums
from captum_interactions.estimators.size_plan import (
    inverse_binomials,
    plan_sizes,
    sii_size_weights,
    split_over_replicates,
)
from captum_interactions.modes import ControlVariate, Surrogate
from captum_interactions.perturbation.game import ModelGame
from captum_interactions.validation import check_allocation

QUADRATIC_MAX_PLAYERS = 32
N_REPLICATES = 16


def resolve_control_variate(mode: ControlVariate, n_players: int) -> Surrogate:
    """The surrogate ``mode`` stands for: ``"auto"`` is quadratic up to
    :data:`QUADRATIC_MAX_PLAYERS` players, linear above."""
    if mode != "auto":
        return mode
    return "quadratic" if n_players <= QUADRATIC_MAX_PLAYERS else "linear"


def estimate_sii(
    game: ModelGame,
    budget: int,
    *,
    seed: int,
    control_variate: ControlVariate = "auto",
    paired: bool = True,
    n_replicates: int = N_REPLICATES,
) -> PairEstimate:
    """SII of every pair with at most ``budget`` coalitions per example.

    Args:
        game: the model game.
        budget: coalitions per example; at least 3F (:func:`.size_plan.plan_sizes` says
            why).
        seed: seed of the sampled coalitions.
        control_variate: the surrogate subtracted before sampling.
        paired: sample each coalition together with its complement.
        n_replicates: independent replicates (cross-fitting and standard errors).
    """
    n, batch, device = game.n_players, game.n_examples, game.device
    mode = resolve_control_variate(control_variate, n)
    plan = plan_sizes(n, budget, paired=paired)
    check_allocation(
        f"SII sampling of B = {batch} example(s) x F = {n} players with {plan.n_rows} "
        f"coalitions ({mode} control variate)",
        working_bytes(n, batch, int(plan.counts.sum()), mode, n_replicates),
        "Lower n_samples, explain fewer examples per call, or use fewer players "
        "(feature_mask) or control_variate='linear'.")
    design = StratifiedDesign(plan, split_over_replicates(plan.counts, n_replicates), seed,
                              device)
    h = sii_size_weights(n).to(device)
    main = MainEffectSums(n, batch, n_replicates, device)
    with game.budget(plan.n_rows, desc="SII coalitions"):
        exact = _enumerated_part(game, design, h, main)
        if design.n_units == 0:
            return PairEstimate.exact(exact, main.finish()[0], main.empty)
        # Rows of each size k (a paired unit of size t gives one row of size t and one of
        # n - t), for the main effects' per-size means.
        rows_k = torch.zeros(n + 1, dtype=torch.float64, device=device)
        sampled, counts = plan.sampled.to(device), plan.counts.to(device, torch.float64)
        rows_k.index_add_(0, sampled, counts)
        if paired:
            rows_k.index_add_(0, n - sampled, counts)
        row_scale_k = n_replicates / rows_k.clamp_min(1.0)

        # Pass 1: evaluate the units, keep their (symmetrised) values, stream regression
        # statistics.
        regression = ReplicateRegression(n_replicates, n, batch, device, mode, tied=paired)
        unit_values = torch.empty(design.n_units, batch, dtype=torch.float64, device=device)
        rows_per_unit = design.rows_per_unit
        for chunk in game.chunks(design.n_units, design.coalitions, rows_per_unit=rows_per_unit):
            start, stop = chunk.start, chunk.stop
            values = chunk.values.view(stop - start, rows_per_unit, batch).sum(1)
            unit_values[start:stop] = values
            regression.add(design.unit_replicate[start:stop], design.unit_size[start:stop],
                           chunk.present[::rows_per_unit], values)
            row_reps = design.unit_replicate[start:stop].repeat_interleave(rows_per_unit)
            main.add_sampled(chunk.present, chunk.values, row_reps,
                             row_scale_k[chunk.present.sum(1)])

    # Pass 2: residuals against the leave-one-replicate-out fits, one replicate at a time.
    intercept, slopes = regression.fit()
    rows_of_size = torch.zeros(n + 1, dtype=torch.float64, device=device)
    rows_of_size[plan.sampled.to(device)] = plan.rows_of_size().to(device, torch.float64)
    # Each sampled size has the same surrogate SII; a unit of size t stands for
    # units/rows of that size's expectation (1, or 1/2 for a paired middle size n/2).
    share = float((plan.counts.double() / plan.rows_of_size().double()).sum())
    surrogate_sii = regression.sii_per_size(slopes)
    if surrogate_sii is not None:
        surrogate_sii = surrogate_sii * share
    row_scale = n_replicates / rows_of_size.clamp_min(1.0)

    replicate_sums = _ReplicateSums(exact, n_replicates, surrogate_sii)
    for start in range(0, design.n_units, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, design.n_units)
        first = design.units(start, stop)
        reps = design.unit_replicate[start:stop]
        sizes = design.unit_size[start:stop]
        residual = unit_values[start:stop] - regression.fitted(
            intercept, slopes, reps, sizes, first
        )
        uniq, lengths = torch.unique_consecutive(reps, return_counts=True)
        offset = 0
        for rep, length in zip(uniq.tolist(), lengths.tolist(), strict=False):
            part = slice(offset, offset + length)
            accumulate_pair_sums(
                replicate_sums.slot(rep), first[part], residual[part],
                row_scale[sizes[part]], h, sizes[part],
            )
            offset += length
    mean, stderr = replicate_sums.finish()
    main_mean, main_stderr = main.finish()
    return PairEstimate(exact + mean, stderr, main_mean, main_stderr, main.empty)


def working_bytes(n: int, batch: int, n_units: int, mode: Surrogate, n_replicates: int) -> float:
    """Estimated peak of the estimator's own tensors (bytes): the (B, F, F) accumulators, the
    per-replicate surrogate SII, the per-unit values and the regression statistics."""
    pair_state = 8.0 * batch * n * n
    features = {"quadratic": n * (n - 1) // 2 + n, "linear": n}.get(mode, 0)
    regression = 8.0 * n_replicates * (features * features + (n + 1) * (features + batch)
                                        + batch * features)
    surrogate = 4 * n_replicates * pair_state if mode == "quadratic" else 0.0
    return 4 * pair_state + surrogate + regression + n_units * (8.0 * batch + 16)


def _enumerated_part(game: ModelGame, design: StratifiedDesign, h: Tensor,
                     main: MainEffectSums) -> Tensor:
    """Exact per-size means of v over the enumerated sizes, for every pair: (B, n, n); the
    same rows' exact part of the main effects goes to ``main``."""
    n, device = design.n, game.device
    exact = torch.zeros(game.n_examples, n, n, dtype=torch.float64, device=device)
    inv_comb = inverse_binomials(n, device)
    rows_all = design.enumerated_rows()
    for chunk in game.chunks(rows_all.shape[0], lambda a, b: rows_all[a:b]):
        sizes = chunk.present.sum(1)
        accumulate_pair_sums(exact, chunk.present, chunk.values, inv_comb[sizes], h, sizes)
        main.add_exact(chunk.present, chunk.values, inv_comb[sizes])
    return exact


class _ReplicateSums:
    """Running sum and sum of squares of per-replicate estimates, with one open accumulator.

    Units arrive grouped by replicate, so only the current replicate's (B, F, F) matrix is held.
    Replicate r's estimate is its accumulated Horvitz-Thompson sum plus its surrogate's SII.
    """

    def __init__(self, exact: Tensor, n_replicates: int, surrogate_sii: Tensor | None) -> None:
        self.n_replicates = n_replicates
        self.surrogate = surrogate_sii
        self.total = torch.zeros_like(exact)
        self.total_sq = torch.zeros_like(self.total)
        self.current = torch.zeros_like(self.total)
        self.current_rep: int | None = None
        self.closed = torch.zeros(n_replicates, dtype=torch.bool)

    def slot(self, rep: int) -> Tensor:
        if rep != self.current_rep:
            self._close()
            self.current_rep = rep
        return self.current

    def _close(self) -> None:
        if self.current_rep is None:
            return
        estimate = self.current
        if self.surrogate is not None:
            estimate = estimate + self.surrogate[self.current_rep]
        self.total += estimate
        self.total_sq += estimate * estimate
        self.closed[self.current_rep] = True
        self.current.zero_()
        self.current_rep = None

    def finish(self) -> tuple[Tensor, Tensor]:
        self._close()
        if self.surrogate is not None:
            for rep in torch.nonzero(~self.closed).flatten().tolist():  # replicates sans units
                self.total += self.surrogate[rep]
                self.total_sq += self.surrogate[rep] ** 2
        r = self.n_replicates
        mean = self.total / r
        var = (self.total_sq / r - mean * mean).clamp_min(0.0) * (r / (r - 1))
        return mean, (var / r).sqrt()
