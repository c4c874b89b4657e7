"""The sparse (screened) control variate: its SII against enumeration, exactness on games it
can represent, unbiasedness, screening, memory (threads: test_sii_sampling.py)."""

from __future__ import annotations

import itertools

import pytest
import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.estimators.coalitions import subsets_of_size
from captum_interactions.estimators.screened import (
    MAX_TERMS,
    ScreenedFit,
    Terms,
    kept_terms,
    size_pools,
    term_sii_weights,
)
from captum_interactions.estimators.sii_sampling import working_bytes
from captum_interactions.estimators.size_plan import sii_size_weights
from captum_interactions.testing import PolynomialGame, random_polynomial_game


def _surrogate_sii_by_enumeration(g, n: int, size_weight: torch.Tensor) -> torch.Tensor:
    """Σ_t ω_t E_t[g(T) h_t(|T ∩ {i, j}|)] for every pair, enumerating each sampled size."""
    h = sii_size_weights(n)
    out = torch.zeros(n, n, dtype=torch.float64)
    for t in torch.nonzero(size_weight).flatten().tolist():
        rows = subsets_of_size(n, t, "cpu")
        values = g(rows)
        z = rows.double()
        for i, j in itertools.combinations(range(n), 2):
            k = (z[:, i] + z[:, j]).long()
            out[i, j] += float(size_weight[t]) * float((values * h[t, k]).mean())
    return out + out.t()


@pytest.mark.parametrize("d", [2, 4, 6])
def test_term_weights_match_enumeration(d: int) -> None:
    n = 9
    weight = torch.zeros(n + 1, dtype=torch.float64)
    weight[2], weight[3], weight[4] = 1.0, 1.0, 0.5
    members = list(range(d))
    got = term_sii_weights(n, d, weight)
    enumerated = _surrogate_sii_by_enumeration(
        lambda rows: (2 * rows[:, members].double() - 1).prod(1), n, weight)
    # Pairs meeting A in 0, 1 and 2 players.
    for a, (i, j) in {0: (n - 2, n - 1), 1: (0, n - 1), 2: (0, 1)}.items():
        assert got[a] == pytest.approx(float(enumerated[i, j]), abs=1e-12)


def test_fitted_surrogate_sii_matches_enumeration() -> None:
    """A surrogate with pair terms, 4-sets and a 6-set: replicate_sii against the definition,
    on two examples with their own coefficients."""
    n, batch = 9, 2
    gen = torch.Generator().manual_seed(0)
    pairs = torch.tensor([[0, 1, 2, 5], [3, 4, 8, 7]])
    sets = [torch.tensor([[0, 1, 2, 3], [2, 4, 6, 8]]), torch.tensor([[0, 1, 2, 3, 4, 5]])]
    terms = Terms(pairs, sets)
    slopes = torch.randn(1, terms.count, batch, generator=gen, dtype=torch.float64)
    weight = torch.zeros(n + 1, dtype=torch.float64)
    weight[2], weight[3], weight[4] = 1.0, 1.0, 0.5
    pool_of = torch.zeros(n + 1, dtype=torch.long)
    fit = ScreenedFit(torch.zeros(1, dtype=torch.long), [terms], slopes,
                      torch.randn(1, 1, batch, generator=gen, dtype=torch.float64), pool_of,
                      weight, n)
    got = fit.replicate_sii(0)
    assert got is not None
    off = ~torch.eye(n, dtype=torch.bool)
    for b in range(batch):
        def g(rows: torch.Tensor, b: int = b) -> torch.Tensor:
            return terms.features(rows).double() @ slopes[0, :, b] + 3.0  # + a level

        expected = _surrogate_sii_by_enumeration(g, n, weight)
        torch.testing.assert_close(got[b][off], expected[off], rtol=0, atol=1e-12)


