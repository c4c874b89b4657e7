"""SII as a sum over coalition sizes, and how a budget is spread over the sizes.

For a pair (i, j) and a coalition T of size t, write L = T ∩ {i, j} and k = |L|. Then

    SII(i, j) = Σ_t E_{T uniform of size t}[ v(T) · h_t(k) ],
    h_t(k) = (-1)^k / ((n - 1) · P_t(k)),   P_t(k) = C(n-2, t-k) / C(n, t),

where P_t(k) is the chance that a uniform size-t coalition meets {i, j} exactly in one given L
of size k (h_t(k) = 0 where P_t(k) = 0). This is the Grabisch-Roubens definition regrouped by
|T|: the term of size s = t - k in Δ_ij(S) has weight 1/(n-1) in total. Every coalition thus
informs every pair, through the matrix identity in :mod:`.sii_kernel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Cells of a pair by k = |T ∩ {i, j}|: one with k = 0, two with k = 1 ({i} and {j}), one k = 2.
_CELL_COUNTS = (1.0, 2.0, 1.0)


def log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def inverse_binomials(n: int, device: torch.device | str = "cpu") -> Tensor:
    """1 / C(n, t) for t = 0..n, in log space so that large n neither overflows nor underflows
    to an error: (n + 1,) float64."""
    return torch.tensor(
        [math.exp(-log_comb(n, t)) for t in range(n + 1)], dtype=torch.float64, device=device
    )


def cell_probabilities(n: int) -> Tensor:
    """P_t(k) for t = 0..n, k = 0..2: (n + 1, 3) float64."""
    probs = torch.zeros(n + 1, 3, dtype=torch.float64)
    for t in range(n + 1):
        for k in range(3):
            probs[t, k] = math.exp(log_comb(n - 2, t - k) - log_comb(n, t))
    return probs


def sii_size_weights(n: int) -> Tensor:
    """h_t(k) for t = 0..n and k = |T ∩ {i, j}| = 0..2: (n + 1, 3) float64."""
    probs = cell_probabilities(n)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    safe = torch.where(probs > 0, probs, torch.ones_like(probs))
    return torch.where(probs > 0, signs / ((n - 1) * safe), torch.zeros_like(probs))


@dataclass(frozen=True)
class SizePlan:
    """Which coalition sizes are enumerated and how many sampling units each sampled size gets.

    A unit is one coalition T, or with ``paired`` the complementary pair (T, N∖T) of sizes t and
    n - t, listed under its smaller size t <= n/2.

    Attributes:
        n_players: n.
        enumerated: sizes evaluated exhaustively (exact contribution).
        sampled: (S,) long tensor of the (representative) interior sizes that are sampled.
        counts: (S,) long tensor, units per sampled size (each >= 1).
        paired: whether units are complementary pairs.
    """

    n_players: int
    enumerated: tuple[int, ...]
    sampled: Tensor
    counts: Tensor
    paired: bool

    @property
    def rows_per_unit(self) -> int:
        return 2 if self.paired else 1

    @property
    def n_enumerated(self) -> int:
        return sum(math.comb(self.n_players, t) for t in self.enumerated)

    @property
    def n_sampled(self) -> int:
        return int(self.counts.sum()) * self.rows_per_unit

    @property
    def n_rows(self) -> int:
        """Coalitions evaluated per example: never more than the budget."""
        return self.n_enumerated + self.n_sampled

    def rows_of_size(self) -> Tensor:
        """(S,) coalitions of each representative size (a middle size n/2 gets both rows of
        its pairs)."""
        middle = 2 * self.sampled == self.n_players
        return self.counts * torch.where(middle & self.paired, 2, 1)


def min_sampling_budget(n: int) -> int:
    """Smallest budget the stratified estimator accepts: the 2n + 2 border coalitions plus one
    row (or complementary pair) per interior size."""
    return 3 * n


def allocation_weights(n: int) -> Tensor:
    """Neyman-style share of each size: sqrt(Σ_cells 1 / P_t(cell)), i.e. proportional to the
    standard deviation of v·h_t when the (residual) value has equal spread in every cell."""
    probs = cell_probabilities(n)
    counts = torch.tensor(_CELL_COUNTS, dtype=torch.float64)
    inv = torch.where(probs > 0, counts / probs.clamp_min(1e-300), torch.zeros_like(probs))
    return inv.sum(1).sqrt()


def plan_sizes(n: int, budget: int, *, paired: bool = True) -> SizePlan:
    """Spread ``budget`` coalitions over sizes: enumerate the border sizes, and any size whose
    share would cover all its coalitions; sample the others in proportion to
    :func:`allocation_weights` (largest remainder), at least one unit each."""
    if budget < min_sampling_budget(n):
        raise ValueError(
            f"n_samples={budget} is too small for {n} players: the sampling estimator needs at "
            f"least 3F = {min_sampling_budget(n)} coalitions per example (2F + 2 border "
            "coalitions plus one per interior size). Raise n_samples or use fewer players."
        )
    # The border sizes carry the largest per-coalition weights, cost only 2n + 2 rows, and are
    # where the surrogates of the control variate have a size-dependent SII: always enumerate.
    border = sorted({0, 1, n - 1, n})
    remaining = budget - sum(math.comb(n, t) for t in border)
    top = n // 2 if paired else n - 2
    interior = [t for t in range(2, top + 1)]
    enumerated = list(border)

    def enum_cost(t: int) -> int:
        return math.comb(n, t) * (2 if paired and 2 * t != n else 1)

    weights = allocation_weights(n)
    if remaining >= sum(enum_cost(t) for t in interior):  # the budget covers every coalition
        enumerated += [s for t in interior for s in (t, n - t)]
        interior = []
    changed = True
    while changed and interior:
        changed = False
        total = float(weights[interior].sum())
        for t in list(interior):
            share = remaining * float(weights[t]) / total
            if share >= enum_cost(t) and remaining - enum_cost(t) >= 2 * (len(interior) - 1):
                enumerated += [t, n - t] if paired else [t]
                interior.remove(t)
                remaining -= enum_cost(t)
                changed = True
                break
    empty = torch.zeros(0, dtype=torch.long)
    if not interior:
        return SizePlan(n, tuple(sorted(set(enumerated))), empty, empty, paired)
    sizes = torch.tensor(interior, dtype=torch.long)
    # A paired unit is always two rows, T and N∖T, also at the middle size t = n/2.
    row_cost = torch.full((len(interior),), 2.0 if paired else 1.0, dtype=torch.float64)
    spare = remaining - float(row_cost.sum())  # one unit per size is reserved
    w = weights[sizes]
    raw = spare * w / (w * row_cost).sum()  # units beyond the reserved one
    counts = raw.floor().long()
    left = spare - float((counts.double() * row_cost).sum())
    order = torch.argsort(raw - counts, descending=True, stable=True)
    for idx in order.tolist():  # at most S sizes: hand out the remainder
        if left >= row_cost[idx]:
            counts[idx] += 1
            left -= float(row_cost[idx])
    counts += 1
    cap = torch.tensor([min(math.comb(n, t), budget) for t in interior], dtype=torch.long)
    if paired:
        cap = torch.where(2 * sizes == n, cap // 2, cap)
    counts = torch.minimum(counts, cap)
    return SizePlan(n, tuple(sorted(set(enumerated))), sizes, counts, paired)


def split_over_replicates(counts: Tensor, n_replicates: int) -> Tensor:
    """(S,) counts -> (R, S) counts, as even as possible, remainders rotated over replicates
    so that every replicate gets a similar total."""
    base = counts // n_replicates
    extra = counts % n_replicates
    out = base.unsqueeze(0).repeat(n_replicates, 1)
    # Rotating start offsets keep replicate totals within one coalition of each other.
    starts = torch.cumsum(extra, 0) - extra
    r = torch.arange(n_replicates).unsqueeze(1)
    out += ((r - starts.unsqueeze(0)) % n_replicates < extra.unsqueeze(0)).long()
    return out
