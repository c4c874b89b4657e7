r"""Adaptive budgets for the SII sampler (``n_samples="auto"``): draw rows until the estimate
is as precise as asked.

**Design.** The run fixes one stratified design (:mod:`.sii_sampling`) and grows it:

* the *enumerated* sizes are those of the plan of the first block
  (:func:`.size_plan.plan_sizes` at ``initial_samples`` rows): the border sizes 0, 1, n-1, n and
  any size that budget covers. They are evaluated once and contribute exactly;
* the *sampled* units (a coalition T of a sampled size t, with ``paired`` its complement
  N∖T) form one infinite, prefix-stable sequence. Unit u's size follows the Sainte-Laguë
  (Webster) divisor order of the Neyman weights w_t of :func:`.size_plan.allocation_weights`:
  after one unit per size, the j-th unit of size t (j = 1, 2, ...) comes at "time"
  (j - 1/2) / w_t. Divisor methods are house-monotone: every prefix of the sequence is a
  Neyman allocation of its length, and a longer prefix never has fewer units of a size.
  The j-th unit of size t goes to replicate (j + o_t) mod R (o_t a fixed offset), so every
  prefix spreads each size over the R replicates within one unit. Unit u's coalition is a
  uniform subset of its size, drawn from a counter-based hash of (seed, u, player): any unit
  can be rebuilt on its own, in any order, on any device;
* rows are evaluated in blocks along a doubling schedule: checks at N_0 = ``initial_samples``
  rows, then 2 N_0, 4 N_0, ..., and last at ``max_samples``. A check reruns the estimator of
  :mod:`.sii_sampling` (cross-fitted surrogate refitted on *all* units so far, replicate
  spread as standard error) on the stored values: no row is ever evaluated twice, and the
  checks' own cost is at most about twice that of the last one.

**What the estimate is.** After stopping at N_k rows, the values, standard errors and main
effects are exactly those of the stratified, cross-fitted estimator on the first U_k =
⌊(N_k - enumerated rows) / rows per unit⌋ units of the sequence: a function of (seed, options,
N_k) only. It is identical to the run with ``max_samples=N_k`` and an unreachable target, and
does not depend on ``perturbations_per_eval``. It is *not* the fixed-budget
``n_samples=N_k`` estimate: that plan may enumerate more sizes (those N_k covers) and draws
other coalitions; both are unbiased for the same SII.

**Stopping rules** (checked once per block, for every example; all examples share the rows
and stop together, when every example meets the rule):

* ``stop_when="stderr"``: max over the requested pairs of stderr_b(i, j) <= τ_b, with τ_b =
  ``target_stderr`` (``stderr_scale="absolute"``) or ``target_stderr`` · max |SII_b(i, j)|
  over the requested pairs (``"relative"``);
* ``stop_when="topk"``: the set of the ``top_k`` requested pairs of largest |SII| is the same
  as at the previous check, and every pair a in it beats every other pair b by
  |SII_a| - |SII_b| >= z · sqrt(se_a² + se_b²), z = :data:`TOPK_Z`.

**Optional stopping.** The data decide when to stop, so the reported standard errors at the
stopping point are slightly optimistic (a run that stops early does so partly because its
replicates happened to agree), and the values carry a small selection bias of the same
order. The effect shrinks as the first block grows; with small first blocks and the quadratic
surrogate (whose replicate spread already understates the error below ~4 sampled units per
coefficient, docs/estimators.md), prefer a larger ``initial_samples`` or a tighter target.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_interactions.estimators.coalitions import BLOCK_ROWS, subsets_of_size
from captum_interactions.estimators.control_variate import ReplicateRegression
from captum_interactions.estimators.estimate import BudgetReport, PairEstimate
from captum_interactions.estimators.main_effects import MainEffectSums
from captum_interactions.estimators.sii_kernel import accumulate_pair_sums
from captum_interactions.estimators.sii_sampling import (
    N_REPLICATES,
    _ReplicateSums,
    resolve_control_variate,
    working_bytes,
)
from captum_interactions.estimators.size_plan import (
    SizePlan,
    allocation_weights,
    inverse_binomials,
    min_sampling_budget,
    plan_sizes,
    sii_size_weights,
)
from captum_interactions.estimators.surrogates import fit_surrogate
from captum_interactions.modes import ControlVariate, Method, StderrScale, StopRule, Surrogate
from captum_interactions.perturbation.game import ModelGame
from captum_interactions.validation import (
    check_allocation,
    check_choice,
    check_float,
    check_positive_int,
    check_samples,
)

#: Rows per example an adaptive run may use when ``max_samples`` is not given.
DEFAULT_MAX_SAMPLES = 2**16
#: Rows of the first block when ``initial_samples`` is not given (at least 3F).
DEFAULT_INITIAL_SAMPLES = 256
#: Standard errors by which every top-k pair must beat every other pair (``stop_when="topk"``).
TOPK_Z = 2.0

# splitmix64 constants as signed int64 (torch integer arithmetic wraps modulo 2^64).
_GOLDEN = 0x9E3779B97F4A7C15 - 2**64
_MIX1 = 0xBF58476D1CE4E5B9 - 2**64
_MIX2 = 0x94D049BB133111EB - 2**64
_PLAYER = 0xD1B54A32D192ED03 - 2**64


@dataclass(frozen=True)
class AdaptiveOptions:
    """Validated options of an adaptive budget (see :func:`check_adaptive_options`).

    Attributes:
        target_stderr: the target (``stop_when="stderr"``), else None.
        relative: the target is a fraction of each example's largest |SII|.
        max_samples: the cap on rows per example.
        stop_when: ``"stderr"`` or ``"topk"``.
        top_k: the ranking size (``stop_when="topk"``), else None.
        initial_samples: rows of the first block, or None for the default.
    """

    target_stderr: float | None
    relative: bool
    max_samples: int
    stop_when: StopRule
    top_k: int | None
    initial_samples: int | None


def check_adaptive_options(
    n_samples: Any,
    *,
    target_stderr: Any,
    stderr_scale: Any,
    max_samples: Any,
    stop_when: Any,
    top_k: Any,
    initial_samples: Any,
    method: Method,
) -> tuple[int | None, AdaptiveOptions | None]:
    """Validate the budget arguments of SII together, before anything runs.

    Returns:
        (n_samples, None) for a fixed budget, (None, options) for ``n_samples="auto"``.
    """
    stop_when = check_choice("stop_when", stop_when, StopRule)
    stderr_scale = check_choice("stderr_scale", stderr_scale, StderrScale)
    adaptive_only = {"target_stderr": target_stderr, "max_samples": max_samples,
                     "top_k": top_k, "initial_samples": initial_samples}
    if isinstance(n_samples, str):
        if n_samples != "auto":
            raise ValueError(
                f"n_samples must be a positive int or 'auto' (adaptive budget), got "
                f"{n_samples!r}.")
    else:
        fixed = check_samples("n_samples", n_samples)
        given = [f"{name}={value!r}" for name, value in adaptive_only.items() if value is not None]
        given += [f"{name}={value!r}" for name, value, default in (
            ("stop_when", stop_when, "stderr"), ("stderr_scale", stderr_scale, "absolute"))
            if value != default]
        if given:
            raise ValueError(
                f"{given[0]} only applies to an adaptive budget, but n_samples={fixed} is a "
                "fixed one: pass n_samples='auto' with it, or drop "
                f"{given[0].split('=')[0]}.")
        return fixed, None
    if method != "sampling":
        raise ValueError(
            f"n_samples='auto' needs method='sampling', got method={method!r} (exact mode "
            "always evaluates all 2^F coalitions): drop n_samples or use method='sampling'.")
    if stop_when == "stderr":
        if target_stderr is None:
            raise ValueError(
                "n_samples='auto' with stop_when='stderr' needs target_stderr: e.g. "
                "target_stderr=0.01 (absolute) or target_stderr=0.05 with "
                "stderr_scale='relative' (a fraction of the largest |SII|); or pass "
                "stop_when='topk' with top_k=k.")
        target = check_float("target_stderr", target_stderr, minimum=0.0, strict_minimum=True)
        if top_k is not None:
            raise ValueError(
                f"top_k={top_k!r} is only used with stop_when='topk': pass stop_when='topk' "
                "or drop top_k.")
    else:
        if top_k is None:
            raise ValueError("stop_when='topk' needs top_k=k, the size of the ranking that "
                             "must be stable, e.g. top_k=5.")
        top_k = check_positive_int("top_k", top_k)
        if target_stderr is not None:
            raise ValueError(
                f"target_stderr={target_stderr!r} does not apply with stop_when='topk' (it "
                "stops on a stable top-k ranking): drop target_stderr or use "
                "stop_when='stderr'.")
        if stderr_scale != "absolute":
            raise ValueError(
                f"stderr_scale={stderr_scale!r} does not apply with stop_when='topk': drop "
                "stderr_scale or use stop_when='stderr'.")
        target = None
    cap = DEFAULT_MAX_SAMPLES if max_samples is None else check_samples("max_samples",
                                                                           max_samples)
    first = None
    if initial_samples is not None:
        first = check_samples("initial_samples", initial_samples)
        if first > cap:
            raise ValueError(
                f"initial_samples={first} exceeds max_samples={cap}: the first block cannot be "
                "larger than the cap. Lower initial_samples or raise max_samples.")
    return None, AdaptiveOptions(target, stderr_scale == "relative", cap, stop_when, top_k,
                                 first)


def check_adaptive_game(options: AdaptiveOptions, n_players: int, n_pairs: int) -> int:
    """The checks that need the game's size (before any forward call); returns the rows of
    the first block."""
    low = min_sampling_budget(n_players)
    if options.max_samples < low:
        raise ValueError(
            f"max_samples={options.max_samples} is below the 3F = {low} coalitions the sampler "
            f"needs for F = {n_players} players: raise max_samples to at least {low}.")
    if options.initial_samples is not None and options.initial_samples < low:
        raise ValueError(
            f"initial_samples={options.initial_samples} is below the 3F = {low} coalitions the "
            f"sampler needs for F = {n_players} players: raise it to at least {low} (or drop "
            "it for the default).")
    if options.top_k is not None and options.top_k >= n_pairs:
        raise ValueError(
            f"top_k={options.top_k} must be below the {n_pairs} requested pair(s): a ranking "
            "of every pair is always 'stable'. Lower top_k, request more pairs, or use "
            "stop_when='stderr'.")
    if options.initial_samples is not None:
        return options.initial_samples
    return min(max(low, DEFAULT_INITIAL_SAMPLES), options.max_samples)


def checkpoints(first: int, cap: int) -> list[int]:
    """Rows per example at each check: first, 2 first, 4 first, ..., and cap last."""
    out = [first]
    while out[-1] < cap:
        out.append(min(2 * out[-1], cap))
    return out


def unit_schedule(weights: Tensor, n_units: int) -> Tensor:
    """Which size (an index into ``weights``) each of the first ``n_units`` units has: one of
    every size first, then the Sainte-Laguë order of the weights (the j-th extra unit of size
    s at time (j - 1/2) / w_s, ties by size). Prefix-stable: the first m entries do not depend
    on ``n_units`` >= m."""
    n_sizes = weights.shape[0]
    first = torch.arange(min(n_units, n_sizes), dtype=torch.long)
    rest = n_units - n_sizes
    if rest <= 0:
        return first
    w = weights.to(torch.float64).cpu()
    # Every event with time <= horizon is generated; there are at least `rest` of them.
    horizon = (rest + n_sizes + 1) / float(w.sum())
    counts = torch.floor(horizon * w + 0.5).long()
    size = torch.repeat_interleave(torch.arange(n_sizes), counts)
    starts = torch.cumsum(counts, 0) - counts
    j = torch.arange(size.shape[0]) - starts[size] + 1
    times = (j.to(torch.float64) - 0.5) / w[size]
    order = torch.argsort(times, stable=True)  # events are listed size-major: ties by size
    return torch.cat([first, size[order[:rest]]])


def _shift(x: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 values."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: Tensor) -> Tensor:
    """splitmix64's finaliser (a bijection of 64-bit words with good avalanche)."""
    x = (x ^ _shift(x, 30)) * _MIX1
    x = (x ^ _shift(x, 27)) * _MIX2
    return x ^ _shift(x, 31)


