"""Adaptive budgets (n_samples="auto") against exact SII from the games' closed forms."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.estimators.sii_adaptive import checkpoints, unit_schedule
from captum_interactions.testing import PolynomialGame, random_polynomial_game

N = 12
OFF = ~torch.eye(N, dtype=torch.bool)


def _game() -> PolynomialGame:
    # Cubic: with the linear surrogate the residual keeps pair and three-way terms, so the
    # standard errors are far from zero and fall with the rows.
    return random_polynomial_game(N, n_pairs=12, n_triples=6, seed=3)


def _x(batch: int = 1) -> torch.Tensor:
    return torch.ones(batch, N, 1, dtype=torch.float64)


def _auto(game: Any, **kwargs: Any) -> Any:
    options = {"pairs": "all", "n_samples": "auto", "seed": 0, "control_variate": "linear"}
    return ShapleyInteractionIndex(game).explain(_x(), **{**options, **kwargs})


def _max_stderr(result: Any) -> float:
    return float(result.stderr[0][OFF].max())


@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_stops_at_the_first_check_that_meets_the_target(scale: str) -> None:
    game = _game()
    target = 0.3 if scale == "absolute" else 0.1
    result = _auto(game, target_stderr=target, stderr_scale=scale, initial_samples=64)
    s = result.settings
    bound = target * (float(result.values[0][OFF].abs().max()) if scale == "relative" else 1.0)
    assert s["target_met"] == [True] and s["checks"] >= 2
    assert _max_stderr(result) <= bound and s["max_stderr"][0] <= bound
    # The check before it did not meet the target: the run stopped as early as it could.
    earlier = checkpoints(64, 10**6)[s["checks"] - 2]
    with pytest.warns(RuntimeWarning, match="max_samples"):
        short = _auto(game, target_stderr=target, stderr_scale=scale, initial_samples=64,
                      max_samples=earlier)
    assert short.settings["target_met"] == [False]


def test_max_samples_caps_the_rows_and_says_the_target_was_missed() -> None:
    game = _game()
    with pytest.warns(RuntimeWarning, match=r"max_samples=300.*target_stderr"):
        result = _auto(game, target_stderr=1e-6, max_samples=300)
    assert result.settings["target_met"] == [False]
    assert result.settings["n_samples_used"][0] <= 300
    assert game.n_rows == result.settings["n_samples_used"][0]


def test_rows_are_evaluated_once_and_reported() -> None:
    game = _game()
    game.n_calls = game.n_rows = 0
    result = _auto(game, target_stderr=0.2, initial_samples=64, perturbations_per_eval=50)
    used = result.settings["n_samples_used"][0]
    assert result.settings["checks"] >= 3  # several blocks, each reusing the rows before it
    assert game.n_rows == used  # every forward row once: nothing re-evaluated per check
    assert used <= checkpoints(64, 2**16)[result.settings["checks"] - 1]


def test_same_seed_same_result_at_any_perturbations_per_eval() -> None:
    game = _game()
    runs = [_auto(game, target_stderr=0.2, initial_samples=64, perturbations_per_eval=ppe)
            for ppe in (7, 256)]
    assert torch.equal(runs[0].values, runs[1].values)
    assert torch.equal(runs[0].stderr, runs[1].stderr)
    assert runs[0].settings["n_samples_used"] == runs[1].settings["n_samples_used"]
    other = _auto(game, target_stderr=0.2, initial_samples=64, seed=1)
    assert not torch.equal(other.values, runs[0].values)


def test_stopped_estimate_equals_the_run_capped_at_the_same_rows() -> None:
    # The estimate depends on the rows used only, not on the checks that led there.
    game = _game()
    stopped = _auto(game, target_stderr=0.2, initial_samples=64)
    rows = checkpoints(64, 2**16)[stopped.settings["checks"] - 1]
    with pytest.warns(RuntimeWarning, match="max_samples"):
        capped = _auto(game, target_stderr=1e-9, max_samples=rows, initial_samples=64)
    assert torch.equal(stopped.values, capped.values)
    assert torch.equal(stopped.main_effects, capped.main_effects)


def test_estimate_is_within_a_few_stderr_of_the_exact_values() -> None:
    game = _game()
    truth = game.sii()
    covered, total = 0, 0
    for seed in range(3):
        result = _auto(game, target_stderr=0.1, seed=seed)
        err = (result.values[0] - truth).abs()[OFF]
        covered += int((err <= 4 * result.stderr[0][OFF] + 1e-9).sum())
        total += err.numel()
        assert float(err.max()) < 6 * 0.1
    assert covered / total > 0.9


def test_main_effects_come_from_the_same_rows() -> None:
    game = _game()
    result = _auto(game, target_stderr=0.2, initial_samples=64)
    shapley = torch.zeros(N, dtype=torch.float64)  # Σ_T m(T)/|T| over T ∋ i
    for key, value in game.terms.items():
        for i in key:
            shapley[i] += value / len(key)
    err = (result.main_effects[0] - shapley).abs()
    assert bool((err <= 4 * result.main_stderr[0] + 1e-9).all())


def test_a_batch_stops_when_every_example_meets_the_target() -> None:
    game = _game()
    scales = torch.tensor([1.0, 4.0], dtype=torch.float64)

    def forward(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return game(x) * scale

    result = ShapleyInteractionIndex(forward).explain(
        _x(2), additional_forward_args=(scales,), pairs="all", n_samples="auto",
        target_stderr=0.3, control_variate="linear", initial_samples=64)
    s = result.settings
    assert s["target_met"] == [True, True] and s["n_samples_used"][0] == s["n_samples_used"][1]
    # Example 1 is example 0 times 4: it alone decides when the run stops.
    torch.testing.assert_close(torch.tensor(s["max_stderr"][1]),
                               4 * torch.tensor(s["max_stderr"][0]))
    assert s["max_stderr"][1] <= 0.3 < 4 * s["max_stderr"][1]


def test_topk_stops_on_the_true_top_pairs() -> None:
    terms: dict[tuple[int, ...], float] = {(i,): 0.5 * (i - 5) for i in range(N)}
    terms.update({(0, 7): 4.0, (2, 9): -3.0, (4, 11): 2.0, (1, 3): 0.2, (5, 6): -0.1})
    terms.update({(1, 5, 8): 0.3, (3, 6, 10): -0.2})
    game = PolynomialGame(N, terms)
    truth = game.sii()
    result = _auto(game, stop_when="topk", top_k=3, initial_samples=64)
    assert result.settings["target_met"] == [True]
    assert result.settings["topk_separation"][0] >= 2.0
    found = {(p.first, p.second) for p in result.top_pairs(3, order="magnitude")}
    upper = torch.triu(truth.abs(), 1).flatten()
    best = {divmod(int(k), N) for k in upper.topk(3).indices}
    assert found == best == {(0, 7), (2, 9), (4, 11)}


def test_fixed_budget_settings_are_unchanged() -> None:
    result = ShapleyInteractionIndex(_game()).explain(_x(), pairs="all", n_samples=256)
    assert "n_samples_used" not in result.settings and "target_stderr" not in result.settings


def test_schedule_is_prefix_stable_and_neyman_like() -> None:
    weights = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    long = unit_schedule(weights, 600)
    for m in (1, 3, 4, 17, 250):
        assert torch.equal(unit_schedule(weights, m), long[:m])
    counts = torch.bincount(long, minlength=3).double()
    torch.testing.assert_close(counts / counts.sum(), weights / weights.sum(), atol=0.01,
                               rtol=0)
    assert checkpoints(100, 1000) == [100, 200, 400, 800, 1000]


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"n_samples": "many"}, ValueError, "n_samples"),
    ({"n_samples": "auto"}, ValueError, "target_stderr"),
    ({"n_samples": 512, "target_stderr": 0.1}, ValueError, "target_stderr"),
    ({"n_samples": 512, "max_samples": 4096}, ValueError, "max_samples"),
    ({"n_samples": 512, "stop_when": "topk"}, ValueError, "stop_when"),
    ({"n_samples": 512, "stderr_scale": "relative"}, ValueError, "stderr_scale"),
    ({"n_samples": 512, "initial_samples": 64}, ValueError, "initial_samples"),
    ({"n_samples": "auto", "target_stderr": 0.0}, ValueError, "target_stderr"),
    ({"n_samples": "auto", "target_stderr": -0.1}, ValueError, "target_stderr"),
    ({"n_samples": "auto", "target_stderr": float("nan")}, ValueError, "target_stderr"),
    ({"n_samples": "auto", "target_stderr": "0.1"}, TypeError, "target_stderr"),
    ({"n_samples": "auto", "target_stderr": 0.1, "stderr_scale": "percent"}, ValueError,
     "stderr_scale"),
    ({"n_samples": "auto", "target_stderr": 0.1, "max_samples": 20}, ValueError,
     "max_samples"),
    ({"n_samples": "auto", "target_stderr": 0.1, "max_samples": 0}, ValueError, "max_samples"),
    ({"n_samples": "auto", "target_stderr": 0.1, "max_samples": 2.5}, TypeError,
     "max_samples"),
    ({"n_samples": "auto", "target_stderr": 0.1, "initial_samples": 20}, ValueError,
     "initial_samples"),
    ({"n_samples": "auto", "target_stderr": 0.1, "initial_samples": 5000,
      "max_samples": 4096}, ValueError, "initial_samples"),
    ({"n_samples": "auto", "target_stderr": 0.1, "stop_when": "rank"}, ValueError,
     "stop_when"),
    ({"n_samples": "auto", "target_stderr": 0.1, "top_k": 3}, ValueError, "top_k"),
    ({"n_samples": "auto", "stop_when": "topk"}, ValueError, "top_k"),
    ({"n_samples": "auto", "stop_when": "topk", "top_k": 0}, ValueError, "top_k"),
    ({"n_samples": "auto", "stop_when": "topk", "top_k": 66}, ValueError, "top_k"),
    ({"n_samples": "auto", "stop_when": "topk", "top_k": 3, "target_stderr": 0.1},
     ValueError, "target_stderr"),
    ({"n_samples": "auto", "stop_when": "topk", "top_k": 3, "stderr_scale": "relative"},
     ValueError, "stderr_scale"),
    ({"n_samples": "auto", "target_stderr": 0.1, "method": "exact"}, ValueError, "method"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD,
                         ids=[repr(sorted(k.items())) for k, _, _ in BAD])
def test_bad_budget_arguments_are_refused_before_any_model_call(
        kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    game = _game()
    with pytest.raises(error, match=name), warnings.catch_warnings():
        warnings.simplefilter("error")
        ShapleyInteractionIndex(game).attribute(_x(), pairs="all", **kwargs)
    assert game.n_calls == 0
