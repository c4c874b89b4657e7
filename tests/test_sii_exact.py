"""Exact SII against closed forms: the two-player table, Möbius coefficients, brute force."""

from __future__ import annotations

import pytest
import torch
from oracles import brute_sii, value_of_model

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.testing import PolynomialGame, TableGame, random_polynomial_game

TWO_PLAYER_GAMES = {  # v(∅), v(i), v(j), v(ij) -> SII
    "or_backups": ([0.0, 1.0, 1.0, 1.0], -1.0),
    "and_complements": ([0.0, 0.0, 0.0, 1.0], 1.0),
    "additive": ([0.0, 0.7, 2.5, 3.2], 0.0),
    "partial_backup": ([0.0, 1.0, 0.5, 1.0], -0.5),
}


@pytest.mark.parametrize("name", sorted(TWO_PLAYER_GAMES))
def test_two_player_table(name: str) -> None:
    table, expected = TWO_PLAYER_GAMES[name]
    game = TableGame(table)
    values = ShapleyInteractionIndex(game).attribute(
        torch.ones(1, 2, 1, dtype=torch.float64), pairs="all", method="exact"
    )
    assert values[0, 0, 1].item() == pytest.approx(expected, abs=1e-12)
    assert values[0, 1, 0].item() == pytest.approx(expected, abs=1e-12)
    assert values[0, 0, 0].item() == 0.0


def test_polynomial_game_matches_moebius_formula() -> None:
    game = PolynomialGame(
        6, {(0,): 1.0, (1,): -2.0, (0, 1): 1.5, (2, 3): -0.5, (0, 1, 2): 2.0, (1, 3, 4, 5): 3.0}
    )
    values = ShapleyInteractionIndex(game).attribute(
        torch.ones(1, 6, 1, dtype=torch.float64), pairs="all", method="exact"
    )
    expected = game.sii()
    # Spot-check the closed form itself: pair (0, 1) gets 1.5 + 2.0 / 2.
    assert expected[0, 1].item() == pytest.approx(2.5)
    assert expected[1, 3].item() == pytest.approx(1.0)
    torch.testing.assert_close(values[0], expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_polynomial_game_with_three_way_terms(seed: int) -> None:
    game = random_polynomial_game(10, n_pairs=8, n_triples=5, seed=seed)
    values = ShapleyInteractionIndex(game).attribute(
        torch.ones(1, 10, 1, dtype=torch.float64), pairs="all", method="exact",
        perturbations_per_eval=100,
    )
    torch.testing.assert_close(values[0], game.sii(), atol=1e-9, rtol=0)


def test_exact_matches_brute_force_on_a_neural_model() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5 * 3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([text, image], 1).flatten(1))

    text = torch.randn(2, 3, 3, dtype=torch.float64)
    image = torch.randn(2, 2, 3, dtype=torch.float64)
    net.double()
    values = ShapleyInteractionIndex(model).attribute((text, image), target=2, method="exact",
                                                      pairs="all")
    for example in range(2):
        value = value_of_model(model, (text, image), example, target=2)
        for i, j in [(0, 3), (1, 4), (0, 1), (2, 3)]:
            assert values[example, i, j].item() == pytest.approx(
                brute_sii(value, 5, i, j), abs=1e-10
            )


def test_cross_pairs_only_fill_cross_entries() -> None:
    game = random_polynomial_game(6, seed=3)
    text = torch.ones(1, 4, 1, dtype=torch.float64)
    image = torch.ones(1, 2, 1, dtype=torch.float64)

    def model(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return game(torch.cat([t, i], 1))

    values = ShapleyInteractionIndex(model).attribute((text, image), method="exact")[0]
    expected = game.sii()
    torch.testing.assert_close(values[:4, 4:], expected[:4, 4:], atol=1e-10, rtol=0)
    assert torch.all(values[:4, :4] == 0) and torch.all(values[4:, 4:] == 0)
    torch.testing.assert_close(values, values.T)
