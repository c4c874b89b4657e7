"""Exact mode: enumerate all 2^F coalitions in chunks (the test oracle)."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_interactions.estimators.coalitions import all_subsets
from captum_interactions.estimators.estimate import PairEstimate
from captum_interactions.estimators.main_effects import MainEffectSums
from captum_interactions.estimators.sii_kernel import accumulate_pair_sums
from captum_interactions.estimators.size_plan import inverse_binomials, sii_size_weights
from captum_interactions.perturbation.game import ModelGame
from captum_interactions.validation import check_allocation

#: Largest number of players ``method="exact"`` accepts: 2^20 ≈ 1e6 forward rows per example.
MAX_EXACT_PLAYERS = 20


def check_exact_players(n_players: int, limit: int = MAX_EXACT_PLAYERS) -> None:
    if n_players > limit:
        raise ValueError(
            f"method='exact' enumerates 2^F coalitions and accepts at most F={limit} players; "
            f"these inputs define F={n_players}. Use method='sampling' or coarser players "
            "(feature_mask)."
        )


def exact_sii(game: ModelGame) -> PairEstimate:
    """SII of every pair by full enumeration (B, F, F), with zero standard errors."""
    n, device = game.n_players, game.device
    check_exact_players(n)
    check_allocation(f"Exact SII of B = {game.n_examples} example(s) x F = {n} players",
                     8.0 * game.n_examples * n * n * 3, "Explain fewer examples per call.")
    h = sii_size_weights(n).to(device)
    inv_comb = inverse_binomials(n, device)
    out = torch.zeros(game.n_examples, n, n, dtype=torch.float64, device=device)
    main = MainEffectSums(n, game.n_examples, 1, device)
    with game.budget(2**n, desc="SII coalitions"):
        for chunk in game.chunks(2**n, lambda a, b: all_subsets(n, a, b, device)):
            sizes = chunk.present.sum(1)
            accumulate_pair_sums(out, chunk.present, chunk.values, inv_comb[sizes], h, sizes)
            main.add_exact(chunk.present, chunk.values, inv_comb[sizes])
    return PairEstimate.exact(out, main.finish()[0], main.empty)


def value_table(game: ModelGame, *, desc: str) -> Tensor:
    """v(T) for all 2^F coalitions, indexed by bitmask: (2^F, B) float64."""
    n, device = game.n_players, game.device
    check_exact_players(n)
    with game.budget(2**n, desc=desc):
        parts = [chunk.values
                 for chunk in game.chunks(2**n, lambda a, b: all_subsets(n, a, b, device))]
    return torch.cat(parts, dim=0)
