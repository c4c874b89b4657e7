"""Redundancy Gap estimators: quartets of coalitions per candidate pair.

RG(i, j) = E_{S~p}[ clip(-Δ_ij(S), 0, max(0, min(Δ_i(S), Δ_j(S)))) ] is not linear in v, so a
coalition cannot be shared between pairs the way SII shares it; every sample is a quartet
(S, S∪i, S∪j, S∪ij) for one pair, and the cost is linear in the number of candidate pairs.
The size |S| is stratified over 0..n-2 (the SII size distribution p), S uniform given its size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from captum_interactions.estimators.coalitions import block_generator
from captum_interactions.estimators.exact import value_table
from captum_interactions.perturbation.game import ModelGame

UNIT_BLOCK = 128


def redundancy_from_quartet(v00: Tensor, v10: Tensor, v01: Tensor, v11: Tensor) -> Tensor:
    """clip(-Δ_ij, 0, max(0, min(Δ_i, Δ_j))) elementwise."""
    delta_i = v10 - v00
    delta_j = v01 - v00
    delta_ij = v11 - v10 - v01 + v00
    cap = torch.minimum(delta_i, delta_j).clamp_min(0.0)
    return torch.minimum((-delta_ij).clamp_min(0.0), cap)


def _quartets(base: Tensor, pairs: Tensor) -> Tensor:
    """base (U, B, n) coalitions without i, j; pairs (U, B, 2) -> (4U, B, n) rows ordered
    S, S∪i, S∪j, S∪ij for each unit."""
    with_i = base.clone()
    with_i.scatter_(2, pairs[..., :1], True)
    with_j = base.clone()
    with_j.scatter_(2, pairs[..., 1:], True)
    with_ij = with_i.clone()
    with_ij.scatter_(2, pairs[..., 1:], True)
    return torch.stack([base, with_i, with_j, with_ij], dim=1).flatten(0, 1)


def quartets_per_pair(budget: int, n_pairs: int) -> int:
    """Quartets each of ``n_pairs`` pairs gets from ``budget`` rows (at least 2 are needed
    for a standard error)."""
    quartets = budget // (4 * n_pairs)
    if quartets < 2:
        raise ValueError(
            f"n_samples={budget} is too small: RG needs at least 2 quartets "
            f"(8 rows) per pair, i.e. {8 * n_pairs} rows for P={n_pairs} pairs. "
            "Raise n_samples or bound the pairs with candidates=k or an explicit "
            "(P, 2) pairs tensor."
        )
    return quartets


def check_full_context_budget(budget: int, n_pairs: int) -> None:
    if budget < 3 * n_pairs + 1:
        raise ValueError(
            f"n_samples={budget} is too small: context='full' needs 3P + 1 = "
            f"{3 * n_pairs + 1} rows for P={n_pairs} pairs. Raise n_samples or pass "
            "candidates=k / fewer pairs."
        )


def sampled_redundancy(
    game: ModelGame, pairs: Tensor, budget: int, *, seed: int
) -> tuple[Tensor, Tensor]:
    """Sampled-context RG of per-example pairs (B, P, 2) with at most ``budget`` rows per
    example: returns mean and stderr, (B, P)."""
    n, device = game.n_players, game.device
    batch, n_pairs = pairs.shape[0], pairs.shape[1]
    q = quartets_per_pair(budget, n_pairs)
    n_units = n_pairs * q
    total = torch.zeros(batch, n_pairs, dtype=torch.float64, device=device)
    total_sq = torch.zeros_like(total)

    def quartets(start: int, stop: int) -> Tensor:
        unit = torch.arange(start, stop, device=device)
        stratum = (unit % q).double()
        keys, jitter = _unit_randomness(seed, start, stop, n, device)
        size = ((stratum + jitter) * (n - 1) / q).floor().long().clamp_max(n - 2)
        unit_pairs = pairs[:, unit // q].transpose(0, 1)  # (U, B, 2)
        keys = keys.unsqueeze(1).expand(-1, batch, -1).clone()
        keys.scatter_(2, unit_pairs, 2.0)  # i and j sort last: never in S
        ranks = keys.argsort(dim=2).argsort(dim=2)
        return _quartets(ranks < size.view(-1, 1, 1), unit_pairs)

    with game.budget(4 * n_units, desc="RG coalitions"):
        for chunk in game.chunks(n_units, quartets, rows_per_unit=4):
            pair_idx = torch.arange(chunk.start, chunk.stop, device=device) // q
            v = chunk.values.view(chunk.stop - chunk.start, 4, batch)
            rg = redundancy_from_quartet(v[:, 0], v[:, 1], v[:, 2], v[:, 3])  # (U, B)
            to_pair = nn.functional.one_hot(pair_idx, n_pairs).to(torch.float64)  # (U, P)
            total += rg.t() @ to_pair
            total_sq += (rg * rg).t() @ to_pair
    mean = total / q
    var = (total_sq / q - mean * mean).clamp_min(0.0) * (q / max(q - 1, 1))
    return mean, (var / q).sqrt()


def _unit_randomness(
    seed: int, start: int, stop: int, n: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Keys (U, n) and size jitter (U,) for units start..stop-1, drawn in fixed blocks."""
    first, last = start // UNIT_BLOCK, (stop - 1) // UNIT_BLOCK
    keys, jitter = [], []
    for block in range(first, last + 1):
        gen = block_generator(seed, block, device)
        keys.append(torch.rand(UNIT_BLOCK, n, generator=gen, device=device))
        jitter.append(torch.rand(UNIT_BLOCK, generator=gen, device=device, dtype=torch.float64))
    offset = first * UNIT_BLOCK
    lo, hi = start - offset, stop - offset
    return torch.cat(keys)[lo:hi], torch.cat(jitter)[lo:hi]