def _four_way_game(n: int) -> PolynomialGame:
    """Main effects, a few pairs and triples, and an AND of four players (a 4-way Möbius
    term), the pattern of a decision that needs a text cue and an image cue together."""
    base = random_polynomial_game(n, n_pairs=6, n_triples=3, seed=7)
    terms = dict(base.terms)
    terms[(0, 1, n // 2, n // 2 + 1)] = 4.0
    terms[(0, n // 2)] = terms.get((0, n // 2), 0.0) + 2.0
    return PolynomialGame(n, terms)


def test_higher_order_terms_make_the_surrogate_exact() -> None:
    """With pairing, the 4-way term leaves an order-4 parity term in v(T) + v(N∖T) that pair
    surrogates cannot absorb; the sparse surrogate holds it (its players lead), so only the
    small ridge bias of its fit is left to sample: the error is over 100 times smaller than the
    quadratic surrogate's."""
    n = 16
    game = _four_way_game(n)
    x = torch.ones(1, n, 1, dtype=torch.float64)
    truth = game.sii()
    errors = {}
    for cv in ("sparse", "quadratic"):
        values = ShapleyInteractionIndex(game).attribute(
            x, pairs="all", n_samples=4096, seed=0, control_variate=cv)
        errors[cv] = float((values[0] - truth).norm() / truth.norm())
    assert errors["sparse"] < 1e-3, errors
    assert errors["sparse"] < 0.01 * errors["quadratic"], errors


def test_unbiased_over_seeds() -> None:
    """Mean over 40 seeds at a budget where screening keeps only part of the pairs: within
    4 standard errors of the mean of the exact SII, for every pair."""
    n = 12
    game = _four_way_game(n)
    x = torch.ones(1, n, 1, dtype=torch.float64)
    truth = game.sii()
    runs = torch.stack([ShapleyInteractionIndex(game).attribute(
        x, pairs="all", n_samples=400, seed=seed, control_variate="sparse")[0]
        for seed in range(40)])
    mean, se = runs.mean(0), runs.std(0) / 40**0.5
    off = ~torch.eye(n, dtype=torch.bool)
    z = ((mean - truth) / se.clamp_min(1e-12))[off]
    assert z.abs().max() < 4.5, z.abs().max()


def test_screening_finds_planted_pairs_among_many_players() -> None:
    """64 players, 2016 pairs, 16 planted pairs + 8 triples: at 8192 rows the surrogate keeps
    fewer than half of the pairs but nearly all planted ones, so the error is far below the
    linear surrogate's."""
    n = 64
    game = random_polynomial_game(n, n_pairs=16, n_triples=8, seed=3)
    x = torch.ones(1, n, 1, dtype=torch.float64)
    truth = game.sii()
    errors = {}
    for cv in ("sparse", "linear"):
        values = ShapleyInteractionIndex(game).attribute(
            x, pairs="all", n_samples=8192, seed=0, control_variate=cv)
        errors[cv] = float((values[0] - truth).norm() / truth.norm())
    assert errors["sparse"] < 0.1 * errors["linear"], errors
    assert errors["sparse"] < 0.1, errors


def test_terms_are_bounded_by_data_and_cap() -> None:
    pairs, sets = kept_terms(64, 100)
    assert pairs + sets == 33 and sets == 0  # a third of the fitted units, no room for sets
    pairs, sets = kept_terms(64, 10**6)
    assert pairs + sets == MAX_TERMS and sets == 16  # C(6, 4) + C(6, 6)
    assert kept_terms(6, 10**6) == (15, 0)  # every pair of 6 players, no sets below 8


def test_memory_does_not_grow_with_the_budget() -> None:
    """Beyond the per-unit values (16 + 8B bytes per unit), the working set is capped by K."""
    per_unit = 8.0 + 16
    small = working_bytes(256, 1, 50_000, "sparse", 16) - 50_000 * per_unit
    large = working_bytes(256, 1, 5_000_000, "sparse", 16) - 5_000_000 * per_unit
    assert small == large


def test_size_pools_reach_the_minimum() -> None:
    count = torch.tensor([0, 0, 20, 3, 3, 3, 1, 0], dtype=torch.float64)
    pools = size_pools(count, min_units=4)
    assert pools[2] != pools[3]
    assert pools[3] == pools[4]  # 3 + 3 >= 4
    assert pools[5] == pools[6]  # the short last pool joins the one before
    sizes = torch.nonzero(count).flatten()
    totals = torch.zeros(int(pools.max()) + 1, dtype=torch.float64).index_add_(
        0, pools[sizes], count[sizes])
    assert bool((totals >= 4).all())


def test_sparse_needs_pairing() -> None:
    game = random_polynomial_game(8, seed=0)
    with pytest.raises(ValueError, match="control_variate='sparse' needs paired=True"):
        ShapleyInteractionIndex(game).attribute(torch.ones(1, 8, 1), pairs="all",
                                                n_samples=256, control_variate="sparse",
                                                paired=False)
