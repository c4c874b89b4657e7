"""The sampling estimator against exact SII: convergence, standard errors, bias, seeds."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.modes import ControlVariate
from captum_interactions.testing import random_polynomial_game


def _cross_error(estimate: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Relative L2 error per example over the (cross) pairs that exact mode fills."""
    mask = exact != 0
    diff = torch.where(mask, estimate - exact, torch.zeros_like(exact))
    return diff.flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)


@pytest.fixture(scope="module")
def fusion_exact(trained_fusion):
    model, text, image = trained_fusion
    exact = ShapleyInteractionIndex(model).attribute(
        (text, image), target=1, method="exact", perturbations_per_eval=4096
    )
    return model, (text, image), exact


def test_error_shrinks_with_budget_on_trained_model(fusion_exact) -> None:
    model, inputs, exact = fusion_exact
    sii = ShapleyInteractionIndex(model)
    errors = {}
    for budget in (160, 640):
        runs = [
            _cross_error(sii.attribute(inputs, target=1, n_samples=budget, seed=s), exact)
            for s in range(3)
        ]
        errors[budget] = torch.stack(runs).mean().item()
    # 4x the budget: the error must fall clearly (1/sqrt(4) for a plain Monte Carlo rate).
    assert errors[640] < 0.7 * errors[160], errors
    assert errors[640] < 0.5, errors


def test_stderr_covers_the_error_on_trained_model(fusion_exact) -> None:
    model, inputs, exact = fusion_exact
    sii = ShapleyInteractionIndex(model)
    covered, total = 0, 0
    for seed in range(4):
        values, stderr = sii.attribute(inputs, target=1, n_samples=320, seed=seed,
                                       return_stderr=True)
        mask = exact != 0
        err = (values - exact).abs()[mask]
        covered += int((err <= 2.5 * stderr[mask] + 1e-12).sum())
        total += int(mask.sum())
    assert covered / total > 0.85, covered / total


def test_unbiased_over_seeds_on_a_cubic_game() -> None:
    game = random_polynomial_game(9, n_pairs=8, n_triples=6, seed=4)
    x = torch.ones(1, 9, 1, dtype=torch.float64)
    truth = game.sii()
    sii = ShapleyInteractionIndex(game)
    runs, variances = [], []
    for seed in range(24):
        values, stderr = sii.attribute(x, pairs="all", n_samples=60, seed=seed,
                                       control_variate="linear", return_stderr=True)
        runs.append(values[0])
        variances.append(stderr[0] ** 2)
    mean = torch.stack(runs).mean(0)
    se_of_mean = (torch.stack(variances).mean(0) / len(runs)).sqrt()
    off = ~torch.eye(9, dtype=torch.bool)
    z = ((mean - truth).abs() / (se_of_mean + 1e-12))[off]
    # A biased estimator would put many pairs far out; allow the odd 3-sigma excursion.
    assert (z > 4).float().mean() < 0.05, z.max()
    assert (mean - truth)[off].abs().max() < 1.0


@pytest.mark.parametrize("control_variate", get_args(ControlVariate))
@pytest.mark.parametrize("paired", [True, False])
def test_every_option_is_exact_when_the_budget_covers_all_coalitions(
    control_variate: str, paired: bool
) -> None:
    game = random_polynomial_game(7, n_triples=4, seed=1)
    x = torch.ones(2, 7, 1, dtype=torch.float64)
    sii = ShapleyInteractionIndex(game)
    if control_variate == "sparse" and not paired:
        with pytest.raises(ValueError, match="control_variate='sparse' needs paired=True"):
            sii.attribute(x, pairs="all", n_samples=2**7, control_variate="sparse", paired=False)
        return
    values, stderr = sii.attribute(x, pairs="all", n_samples=2**7, control_variate=control_variate,
                                   paired=paired, return_stderr=True)
    torch.testing.assert_close(values[1], game.sii(), atol=1e-9, rtol=0)
    assert torch.all(stderr == 0)


