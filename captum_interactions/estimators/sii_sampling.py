"""Stratified, paired, cross-fitted control-variate estimator of pairwise SII (the default).

* Sizes 0, 1, n-1, n, and any size the budget covers, are enumerated: their contribution is
  exact.
* Every other size gets a fixed number of sampling *units* (Neyman-style allocation), split
  into R independent replicates. With ``paired=True`` (default) a unit is a uniform coalition T
  of size t <= n/2 together with its complement N∖T. Because h_{n-t}(2-k) = h_t(k), the unit
  enters the estimator through the symmetrised value w(T) = v(T) + v(N∖T), in which every
  odd-order Möbius term of degree 3 becomes quadratic in T.
* Each unit updates every pair through one matrix product (:mod:`.sii_kernel`), applied to the
  residual of a surrogate fitted on the other replicates, plus the surrogate's own SII in
  closed form. With pairing, pair terms absorb all pairwise *and* three-way effects.
* The replicate-to-replicate spread gives the standard error.

``control_variate`` picks the surrogate: ``"sparse"`` (screened pair terms and higher-order
terms of the leading players, :mod:`.screened`), ``"quadratic"`` (every pair,
:mod:`.control_variate`), ``"linear"``, ``"size"`` (per-size means) or ``"none"`` (SHAP-IQ's
Horvitz-Thompson estimator with stratified sizes). ``"auto"`` (default) is ``"sparse"`` with
pairing; without it, quadratic up to :data:`QUADRATIC_MAX_PLAYERS` players and linear above.
``shrinkage=True`` shrinks the sampled correction towards the surrogate (:class:`_ReplicateSums`).
docs/estimators.md compares the options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from captum_interactions.estimators.coalitions import BLOCK_ROWS, StratifiedDesign
from captum_interactions.estimators.control_variate import ReplicateRegression
from captum_interactions.estimators.estimate import PairEstimate
from captum_interactions.estimators.main_effects import MainEffectSums
from captum_interactions.estimators.screened import N_FOLDS, kept_terms
from captum_interactions.estimators.sii_kernel import accumulate_pair_sums
from captum_interactions.estimators.size_plan import (
    inverse_binomials,
    plan_sizes,
    sii_size_weights,
    split_over_replicates,
)
from captum_interactions.estimators.surrogates import fit_surrogate
from captum_interactions.modes import ControlVariate, Surrogate
from captum_interactions.perturbation.game import ModelGame
from captum_interactions.validation import check_allocation

QUADRATIC_MAX_PLAYERS = 32
N_REPLICATES = 16


def resolve_control_variate(mode: ControlVariate, n_players: int, *,
                            paired: bool = True) -> Surrogate:
    """The surrogate ``mode`` stands for: ``"auto"`` is the screened (sparse) surrogate with
    complementary pairs; without them, quadratic up to :data:`QUADRATIC_MAX_PLAYERS` players
    and linear above."""
    if mode == "sparse" and not paired:
        raise ValueError(
            "control_variate='sparse' needs paired=True: its tied pair features describe "
            "v(T) + v(N∖T). Use paired=True, or control_variate='quadratic' or 'linear'.")
    if mode != "auto":
        return mode
    if paired:
        return "sparse"
    return "quadratic" if n_players <= QUADRATIC_MAX_PLAYERS else "linear"


def estimate_sii(
    game: ModelGame,
    budget: int,
    *,
    seed: int,
    control_variate: ControlVariate = "auto",
    paired: bool = True,
    shrinkage: bool = False,
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
        shrinkage: shrink the sampled correction towards the surrogate where it is mostly
            noise (:class:`_ReplicateSums`); False keeps the estimator unbiased.
        n_replicates: independent replicates (cross-fitting and standard errors).
    """
    n, batch, device = game.n_players, game.n_examples, game.device
    mode = resolve_control_variate(control_variate, n, paired=paired)
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
        streamed = mode if mode != "sparse" else "none"  # the sparse fit makes its own passes
        regression = ReplicateRegression(n_replicates, n, batch, device, streamed, tied=paired)
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
    # A unit of size t stands for units/rows of that size's expectation (1, or 1/2 for a
    # paired middle size n/2).
    size_weight = torch.zeros(n + 1, dtype=torch.float64, device=device)
    size_weight[plan.sampled.to(device)] = (
        plan.counts.double() / plan.rows_of_size().double()).to(device)
    surrogate = fit_surrogate(
        regression, mode, lambda: _design_blocks(design, unit_values), n_units=design.n_units,
        size_weight=size_weight)
    rows_of_size = torch.zeros(n + 1, dtype=torch.float64, device=device)
    rows_of_size[plan.sampled.to(device)] = plan.rows_of_size().to(device, torch.float64)
    row_scale = n_replicates / rows_of_size.clamp_min(1.0)

    replicate_sums = _ReplicateSums(exact, n_replicates, surrogate.replicate_sii,
                                    shrinkage=shrinkage)
    for start in range(0, design.n_units, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, design.n_units)
        first = design.units(start, stop)
        reps = design.unit_replicate[start:stop]
        sizes = design.unit_size[start:stop]
        residual = unit_values[start:stop] - surrogate.fitted(reps, sizes, first)
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
    if mode == "sparse":
        k = sum(kept_terms(n, n_units - n_units // max(n_replicates, 1)))
        folds = min(N_FOLDS, n_replicates)
        fits = (4.0 * (n_replicates + folds) * k * k  # float32 Gram matrices
                + 16.0 * (n_replicates // folds + 1) * k * k  # one fold's float64 systems
                + 8.0 * (n_replicates + folds) * k * (batch + 1))
        return (4 + folds) * pair_state + fits + n_units * (8.0 * batch + 16)
    features = {"quadratic": n * (n - 1) // 2 + n, "linear": n}.get(mode, 0)
    regression = 8.0 * n_replicates * (features * features + (n + 1) * (features + batch)
                                        + batch * features)
    surrogate = 4 * n_replicates * pair_state if mode == "quadratic" else 0.0
    return 4 * pair_state + surrogate + regression + n_units * (8.0 * batch + 16)


def _design_blocks(design: StratifiedDesign,
                   unit_values: Tensor) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """The sampled units of ``design`` in blocks (grouped by replicate, as the design lists
    them): (replicate, size, first coalition, paired value)."""
    for start in range(0, design.n_units, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, design.n_units)
        yield (design.unit_replicate[start:stop], design.unit_size[start:stop],
               design.units(start, stop), unit_values[start:stop])


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
    """Running sums over replicates of the two parts of each replicate's estimate, with one
    open accumulator: C_r, the Horvitz-Thompson sum of the residuals, and S_r, the
    surrogate's SII.

    Units arrive grouped by replicate, so only the current replicate's (B, F, F) matrix is held.
    Replicate r's estimate is S_r + C_r (or S_r + λ C_r with shrinkage, see :meth:`finish`).
    """

    def __init__(self, exact: Tensor, n_replicates: int,
                 surrogate_sii: Callable[[int], Tensor | None], *,
                 shrinkage: bool = False) -> None:
        self.n_replicates = n_replicates
        self.surrogate = surrogate_sii
        self.shrinkage = shrinkage
        # Σ C, Σ C², Σ S, Σ S², Σ S C over the replicates.
        self.sums = torch.zeros(5, *exact.shape, dtype=exact.dtype, device=exact.device)
        self.current = torch.zeros_like(exact)
        self.current_rep: int | None = None
        self.closed = torch.zeros(n_replicates, dtype=torch.bool)

    def slot(self, rep: int) -> Tensor:
        if rep != self.current_rep:
            self._close()
            self.current_rep = rep
        return self.current

    def _add(self, rep: int, correction: Tensor | None) -> None:
        sii = self.surrogate(rep)
        if correction is not None:
            self.sums[0] += correction
            self.sums[1] += correction * correction
        if sii is not None:
            self.sums[2] += sii
            self.sums[3] += sii * sii
            if correction is not None:
                self.sums[4] += sii * correction
        self.closed[rep] = True

    def _close(self) -> None:
        if self.current_rep is None:
            return
        self._add(self.current_rep, self.current)
        self.current.zero_()
        self.current_rep = None

    def finish(self) -> tuple[Tensor, Tensor]:
        """Mean and standard error over the replicates.

        With ``shrinkage``, the correction is shrunk towards the surrogate by one factor per
        example, λ = max(0, 1 - Σ var(C̄) / Σ C̄²) over the pairs (positive-part
        James-Stein): where the correction is mostly noise (small budgets, a good surrogate)
        λ is near 0, where it carries signal λ is near 1. The estimate S̄ + λ C̄ is then
        biased by (λ - 1) E[C̄]. The replicates cannot see that bias (their surrogates share
        most of their data), so the standard error adds (1 - λ)² C̄², an upper estimate of the
        squared bias on average (E[C̄²] = E[C̄]² + var(C̄)), to the replicate variance of
        S_r + λ C_r: conservative rather than honest."""
        self._close()
        for rep in torch.nonzero(~self.closed).flatten().tolist():  # replicates sans units
            self._add(rep, None)
        r = self.n_replicates
        mean_c, mean_s = self.sums[0] / r, self.sums[2] / r
        var_c = (self.sums[1] / r - mean_c**2) * (r / (r - 1))
        var_s = (self.sums[3] / r - mean_s**2) * (r / (r - 1))
        cov = (self.sums[4] / r - mean_s * mean_c) * (r / (r - 1))
        if not self.shrinkage:
            var = (var_s + var_c + 2 * cov).clamp_min(0.0)
            return mean_s + mean_c, (var / r).sqrt()
        n = mean_c.shape[-1]
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mean_c.device), 1)
        noise = (var_c.clamp_min(0.0) / r)[..., upper].sum(-1)
        signal = mean_c[..., upper].pow(2).sum(-1)
        lam = (1 - noise / signal.clamp_min(1e-300)).clamp(0.0, 1.0)
        lam = torch.where(signal > 0, lam, torch.ones_like(lam)).view(-1, 1, 1)
        var = (var_s + lam**2 * var_c + 2 * lam * cov).clamp_min(0.0) / r
        bias_sq = (1 - lam) ** 2 * mean_c**2
        return mean_s + lam * mean_c, (var + bias_sq).sqrt()
