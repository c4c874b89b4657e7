"""The model-game seam: ModelGame / model_game, the budget it enforces, the shapiq adapter,
RG reusing SII, and strict argument types at the public boundary."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch
from oracles import value_of_model

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.modes import ControlVariate, Method
from captum_interactions.perturbation import model_game
from captum_interactions.testing import PolynomialGame, random_polynomial_game
from captum_interactions.validation import check_choice


def two_tower(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """(B, 3, 2), (B, 2, 2) -> (B, 2): a product of modality sums plus a linear term."""
    t, i = text.sum((1, 2)), image.sum((1, 2))
    return torch.stack([t * i + t, t - 2 * i], dim=1)


def inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 2, generator=gen, dtype=torch.float64),
            torch.randn(batch, 2, 2, generator=gen, dtype=torch.float64))


def members(row: list[bool]) -> frozenset[int]:
    return frozenset(i for i, present in enumerate(row) if present)


def test_game_values_match_the_definition() -> None:
    """v_b(S) of every coalition equals the model on the input with the absent players set
    to the baseline (oracle: tests/oracles.py, straight from the definition)."""
    x = inputs()
    codes = torch.arange(2**5)
    present = ((codes.unsqueeze(1) >> torch.arange(5)) & 1).bool()  # (32, 5)
    with model_game(two_tower, x, target=0, perturbations_per_eval=7) as game:
        assert (game.n_players, game.n_examples) == (5, 2)
        with game.budget(32, desc="all coalitions"):
            values = game.evaluate(present)
        assert game.output_dtype == torch.float64 and game.rows_evaluated == 32
    for b in range(2):
        oracle = value_of_model(two_tower, x, b, target=0)
        expected = torch.tensor([oracle(members(row.tolist())) for row in present],
                                dtype=torch.float64)
        torch.testing.assert_close(values[:, b], expected, rtol=0, atol=1e-12)


def test_chunks_never_split_a_unit_and_bound_the_forward_batch() -> None:
    rows: list[int] = []

    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        rows.append(text.shape[0])
        return two_tower(text, image)

    game = model_game(model, inputs(), target=1, perturbations_per_eval=5)
    ones = torch.ones(12, 5, dtype=torch.bool)
    starts = [(c.start, c.stop, c.present.shape[0])
              for c in game.chunks(6, lambda a, b: ones[2 * a : 2 * b], rows_per_unit=2)]
    assert starts == [(0, 2, 4), (2, 4, 4), (4, 6, 4)]  # 5 // 2 = 2 units per call
    assert max(rows) <= 5 * 2


def test_budget_is_enforced_before_the_forward_call() -> None:
    calls: list[int] = []

    def model(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        calls.append(text.shape[0])
        return two_tower(text, image)

    game = model_game(model, inputs(), target=0)
    present = torch.ones(3, 5, dtype=torch.bool)
    with game.budget(2, desc="too small"), pytest.raises(RuntimeError, match="beyond its budget"):
        game.evaluate(present)
    assert calls == []
    with game.budget(3, desc="enough"):
        game.evaluate(present)
        with pytest.raises(RuntimeError, match="already open"), game.budget(1, desc="nested"):
            pass


def test_output_dtype_is_known_only_after_a_forward_and_closed_games_refuse() -> None:
    game = model_game(lambda t, i: two_tower(t, i).float(), inputs(), target=0)
    with pytest.raises(RuntimeError, match="after the first evaluation"):
        _ = game.output_dtype
    with game:
        game.evaluate(torch.ones(1, 5, dtype=torch.bool))
    assert game.output_dtype == torch.float32
    with pytest.raises(RuntimeError, match="closed"):
        game.evaluate(torch.ones(1, 5, dtype=torch.bool))


def test_bad_coalitions_and_chunk_bounds() -> None:
    game = model_game(two_tower, inputs(), target=0)
    with pytest.raises(ValueError, match=r"coalitions must be a bool tensor \(R, 5\)"):
        game.evaluate(torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor"):
        game.evaluate(torch.ones(2, 5))
    with pytest.raises(ValueError, match="not both"):
        model_game(two_tower, inputs(), perturbations_per_eval=2, max_rows_per_eval=8)
    with pytest.raises(ValueError, match=r"max_rows_per_eval=1 is smaller than the batch size 2"):
        model_game(two_tower, inputs(), max_rows_per_eval=1)
    with pytest.raises(ValueError, match="built without pairs"):
        _ = game.requested_pairs


def test_shapiq_adapter_is_the_game_of_one_example() -> None:
    x = inputs(batch=1)
    game = model_game(two_tower, x, target=0).as_shapiq_game()
    coalitions = np.array([[True, False, True, False, True], [False] * 5])
    values = game(coalitions)
    oracle = value_of_model(two_tower, x, 0, target=0)
    assert values.dtype == np.float64 and game.n_players == 5
    np.testing.assert_allclose(values, [oracle(frozenset({0, 2, 4})), oracle(frozenset())],
                               atol=1e-12)
    with pytest.raises(ValueError, match="one example"):
        model_game(two_tower, inputs(batch=2), target=0).as_shapiq_game()


def test_rg_candidates_from_given_sii_equal_the_internal_pass_and_skip_it() -> None:
    """candidates=k with sii= picks the same pairs as RG's own SII pass on the same game (same
    budget and seed), so the values agree exactly, and costs only RG's rows."""
    game = random_polynomial_game(10, seed=3)  # 2^10 > 512: really sampled
    x = torch.ones(2, 10, 1)
    kwargs = dict(pairs="all", n_samples=512, seed=1, candidates=4)
    game.n_rows = 0
    internal = RedundancyGap(game).attribute(x, **kwargs)
    rows_with_sii = game.n_rows
    sii = ShapleyInteractionIndex(game).attribute(x, pairs="all", n_samples=512, seed=1)
    game.n_rows = 0
    given = RedundancyGap(game).attribute(x, sii=sii, **kwargs)
    assert torch.equal(given, internal)
    assert game.n_rows <= 2 * 512 < rows_with_sii  # 2 examples x at most n_samples rows
    assert int((given != 0).sum()) <= 2 * 2 * 4  # only the 4 candidates per example