def full_context_redundancy(game: ModelGame, pairs: Tensor) -> Tensor:
    """RG with S = N∖{i, j} (deletion from the full input) in 3P + 1 rows: (B, P)."""
    n, device = game.n_players, game.device
    batch, n_pairs = pairs.shape[0], pairs.shape[1]
    unit_pairs = pairs.transpose(0, 1)
    base = torch.ones(n_pairs, batch, n, dtype=torch.bool, device=device)
    base.scatter_(2, unit_pairs, False)
    rows = _quartets(base, unit_pairs).view(n_pairs, 4, batch, n)[:, :3].flatten(0, 1)
    with game.budget(3 * n_pairs + 1, desc="RG coalitions"):
        v_full = game.evaluate(torch.ones(1, n, dtype=torch.bool, device=device))[0]
        values = game.evaluate(rows).view(n_pairs, 3, batch)
    rg = redundancy_from_quartet(values[:, 0], values[:, 1], values[:, 2], v_full.unsqueeze(0))
    return rg.t()


def exact_redundancy(game: ModelGame, pairs: Tensor) -> Tensor:
    """Sampled-context RG by enumeration of all 2^F coalitions: (B, P)."""
    table = value_table(game, desc="RG coalitions")  # (2^n, B)
    n = game.n_players
    pair_chunk = max(1, 2**22 // 2**n)  # bounds the (pairs, 2^n) work tensors
    device = table.device
    batch, n_pairs = pairs.shape[0], pairs.shape[1]
    codes = torch.arange(2**n, device=device)
    popcount = ((codes.unsqueeze(1) >> torch.arange(n, device=device)) & 1).sum(1)
    weight_of_size = torch.tensor(
        [1.0 / ((n - 1) * math.comb(n - 2, s)) if s <= n - 2 else 0.0 for s in range(n + 1)],
        dtype=torch.float64, device=device,
    )
    # Flatten (example, pair) so that one gather serves the whole batch, chunk by chunk.
    example = torch.arange(batch, device=device).repeat_interleave(n_pairs)
    flat_pairs = pairs.reshape(-1, 2)
    by_example = table.t()  # (B, 2^n)
    s_codes = codes.unsqueeze(0)
    weight = weight_of_size[popcount].unsqueeze(0)
    out = torch.zeros(batch * n_pairs, dtype=torch.float64, device=device)
    for lo in range(0, batch * n_pairs, pair_chunk):
        rows = by_example[example[lo : lo + pair_chunk]]  # (chunk, 2^n)
        bit_i = (1 << flat_pairs[lo : lo + pair_chunk, 0]).unsqueeze(1)
        bit_j = (1 << flat_pairs[lo : lo + pair_chunk, 1]).unsqueeze(1)
        free = ((s_codes & (bit_i | bit_j)) == 0).double()
        rg = redundancy_from_quartet(
            rows,
            rows.gather(1, (s_codes | bit_i).expand_as(rows)),
            rows.gather(1, (s_codes | bit_j).expand_as(rows)),
            rows.gather(1, (s_codes | bit_i | bit_j).expand_as(rows)),
        )
        out[lo : lo + pair_chunk] = (rg * weight * free).sum(1)
    return out.view(batch, n_pairs)
