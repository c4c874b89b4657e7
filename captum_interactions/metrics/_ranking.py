"""Vectorised selection: ranks within groups, fraction-to-count rounding, pairs to players.

Everything here works on whole (rows, F) tensors at once; no Python loop over rows, budgets,
K values or random repeats.
"""

from __future__ import annotations

import torch
from torch import Tensor


def round_count(fraction: Tensor, n: Tensor) -> Tensor:
    """How many of ``n`` items a ``fraction`` selects: round half up, at least 1, at most n.

    Args:
        fraction: float tensor of fractions in (0, 1], broadcastable with ``n``.
        n: long tensor of group sizes; a group of size 0 gets 0.

    Returns:
        long tensor of counts (broadcast shape).
    """
    raw = torch.floor(fraction.to(torch.float64) * n.to(torch.float64) + 0.5).long()
    counts = torch.minimum(raw.clamp(min=1), n)
    return torch.where(n > 0, counts, torch.zeros_like(counts))


def rank_within_groups(
    scores: Tensor, group: Tensor, n_groups: int, generator: torch.Generator
) -> Tensor:
    """Rank of every item among the items of its group, best (highest score) first.

    Ties are broken uniformly at random: a random permutation is applied first and the score
    sort is stable, so equal scores keep that random order. Items of group ``n_groups`` (the
    "never selected" group: protected players, ids that appear nowhere) get ranks in their own
    group and must be excluded by the caller's counts.

    Args:
        scores: (N, F) real scores.
        group: (F,) long group ids in [0, n_groups].
        n_groups: number of real groups.
        generator: a generator on ``scores.device`` for the tie-breaking permutation.

    Returns:
        (N, F) long: ``rank[n, i]`` is 0 for the best item of i's group in row n.
    """
    n_rows, n_items = scores.shape
    device = scores.device
    tie = torch.rand(n_rows, n_items, generator=generator, device=device)
    order = tie.argsort(dim=1)
    by_score = scores.gather(1, order).argsort(dim=1, descending=True, stable=True)
    order = order.gather(1, by_score)
    # A stable sort on the group id keeps the score order inside each group.
    order = order.gather(1, group[order].argsort(dim=1, stable=True))
    sizes = torch.bincount(group, minlength=n_groups + 1)
    starts = sizes.cumsum(0) - sizes
    position = torch.arange(n_items, device=device).expand(n_rows, -1)
    within = position - starts[group[order]]
    return torch.empty_like(order).scatter_(1, order, within)


def random_ranks(
    n_rows: int, group: Tensor, n_groups: int, generator: torch.Generator
) -> Tensor:
    """Ranks of a uniformly random order inside each group: (n_rows, F) long."""
    keys = torch.rand(n_rows, group.shape[0], generator=generator, device=group.device)
    return rank_within_groups(keys, group, n_groups, generator)


def pairs_to_players(selected: Tensor, pair_index: Tensor, n_players: int) -> Tensor:
    """Players touched by the selected pairs: the union of both ends (an any-reduction).

    Args:
        selected: (..., P) bool, which pairs are selected.
        pair_index: (P, 2) long player ids of each pair.
        n_players: F.

    Returns:
        (..., F) bool: ``True`` for every player that belongs to a selected pair.
    """
    lead = selected.shape[:-1]
    n_pairs = pair_index.shape[0]
    flat = selected.reshape(-1, n_pairs).to(torch.int32)
    ends = pair_index.t().reshape(1, 2 * n_pairs).expand(flat.shape[0], -1)
    hits = torch.zeros(flat.shape[0], n_players, dtype=torch.int32, device=selected.device)
    hits.scatter_add_(1, ends, torch.cat([flat, flat], dim=1))
    return (hits > 0).view((*lead, n_players))


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on the inputs' device: runs are reproducible on the same device."""
    return torch.Generator(device=device).manual_seed(seed)
