"""Redundancy Gap against the two-player table, brute force, and its own exact mode."""

from __future__ import annotations

import pytest
import torch
from oracles import brute_rg, value_of_model

from captum_interactions import RedundancyGap
from captum_interactions.testing import PolynomialGame, TableGame

TWO_PLAYER_GAMES = {  # v(∅), v(i), v(j), v(ij) -> RG
    "or_backups": ([0.0, 1.0, 1.0, 1.0], 1.0),
    "and_complements": ([0.0, 0.0, 0.0, 1.0], 0.0),
    "additive": ([0.0, 0.7, 2.5, 3.2], 0.0),
    "partial_backup": ([0.0, 1.0, 0.5, 1.0], 0.5),
}


@pytest.mark.parametrize("name", sorted(TWO_PLAYER_GAMES))
@pytest.mark.parametrize(("method", "context"),
                         [("exact", "sampled"), ("sampling", "full"), ("sampling", "sampled")])
def test_two_player_table(name: str, method: str, context: str) -> None:
    table, expected = TWO_PLAYER_GAMES[name]
    values = RedundancyGap(TableGame(table)).attribute(
        torch.ones(1, 2, 1, dtype=torch.float64), pairs="all", method=method, context=context,
        n_samples=16,
    )
    # With two players S is always empty, so even the sampled estimate is exact.
    assert values[0, 0, 1].item() == pytest.approx(expected, abs=1e-12)
    assert values[0, 1, 0].item() == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def neural_model():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(5 * 2, 12), torch.nn.ReLU(), torch.nn.Linear(12, 2))
    net.double()

    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([text, image], 1).flatten(1))

    text = torch.randn(2, 3, 2, dtype=torch.float64)
    image = torch.randn(2, 2, 2, dtype=torch.float64)
    return model, (text, image)


@pytest.mark.parametrize("context", ["sampled", "full"])
def test_matches_brute_force_on_a_neural_model(neural_model, context: str) -> None:
    model, inputs = neural_model
    method = "exact" if context == "sampled" else "sampling"
    values = RedundancyGap(model).attribute(inputs, target=0, pairs="all", context=context,
                                            method=method, n_samples=64)
    for example in range(2):
        value = value_of_model(model, inputs, example, target=0)
        for i in range(5):
            for j in range(i + 1, 5):
                assert values[example, i, j].item() == pytest.approx(
                    brute_rg(value, 5, i, j, context), abs=1e-10
                )


def test_sampled_estimate_converges_to_exact_within_stderr(neural_model) -> None:
    model, inputs = neural_model
    rg = RedundancyGap(model)
    exact = rg.attribute(inputs, target=0, pairs="all", method="exact")
    values, stderr = rg.attribute(inputs, target=0, pairs="all", n_samples=4000, seed=0,
                                  return_stderr=True)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1).expand(2, -1, -1)
    err = (values - exact).abs()[mask]
    assert (err <= 4 * stderr[mask] + 1e-9).all()
    assert (values - exact).abs().max() < 0.1 * exact.abs().max() + 1e-6


def test_backup_pair_is_found_and_synergy_pair_is_not() -> None:
    # Players 0 and 3 are backups (OR), 1 and 4 are complements (AND), 2 and 5 additive.
    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        t, i = text[..., 0] != 0, image[..., 0] != 0
        backup = (t[:, 0] | i[:, 0]).double() * 2.0
        synergy = (t[:, 1] & i[:, 1]).double() * 3.0
        return backup + synergy + t[:, 2].double() + i[:, 2].double()

    inputs = (torch.ones(1, 3, 1, dtype=torch.float64), torch.ones(1, 3, 1, dtype=torch.float64))
    values = RedundancyGap(model).attribute(inputs, n_samples=900, seed=0)
    assert values[0, 0, 3].item() == pytest.approx(2.0)  # RG of an OR pair = its value
    assert values[0, 1, 4].item() == 0.0
    assert values[0, 2, 5].item() == 0.0


def test_candidates_are_the_most_negative_sii_pairs() -> None:
    terms = {(0,): 1.0, (4,): 1.0, (0, 4): -1.0, (1,): 0.5, (5,): 0.5, (1, 5): -0.2,
             (2, 6): 2.0, (3,): 0.3}
    game = PolynomialGame(8, terms)

    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return game(torch.cat([text, image], 1))

    inputs = (torch.ones(1, 4, 1, dtype=torch.float64), torch.ones(1, 4, 1, dtype=torch.float64))
    values = RedundancyGap(model).attribute(inputs, candidates=2, n_samples=400,
                                            sii_n_samples=256, seed=0)
    nonzero = {tuple(p) for p in torch.nonzero(torch.triu(values[0] != 0)).tolist()}
    # (0, 4) and (1, 5) have SII -1 and -0.2: the two candidates; (0, 4) is an exact OR pair.
    assert nonzero <= {(0, 4), (1, 5)}
    assert values[0, 0, 4].item() == pytest.approx(1.0)


def test_rg_is_nonnegative_and_symmetric(neural_model) -> None:
    model, inputs = neural_model
    values = RedundancyGap(model).attribute(inputs, target=1, n_samples=512, seed=3)
    assert (values >= 0).all()
    torch.testing.assert_close(values, values.transpose(1, 2))
    assert torch.all(values.diagonal(dim1=1, dim2=2) == 0)
