"""captum_interactions: bad inputs that used to pass silently, hang or fail unclearly now get
a clear error (or a warning) before any forward call or large allocation."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from captum_interactions import (
    RedundancyGap,
    ShapleyInteractionIndex,
    group_mask,
    patch_grid_mask,
)
from captum_interactions.metrics import PairMaskingFaithfulness, topk_masking
from captum_interactions.testing import random_polynomial_game


class Counting(torch.nn.Module):
    """sum over tokens of (text, image) -> (B, 2), counting forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.n_calls = 0

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        self.n_calls += 1
        t, i = text.sum((1, 2)), image.sum((1, 2))
        return torch.stack([t * i, t + i], dim=1)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 2, generator=gen), torch.randn(2, 2, 2, generator=gen)


# ------------------------------------------------------------------ outputs of the model


def test_complex_outputs_are_refused() -> None:
    def model(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return torch.complex(t.sum((1, 2)), i.sum((1, 2)))

    with pytest.raises(TypeError, match="complex values"):
        ShapleyInteractionIndex(model).attribute(batch(), n_samples=32)


def test_an_output_dtype_that_changes_between_calls_is_refused() -> None:
    calls = []

    def model(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        out = t.sum((1, 2)) + i.sum((1, 2))
        return out if len(calls) == 1 else out.double()

    with pytest.raises(TypeError, match=r"returned torch.float64 after returning torch.float32"):
        ShapleyInteractionIndex(model).attribute(batch(), n_samples=32,
                                                 perturbations_per_eval=2)


def test_presence_removal_needs_the_keyword_before_any_call() -> None:
    model = Counting()
    with pytest.raises(TypeError, match=r"takes no 'presence' argument.*by baselines"):
        ShapleyInteractionIndex(model).attribute(batch(), target=0, removal="presence")
    assert model.n_calls == 0


def test_a_model_that_ignores_presence_is_flagged() -> None:
    """It accepts **kwargs but never reads presence: every SII would be ~0."""

    def model(text: torch.Tensor, image: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return text.sum((1, 2)) * image.sum((1, 2))

    with pytest.warns(RuntimeWarning, match="does not use the 'presence' keyword"):
        values = ShapleyInteractionIndex(model).attribute(batch(), removal="presence",
                                                          n_samples=32)
    assert values.abs().max() < 1e-9


# ------------------------------------------------------------------ inputs and baselines


def test_a_model_on_another_device_than_the_inputs() -> None:
    model = torch.nn.Linear(2, 1).to("meta")
    with pytest.raises(ValueError, match=r"parameters are on meta but the inputs are on cpu"):
        ShapleyInteractionIndex(model).attribute(torch.ones(1, 3, 2), pairs="all")


def test_meta_and_non_finite_inputs() -> None:
    text, image = batch()
    with pytest.raises(ValueError, match="meta tensors"):
        ShapleyInteractionIndex(Counting()).attribute((text.to("meta"), image.to("meta")))
    image[1, 0, 1] = float("nan")
    model = Counting()
    with pytest.raises(ValueError, match=r"inputs\[1\] holds NaN or Inf \(e\.g\. at index "
                                         r"\[1, 0, 1\]\)"):
        ShapleyInteractionIndex(model).attribute((text, image), target=0)
    assert model.n_calls == 0


def test_baselines_numbers_numpy_and_bad_values() -> None:
    text, image = batch()
    sii = ShapleyInteractionIndex(Counting())
    reference = sii.attribute((text, image), target=0, baselines=0.5, method="exact")
    for numpy_baseline in (np.float32(0.5), np.float64(0.5), np.array(0.5)):
        same = sii.attribute((text, image), target=0, baselines=numpy_baseline,
                             method="exact")
        torch.testing.assert_close(same, reference)
    with pytest.raises(ValueError, match=r"baselines\[0\] holds NaN or Inf"):
        sii.attribute((text, image), target=0, baselines=(float("nan"), 0.0))
    with pytest.raises(TypeError, match=r"baselines\[1\] must be a real number or a real "
                                        r"tensor, got str"):
        sii.attribute((text, image), target=0, baselines=(0.0, "zero"))


def test_a_float_baseline_on_integer_ids_is_not_truncated() -> None:
    ids = torch.tensor([[3, 5, 7, 9]])

    def model(tokens: torch.Tensor) -> torch.Tensor:
        return (tokens == 5).double() @ torch.ones(4, dtype=torch.float64)

    with pytest.raises(ValueError, match=r"non-integer values but inputs\[0\] has dtype "
                                         r"torch\.int64"):
        ShapleyInteractionIndex(model).attribute(ids, baselines=0.5, pairs="all")
    values = ShapleyInteractionIndex(model).attribute(ids, baselines=0, pairs="all",
                                                      method="exact")
    assert values.shape == (1, 4, 4)


def test_mask_helpers_refuse_non_integers() -> None:
    with pytest.raises(TypeError, match=r"group_sizes\[0\] must be an int, got float 2\.5"):
        group_mask([2.5, 1.7])
    with pytest.raises(TypeError, match="group_sizes must be a sequence"):
        group_mask("23")
    with pytest.raises(ValueError, match=r"group_sizes\[1\] must be >= 1"):
        group_mask([2, 0])
    with pytest.raises(TypeError, match="patch_size must be an int"):
        patch_grid_mask(4, 4, 2.0)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        patch_grid_mask(4, 4, 2, offset=-1)


# ------------------------------------------------------------------ cost before allocation


def test_a_stray_large_player_id_is_refused_before_allocation() -> None:
    text, image = batch()
    mask = (torch.tensor([[[0], [1], [200_000]]]), torch.tensor([[[3], [4]]]))
    model = Counting()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"F = 200001 players.*largest id is 200000.*limit"):
        ShapleyInteractionIndex(model).attribute((text, image), target=0, feature_mask=mask)
    assert model.n_calls == 0 and time.perf_counter() - start < 5


def test_budgets_beyond_any_need_are_refused_or_capped() -> None:
    game = random_polynomial_game(40, seed=0)
    x = torch.ones(1, 40, 1)
    with pytest.raises(TypeError, match="n_samples must be an int, got float"):
        ShapleyInteractionIndex(game).attribute(x, n_samples=1e10, pairs="all")
    with pytest.raises(ValueError, match=r"n_samples=10000000000 exceeds the limit"):
        ShapleyInteractionIndex(game).attribute(x, n_samples=10**10, pairs="all")
    with pytest.raises(ValueError, match=r"SII sampling of B = 1 example.*needs about .*GiB"):
        ShapleyInteractionIndex(game).attribute(x, n_samples=2**31, pairs="all")
    assert game.n_calls == 0


def test_rg_with_a_budget_beyond_enumeration_is_exact_and_fast() -> None:
    """F = 5: 10^11 rows would take days; 2^5 = 32 coalitions give the exact value."""
    game = random_polynomial_game(5, seed=1)
    x = torch.ones(1, 5, 1)
    start = time.perf_counter()
    capped = RedundancyGap(game).attribute(x, pairs="all", n_samples=10**9)
    assert time.perf_counter() - start < 10 and game.n_rows == 32
    exact = RedundancyGap(game).attribute(x, pairs="all", method="exact")
    torch.testing.assert_close(capped, exact, rtol=0, atol=0)


def test_metric_repeats_beyond_memory_are_refused() -> None:
    text, image = batch()
    model = Counting()
    scores = torch.rand(2, 5, 5)
    with pytest.raises(ValueError, match=r"Pair masking of B = 2 example.*Lower n_random"):
        PairMaskingFaithfulness(model).evaluate((text, image), scores, budgets=(1,),
                                                n_random=10**9, target=0)
    with pytest.raises(ValueError, match=r"Top-K% masking .*Lower n_random"):
        topk_masking(model, (text, image), torch.rand(2, 5), target=0, n_random=10**9)
    assert model.n_calls == 0


@pytest.mark.parametrize("option", ["show_progress", "descending"])
def test_metric_booleans_are_strict(option: str) -> None:
    text, image = batch()
    with pytest.raises(TypeError, match=rf"{option} must be a bool"):
        PairMaskingFaithfulness(Counting()).evaluate(
            (text, image), torch.rand(2, 5, 5), budgets=(1,), target=0, **{option: "no"})


def test_additional_forward_args_must_be_per_example() -> None:
    def model(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return text.sum((1, 2)) * image.sum((1, 2)) * scale

    with pytest.raises(ValueError, match=r"additional_forward_args\[0\] has shape \(5,\).*"
                                         r"batch size 2"):
        ShapleyInteractionIndex(model).attribute(batch(), additional_forward_args=torch.ones(5))
    values = ShapleyInteractionIndex(model).attribute(
        batch(), additional_forward_args=torch.tensor([1.0, 2.0]), method="exact")
    assert values.shape == (2, 5, 5)