class GrowingDesign:
    """The prefix-stable unit sequence of an adaptive run (see the module docstring).

    Args:
        plan: the first block's plan: its enumerated and sampled sizes.
        seed: seed of the coalitions.
        device: where masks are built.
        max_units: length of the sequence (units at the cap).
        n_replicates: R.
    """

    def __init__(self, plan: SizePlan, seed: int, device: torch.device, max_units: int,
                 n_replicates: int) -> None:
        n = plan.n_players
        self.n = n
        self.paired = plan.paired
        self.rows_per_unit = plan.rows_per_unit
        self.device = device
        self.enumerated = plan.enumerated
        self.sampled = plan.sampled.to(device)
        self.n_sizes = int(plan.sampled.shape[0])
        index = unit_schedule(allocation_weights(n)[plan.sampled], max_units)
        # Rank of each unit among the units of its size, for the replicate rotation.
        order = torch.argsort(index, stable=True)
        counts = torch.bincount(index, minlength=self.n_sizes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(index)
        rank[order] = torch.arange(index.shape[0]) - starts[index[order]]
        offsets = (torch.arange(self.n_sizes) * 7) % n_replicates
        self.size_index = index.to(device)
        self.unit_size = self.sampled[self.size_index]
        self.unit_replicate = ((rank + offsets[index]) % n_replicates).to(device)
        self.max_units = max_units
        key = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64
        self._seed_key = key - 2**64 if key >= 2**63 else key
        self._players = torch.arange(n, dtype=torch.long, device=device) * _PLAYER

    def enumerated_rows(self) -> Tensor:
        return torch.cat([subsets_of_size(self.n, t, self.device) for t in self.enumerated])

    def units(self, ids: Tensor) -> Tensor:
        """The first coalition of the units ``ids`` (any order): (len(ids), n) bool."""
        ids = ids.to(self.device, torch.long)
        unit_key = _mix(ids * _GOLDEN + self._seed_key)
        bits = _mix(unit_key.unsqueeze(1) + self._players.unsqueeze(0))
        keys = _shift(bits, 11).to(torch.float64)  # 53 uniform bits
        ranks = keys.argsort(dim=1).argsort(dim=1)
        return ranks < self.unit_size[ids].unsqueeze(1)

    def source(self, offset: int) -> Callable[[int, int], Tensor]:
        """The rows of units offset + start .. offset + stop - 1, for :meth:`ModelGame.chunks`."""
        def rows(start: int, stop: int) -> Tensor:
            return self.coalitions(torch.arange(offset + start, offset + stop,
                                                device=self.device))
        return rows

    def coalitions(self, ids: Tensor) -> Tensor:
        """Every row of the units ``ids``, a unit's rows together."""
        first = self.units(ids)
        if self.rows_per_unit == 1:
            return first
        return torch.stack([first, ~first], dim=1).flatten(0, 1)


def estimate_sii_adaptive(
    game: ModelGame,
    options: AdaptiveOptions,
    *,
    seed: int,
    control_variate: ControlVariate = "auto",
    paired: bool = True,
    shrinkage: bool = False,
    n_replicates: int = N_REPLICATES,
) -> PairEstimate:
    """SII of every pair, drawing blocks of rows until ``options``' rule holds for every
    example or ``options.max_samples`` rows per example are used.

    Args:
        game: the model game (with requested pairs).
        options: from :func:`check_adaptive_options`.
        seed: seed of the sampled coalitions.
        control_variate: the surrogate subtracted before sampling.
        paired: sample each coalition together with its complement.
        shrinkage: shrink the correction towards the surrogate (see :func:`.estimate_sii`).
        n_replicates: independent replicates (cross-fitting and standard errors).

    Returns:
        The estimate at the stopping point, with its :class:`.BudgetReport` as ``budget``.
    """
    n, batch, device = game.n_players, game.n_examples, game.device
    pair_index = game.pair_index
    first = check_adaptive_game(options, n, int(pair_index.shape[0]))
    mode = resolve_control_variate(control_variate, n, paired=paired)
    plan = plan_sizes(n, first, paired=paired)
    rpu = plan.rows_per_unit
    max_units = (options.max_samples - plan.n_enumerated) // rpu if plan.counts.numel() else 0
    check_allocation(
        f"Adaptive SII sampling of B = {batch} example(s) x F = {n} players with up to "
        f"{options.max_samples} coalitions ({mode} control variate)",
        working_bytes(n, batch, max_units * rpu, mode, n_replicates),
        "Lower max_samples, explain fewer examples per call, or use fewer players "
        "(feature_mask) or control_variate='linear'.")
    design = GrowingDesign(plan, seed, device, max_units, n_replicates)
    h = sii_size_weights(n).to(device)
    enumerated = MainEffectSums(n, batch, n_replicates, device)
    stored = torch.empty(0, rpu, batch, dtype=torch.float64, device=device)
    previous_top: Tensor | None = None
    report: BudgetReport
    with game.budget(options.max_samples, desc="SII coalitions (auto)"):
        exact = _enumerated(game, design.enumerated_rows(), h, enumerated)
        if max_units == 0:  # the first block covers every coalition: exact, nothing to sample
            main = enumerated.finish()[0]
            estimate = PairEstimate.exact(exact, main, enumerated.empty)
            zeros = [0.0] * batch
            report = BudgetReport(plan.n_rows, [True] * batch, zeros,
                                  None if options.stop_when == "stderr" else
                                  [math.inf] * batch, 1)
            return PairEstimate(estimate.values, estimate.stderr, estimate.main,
                                estimate.main_stderr, estimate.empty, report)
        schedule = checkpoints(first, options.max_samples)
        for check, rows in enumerate(schedule, start=1):
            units = (rows - plan.n_enumerated) // rpu
            done = stored.shape[0]
            if units > done:
                parts = [stored]
                for chunk in game.chunks(units - done, design.source(done), rows_per_unit=rpu):
                    parts.append(chunk.values.view(chunk.stop - chunk.start, rpu, batch))
                stored = torch.cat(parts)
            estimate = _estimate_prefix(design, stored, exact, enumerated, h, mode,
                                        n_replicates, shrinkage)
            met, max_stderr, separation, top = _rule(estimate, pair_index, options,
                                                     previous_top)
            previous_top = top
            if bool(met.all()) or check == len(schedule):
                break
    used = plan.n_enumerated + stored.shape[0] * rpu
    report = BudgetReport(used, met.tolist(), max_stderr.tolist(),
                          None if separation is None else separation.tolist(), check)
    if not bool(met.all()):
        missed = torch.nonzero(~met).flatten().tolist()
        goal = (f"the top-{options.top_k} ranking was stable" if options.stop_when == "topk"
                else "the standard errors met target_stderr")
        warnings.warn(
            f"n_samples='auto' used max_samples={options.max_samples} coalitions per example "
            f"before {goal} for example(s) {missed} (largest stderr of the requested pairs: "
            f"{', '.join(f'{float(max_stderr[b]):.3g}' for b in missed)}). The result is the "
            "estimate at the cap (settings['target_met'] says which examples missed): raise "
            "max_samples or loosen the target.", RuntimeWarning, stacklevel=4)
    return PairEstimate(estimate.values, estimate.stderr, estimate.main, estimate.main_stderr,
                        estimate.empty, report)


def _enumerated(game: ModelGame, rows_all: Tensor, h: Tensor, main: MainEffectSums) -> Tensor:
    """:func:`.sii_sampling._enumerated_part`, summed in fixed blocks of rows whatever the
    forward chunks are (so that the values are bit-identical at any
    ``perturbations_per_eval``)."""
    values = game.evaluate(rows_all)
    n = game.n_players
    exact = torch.zeros(game.n_examples, n, n, dtype=torch.float64, device=game.device)
    inv_comb = inverse_binomials(n, game.device)
    for start in range(0, rows_all.shape[0], BLOCK_ROWS):
        present = rows_all[start : start + BLOCK_ROWS]
        sizes = present.sum(1)
        accumulate_pair_sums(exact, present, values[start : start + BLOCK_ROWS],
                             inv_comb[sizes], h, sizes)
        main.add_exact(present, values[start : start + BLOCK_ROWS], inv_comb[sizes])
    return exact


def _rule(estimate: PairEstimate, pair_index: Tensor, options: AdaptiveOptions,
          previous_top: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Whether each example meets the stopping rule: (met (B,) bool, max stderr (B,),
    top-k separation (B,) or None, sorted top-k pair indices (B, k) or None)."""
    i, j = pair_index[:, 0], pair_index[:, 1]
    values = 0.5 * (estimate.values[:, i, j] + estimate.values[:, j, i])  # (B, P)
    stderr = estimate.stderr[:, i, j]
    max_stderr = stderr.amax(1)
    if options.stop_when == "stderr":
        assert options.target_stderr is not None
        scale = values.abs().amax(1) if options.relative else torch.ones_like(max_stderr)
        return max_stderr <= options.target_stderr * scale, max_stderr, None, None
    assert options.top_k is not None
    key = values.abs()
    top = key.topk(options.top_k, dim=1).indices  # (B, k)
    inside = torch.zeros_like(key, dtype=torch.bool).scatter_(1, top, True)
    gap = key.gather(1, top).unsqueeze(2) - key.unsqueeze(1)  # (B, k, P)
    spread = (stderr.gather(1, top).unsqueeze(2) ** 2 + stderr.unsqueeze(1) ** 2).sqrt()
    z = torch.where(spread > 0, gap / spread.clamp_min(1e-300),
                    torch.where(gap > 0, math.inf, -math.inf))
    z = torch.where(inside.unsqueeze(1), torch.full_like(z, math.inf), z)
    separation = z.flatten(1).amin(1)
    top_sorted = top.sort(dim=1).values
    stable = (torch.zeros_like(max_stderr, dtype=torch.bool) if previous_top is None
              else (top_sorted == previous_top).all(1))
    return stable & (separation >= TOPK_Z), max_stderr, separation, top_sorted


def _estimate_prefix(design: GrowingDesign, stored: Tensor, exact: Tensor,
                     enumerated: MainEffectSums, h: Tensor, mode: Surrogate,
                     n_replicates: int, shrinkage: bool) -> PairEstimate:
    """The estimator of :func:`.sii_sampling.estimate_sii` on the first ``len(stored)`` units
    of ``design`` (their row values ``stored``: (U, rows per unit, B)), without any model
    call. Units are visited grouped by replicate, in fixed blocks, so the result does not
    depend on how the rows were chunked."""
    n, device = design.n, design.device
    n_units, rpu, batch = stored.shape
    reps = design.unit_replicate[:n_units]
    sizes = design.unit_size[:n_units]
    order = torch.argsort(reps, stable=True)
    counts = torch.bincount(design.size_index[:n_units], minlength=design.n_sizes)
    counts = counts.to(torch.float64)
    middle = (2 * design.sampled == n) & design.paired
    rows_rep = counts * torch.where(middle, 2.0, 1.0)
    rows_of_size = torch.zeros(n + 1, dtype=torch.float64, device=device)
    rows_of_size[design.sampled] = rows_rep
    row_scale = n_replicates / rows_of_size.clamp_min(1.0)
    rows_k = torch.zeros(n + 1, dtype=torch.float64, device=device)
    rows_k.index_add_(0, design.sampled, counts)
    if design.paired:
        rows_k.index_add_(0, n - design.sampled, counts)
    row_scale_k = n_replicates / rows_k.clamp_min(1.0)
    main = MainEffectSums(n, batch, n_replicates, device)
    main.exact, main.empty, main.full = enumerated.exact, enumerated.empty, enumerated.full

    streamed = mode if mode != "sparse" else "none"  # the sparse fit makes its own passes
    regression = ReplicateRegression(n_replicates, n, batch, device, streamed,
                                     tied=design.paired)

    def blocks() -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        for start in range(0, n_units, BLOCK_ROWS):
            ids = order[start : start + BLOCK_ROWS]
            yield reps[ids], sizes[ids], design.units(ids), stored[ids].sum(1)

    for start in range(0, n_units, BLOCK_ROWS):
        ids = order[start : start + BLOCK_ROWS]
        first = design.units(ids)
        values = stored[ids]
        regression.add(reps[ids], sizes[ids], first, values.sum(1))
        rows = first if rpu == 1 else torch.stack([first, ~first], dim=1).flatten(0, 1)
        main.add_sampled(rows, values.reshape(-1, batch), reps[ids].repeat_interleave(rpu),
                         row_scale_k[rows.sum(1)])
    # The surrogate's SII on each sampled size, as in estimate_sii.
    size_weight = torch.zeros(n + 1, dtype=torch.float64, device=device)
    size_weight[design.sampled] = counts / rows_rep.clamp_min(1.0)
    surrogate = fit_surrogate(regression, mode, blocks, n_units=n_units,
                              size_weight=size_weight)
    sums = _ReplicateSums(exact, n_replicates, surrogate.replicate_sii, shrinkage=shrinkage)
    for start in range(0, n_units, BLOCK_ROWS):
        ids = order[start : start + BLOCK_ROWS]
        first = design.units(ids)
        rep, size = reps[ids], sizes[ids]
        residual = stored[ids].sum(1) - surrogate.fitted(rep, size, first)
        uniq, lengths = torch.unique_consecutive(rep, return_counts=True)
        offset = 0
        for r, length in zip(uniq.tolist(), lengths.tolist(), strict=True):
            part = slice(offset, offset + length)
            accumulate_pair_sums(sums.slot(r), first[part], residual[part],
                                 row_scale[size[part]], h, size[part])
            offset += length
    mean, stderr = sums.finish()
    main_mean, main_stderr = main.finish()
    return PairEstimate(exact + mean, stderr, main_mean, main_stderr, main.empty)