@pytest.mark.parametrize("control_variate", ["sparse", "quadratic", "linear", "none"])
@pytest.mark.parametrize("paired", [True, False])
def test_every_option_converges(control_variate: str, paired: bool) -> None:
    if control_variate == "sparse" and not paired:
        pytest.skip("the sparse surrogate needs paired=True")
    game = random_polynomial_game(10, n_pairs=10, n_triples=4, seed=2)
    x = torch.ones(1, 10, 1, dtype=torch.float64)
    truth = game.sii()
    values, stderr = ShapleyInteractionIndex(game).attribute(
        x, pairs="all", n_samples=900, seed=3, control_variate=control_variate, paired=paired,
        return_stderr=True,
    )
    off = ~torch.eye(10, dtype=torch.bool)
    err = (values[0] - truth).abs()[off]
    assert (err <= 4 * stderr[0][off] + 1e-9).float().mean() > 0.9


def test_pairing_lets_the_quadratic_surrogate_absorb_three_way_terms() -> None:
    # v(T) + v(N∖T) turns each three-way Möbius term into a quadratic one, which the
    # quadratic surrogate absorbs: the error collapses compared with unpaired sampling.
    game = random_polynomial_game(12, n_pairs=12, n_triples=8, seed=5)
    x = torch.ones(1, 12, 1, dtype=torch.float64)
    truth = game.sii()
    sii = ShapleyInteractionIndex(game)
    errors = {}
    for paired in (True, False):
        values = sii.attribute(x, pairs="all", n_samples=1000, seed=0,
                               control_variate="quadratic", paired=paired)
        errors[paired] = ((values[0] - truth).norm() / truth.norm()).item()
    assert errors[True] < 0.02
    assert errors[True] < 0.1 * errors[False], errors


def test_same_seed_same_result_other_seed_other_result(fusion_exact) -> None:
    model, inputs, _ = fusion_exact
    sii = ShapleyInteractionIndex(model)
    a = sii.attribute(inputs, target=1, n_samples=200, seed=7)
    b = sii.attribute(inputs, target=1, n_samples=200, seed=7)
    c = sii.attribute(inputs, target=1, n_samples=200, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_linear_mode_above_quadratic_limit_runs_and_is_finite() -> None:
    game = random_polynomial_game(40, n_pairs=30, n_triples=5, seed=0)
    x = torch.ones(1, 40, 1, dtype=torch.float64)
    values, stderr = ShapleyInteractionIndex(game).attribute(
        x, pairs="all", n_samples=3000, return_stderr=True
    )
    truth = game.sii()
    off = ~torch.eye(40, dtype=torch.bool)
    assert torch.isfinite(values).all() and (stderr[0][off] > 0).all()
    err = (values[0] - truth).abs()[off]
    assert (err <= 4 * stderr[0][off]).float().mean() > 0.9


def test_many_players_do_not_overflow_the_size_plan() -> None:
    # C(130, 65) does not fit in int64 and 1 / C(n, t) must not be formed from a huge int.
    x = torch.ones(1, 130, 1)
    values = ShapleyInteractionIndex(lambda t: t[..., 0].sum(1)).attribute(
        x, pairs="all", n_samples=3 * 130
    )
    # An additive game has no interactions at all.
    assert values.abs().max().item() < 1e-6


@pytest.mark.parametrize(("control_variate", "players", "budget", "tolerance"), [
    ("quadratic", 24, 2048, (1e-9, 1e-12)),  # ~276 unknowns per system
    ("sparse", 40, 4096, (1e-7, 1e-9)),  # ~500 unknowns per system
])
def test_same_result_at_any_thread_count(control_variate: str, players: int, budget: int,
                                         tolerance: tuple[float, float]) -> None:
    """The surrogates' systems are solved by Cholesky: torch 2.13's batched LU solve fails on
    CPU above one thread at these sizes. The conftest fixture restores the thread count."""
    game = random_polynomial_game(players, seed=0)
    x = torch.ones(1, players, 1)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs.append(ShapleyInteractionIndex(game).attribute(
            x, pairs="all", n_samples=budget, seed=0, control_variate=control_variate))
    torch.testing.assert_close(runs[1], runs[0], rtol=tolerance[0], atol=tolerance[1])
    assert torch.isfinite(runs[0]).all()
