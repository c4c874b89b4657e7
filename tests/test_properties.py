"""Properties of the estimators on random games (hypothesis): symmetry, relabelled players,
dummy players, linearity in the game, and exact agreement once the budget covers every
coalition. Oracles: the closed-form SII of a polynomial game and the exact mode."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.testing import PolynomialGame

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
# Drawn games may be constant (every coefficient 0); the game warns about those, rightly.
pytestmark = pytest.mark.filterwarnings("ignore:v\\(S\\) took one value:RuntimeWarning")


@st.composite
def games(draw: st.DrawFn, min_players: int = 4, max_players: int = 7) -> PolynomialGame:
    """A polynomial game with main effects and random terms of order 2 and 3."""
    n = draw(st.integers(min_players, max_players))
    coef = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
    terms: dict[tuple[int, ...], float] = {(i,): draw(coef) for i in range(n)}
    subsets = st.lists(st.integers(0, n - 1), min_size=2, max_size=3, unique=True)
    for key in draw(st.lists(subsets, max_size=8)):
        terms[tuple(sorted(key))] = draw(coef)
    return PolynomialGame(n, terms)


def sii(game: PolynomialGame, **kwargs: object) -> torch.Tensor:
    x = torch.ones(1, game.n_players, 1, dtype=torch.float64)
    return ShapleyInteractionIndex(game).attribute(x, pairs="all", **kwargs)[0]


@SETTINGS
@given(games())
def test_exact_matches_the_closed_form_and_is_symmetric(game: PolynomialGame) -> None:
    values = sii(game, method="exact")
    expected = game.sii().fill_diagonal_(0.0)
    torch.testing.assert_close(values, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(values, values.T, rtol=0, atol=0)


@SETTINGS
@given(games(), st.integers(0, 2**16))
def test_sampling_is_symmetric_and_exact_when_the_budget_covers_everything(
        game: PolynomialGame, seed: int) -> None:
    n = game.n_players
    sampled = sii(game, n_samples=2**n, seed=seed)
    torch.testing.assert_close(sampled, sampled.T, rtol=0, atol=0)
    torch.testing.assert_close(sampled, sii(game, method="exact"), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(games(), st.randoms(use_true_random=False))
def test_relabelling_players_relabels_the_values(game: PolynomialGame, rng) -> None:
    """SII(π(i), π(j)) of the relabelled game is SII(i, j) (exact mode)."""
    n = game.n_players
    perm = list(range(n))
    rng.shuffle(perm)
    relabelled = PolynomialGame(n, {tuple(perm[k] for k in key): v
                                    for key, v in game.terms.items()})
    values, moved = sii(game, method="exact"), sii(relabelled, method="exact")
    index = torch.tensor(perm)
    torch.testing.assert_close(moved[index][:, index], values, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(games(min_players=5, max_players=9), st.integers(0, 2**16))
def test_a_dummy_player_gets_zero(game: PolynomialGame, seed: int) -> None:
    """A player in no Möbius term has SII 0 with everyone: exactly in exact mode, and within
    the sampler's own standard errors otherwise."""
    n = game.n_players
    dummy = n  # one more player that no term mentions
    padded = PolynomialGame(n + 1, dict(game.terms))
    assert sii(padded, method="exact")[dummy].abs().max() < 1e-10
    x = torch.ones(1, n + 1, 1, dtype=torch.float64)
    values, err = ShapleyInteractionIndex(padded).attribute(
        x, pairs="all", n_samples=12 * (n + 1), seed=seed, return_stderr=True)
    row, row_err = values[0, dummy], err[0, dummy]
    assert (row.abs() <= 8 * row_err + 1e-9).all(), (row, row_err)


@SETTINGS
@given(games(), games(), st.floats(-2, 2), st.floats(-2, 2), st.integers(0, 2**16))
def test_the_estimate_is_linear_in_the_game(g1: PolynomialGame, g2: PolynomialGame, a: float,
                                            b: float, seed: int) -> None:
    """With the same seed the sampler draws the same coalitions, and everything it does with
    the values (surrogate fit, residuals, sums) is linear in them, for a surrogate with fixed
    features. (The default sparse surrogate chooses its terms from the values, so it is not
    linear in the game.)"""
    n = max(g1.n_players, g2.n_players)
    g1, g2 = PolynomialGame(n, g1.terms), PolynomialGame(n, g2.terms)
    mixed: dict[tuple[int, ...], float] = {}
    for game, weight in ((g1, a), (g2, b)):
        for key, value in game.terms.items():
            mixed[key] = mixed.get(key, 0.0) + weight * value
    budget = 3 * n + 7
    fixed = {"n_samples": budget, "seed": seed, "control_variate": "quadratic"}
    combo = a * sii(g1, **fixed) + b * sii(g2, **fixed)
    torch.testing.assert_close(sii(PolynomialGame(n, mixed), **fixed), combo, rtol=1e-7,
                               atol=1e-7)


@SETTINGS
@given(games(max_players=6))
def test_redundancy_gap_is_symmetric_and_non_negative(game: PolynomialGame) -> None:
    x = torch.ones(1, game.n_players, 1, dtype=torch.float64)
    rg = RedundancyGap(game).attribute(x, pairs="all", method="exact")[0]
    assert (rg >= 0).all()
    torch.testing.assert_close(rg, rg.T, rtol=0, atol=0)