def test_rg_sii_argument_errors() -> None:
    game = random_polynomial_game(5, seed=0)
    x = torch.ones(1, 5, 1)
    rg = RedundancyGap(game)
    with pytest.raises(ValueError, match="sii is only used to choose candidates"):
        rg.attribute(x, pairs="all", sii=torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match=r"sii has shape \(1, 4, 4\); expected \(B, F, F\)"):
        rg.attribute(x, pairs="all", candidates=2, sii=torch.zeros(1, 4, 4))
    with pytest.raises(TypeError, match=r"sii must be a torch\.Tensor"):
        rg.attribute(x, pairs="all", candidates=2, sii=[[0.0]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        rg.attribute(x, pairs="all", candidates=2, sii=torch.full((1, 5, 5), float("nan")))
    assert game.n_calls == 0


@pytest.mark.parametrize(("option", "value"), [("show_progress", "no"),
                                               ("return_stderr", "no"), ("paired", 1)])
def test_booleans_are_strict(option: str, value: object) -> None:
    game = PolynomialGame(4, {(0, 1): 1.0})
    with pytest.raises(TypeError, match=rf"{option} must be a bool"):
        ShapleyInteractionIndex(game).attribute(torch.ones(1, 4, 1), pairs="all",
                                                **{option: value})
    with pytest.raises(TypeError, match=r"return_stderr must be a bool"):
        RedundancyGap(game).attribute(torch.ones(1, 4, 1), pairs="all", return_stderr="yes")
    assert game.n_calls == 0


def test_modes_come_from_their_literal_types() -> None:
    assert check_choice("method", "exact", Method) == "exact"
    with pytest.raises(TypeError, match=r"method must be one of \('sampling', 'exact'\)"):
        check_choice("method", 2, Method)
    with pytest.raises(ValueError, match="control_variate must be one of"):
        check_choice("control_variate", "cubic", ControlVariate)
    assert get_args(ControlVariate)[0] == "auto"


def test_a_model_left_in_training_mode_is_warned_about() -> None:
    """Dropout in train() mode makes every forward call another random model."""
    import functools
    import warnings

    from captum_interactions.testing import TinyFusionTransformer

    class Dropped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
            return self.drop(text).sum((1, 2)) * image.sum((1, 2))

    text, image = torch.randn(2, 3, 2), torch.randn(2, 2, 2)
    model = Dropped()
    for wrapped in (model, lambda t, i: model(t, i), functools.partial(model.forward)):
        with pytest.warns(RuntimeWarning, match=r"Dropped is in training mode.*model.eval\(\)"):
            model_game(wrapped, (text, image))
    model.eval()
    plain = TinyFusionTransformer(hidden=4, n_classes=2)  # no dropout: train() is harmless
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model_game(model, (text, image))
        model_game(lambda t, i: plain(t, i), (torch.randn(2, 3, 4), torch.randn(2, 2, 4)),
                   target=0)
