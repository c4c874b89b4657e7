"""Exact mode: enumerate all 2^F coalitions in chunks (the test oracle)."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_interactions.estimators.coalitions import all_subsets
from captum_interactions.estimators.sii_kernel import accumulate_pair_sums
from captum_interactions.estimators.size_plan import inverse_binomials, sii_size_weights
from captum_interactions.perturbation.engine import CoalitionEvaluator

#: Largest number of players ``method="exact"`` accepts: 2^20 ≈ 1e6 forward rows per example.
MAX_EXACT_PLAYERS = 20


def check_exact_players(n_players: int, limit: int = MAX_EXACT_PLAYERS) -> None:
    if n_players > limit:
        raise ValueError(
            f"method='exact' enumerates 2^F coalitions and accepts at most F={limit} players; "
            f"these inputs define F={n_players}. Use method='sampling' or coarser players "
            "(feature_mask)."
        )


def exact_sii(evaluator: CoalitionEvaluator) -> Tensor:
    """SII of every pair by full enumeration: (B, F, F) float64 (diagonal not masked)."""
    n = evaluator.players.n_players
    check_exact_players(n)
    batch, device = evaluator.batch_size, evaluator.device
    h = sii_size_weights(n).to(device)
    inv_comb = inverse_binomials(n, device)
    out = torch.zeros(batch, n, n, dtype=torch.float64, device=device)
    step = evaluator.perturbations_per_eval
    for start in range(0, 2**n, step):
        rows = all_subsets(n, start, min(start + step, 2**n), device)
        values = evaluator.evaluate(rows.unsqueeze(1).expand(-1, batch, -1), offset=start)
        sizes = rows.sum(1)
        accumulate_pair_sums(out, rows, values, inv_comb[sizes], h, sizes)
    return out


def value_table(evaluator: CoalitionEvaluator) -> Tensor:
    """v(T) for all 2^F coalitions, indexed by bitmask: (2^F, B) float64."""
    n = evaluator.players.n_players
    check_exact_players(n)
    batch, device = evaluator.batch_size, evaluator.device
    step = evaluator.perturbations_per_eval
    parts = []
    for start in range(0, 2**n, step):
        rows = all_subsets(n, start, min(start + step, 2**n), device)
        parts.append(evaluator.evaluate(rows.unsqueeze(1).expand(-1, batch, -1), offset=start))
    return torch.cat(parts, dim=0)
