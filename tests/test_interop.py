"""Main effects from the SII rows (oracle: brute-force Shapley values), the shap-style matrix
(its sums follow from efficiency), and the round trip through shapiq's InteractionValues."""

from __future__ import annotations

import itertools
import math

import matplotlib
import pytest
import torch
from torch import Tensor

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.metrics import PairMaskingFaithfulness
from captum_interactions.result import PairInteractions
from captum_interactions.testing import TinyFusionTransformer

matplotlib.use("Agg")
shapiq = pytest.importorskip("shapiq")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=8, n_classes=3).double().eval()
    text = torch.randn(2, 3, 8, dtype=torch.float64)
    image = torch.randn(2, 4, 8, dtype=torch.float64)
    return model, (text, image)


def brute_shapley(model, inputs: tuple[Tensor, Tensor], example: int, target: int) -> Tensor:
    text, image = (x[example : example + 1] for x in inputs)
    n = 7

    def v(coalition: frozenset[int]) -> float:
        keep = torch.tensor([k in coalition for k in range(n)], dtype=torch.float64)
        with torch.no_grad():
            out = model(text * keep[:3, None], image * keep[3:, None])
        return float(out[0, target])

    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        rest = [k for k in range(n) if k != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(rest, size):
                s = frozenset(subset)
                phi[i] += weight * (v(s | {i}) - v(s))
    return phi


def test_exact_main_effects_are_the_shapley_values(setup) -> None:
    model, inputs = setup
    result = ShapleyInteractionIndex(model).explain(inputs, target=2, method="exact")
    assert result.main_effects is not None and result.main_stderr is not None
    for b in range(2):
        torch.testing.assert_close(result.main_effects[b], brute_shapley(model, inputs, b, 2))
    assert bool((result.main_stderr == 0).all())
    with torch.no_grad():
        empty = model(torch.zeros_like(inputs[0]), torch.zeros_like(inputs[1]))[:, 2]
    torch.testing.assert_close(result.empty_value, empty)


def test_sampled_main_effects_are_unbiased_with_honest_errors(setup) -> None:
    """Mean of 8 seeds at a budget below 2^F against the exact values, in pooled stderrs."""
    model, inputs = setup
    sii = ShapleyInteractionIndex(model)
    exact = sii.explain(inputs, target=2, method="exact").main_effects
    runs = [sii.explain(inputs, target=2, n_samples=60, seed=seed) for seed in range(8)]
    mean = torch.stack([r.main_effects for r in runs]).mean(0)
    pooled = torch.stack([r.main_stderr for r in runs]).pow(2).sum(0).sqrt() / 8
    assert bool((pooled > 0).all())
    z = (mean - exact) / pooled
    assert float(z.abs().max()) < 5 and float(z.pow(2).mean().sqrt()) < 2.5


def test_shap_matrix_sums_to_the_shapley_values_and_the_total(setup) -> None:
    model, inputs = setup
    result = ShapleyInteractionIndex(model).explain(inputs, target=0, method="exact",
                                                    pairs="all")
    matrix = result.shap_matrix()
    torch.testing.assert_close(matrix.sum(-1), result.main_effects)
    with torch.no_grad():
        full = model(*inputs)[:, 0]
    torch.testing.assert_close(matrix.sum((1, 2)), full - result.empty_value)
    off = ~torch.eye(7, dtype=torch.bool)
    torch.testing.assert_close(matrix[:, off], result.values[:, off] / 2)
    rg = RedundancyGap(model).explain(inputs, target=0, method="exact", candidates=2)
    with pytest.raises(ValueError, match=r"needs main effects"):
        rg.shap_matrix()


def test_shapiq_round_trip_and_plot(setup) -> None:
    model, inputs = setup
    result = ShapleyInteractionIndex(model).explain(inputs, target=1, n_samples=64)
    ivs = [result.to_shapiq(b) for b in range(2)]
    iv = ivs[1]
    assert iv.index == "SII" and iv.max_order == 2 and iv.min_order == 1 and iv.n_players == 7
    assert iv[(0, 3)] == pytest.approx(float(result.values[1, 0, 3]))
    assert iv[(2,)] == pytest.approx(float(result.main_effects[1, 2]))
    assert iv.baseline_value == pytest.approx(float(result.empty_value[1]))
    back = PairInteractions.from_shapiq(ivs, player_names={0: "cat"})
    torch.testing.assert_close(back.values, result.values)
    torch.testing.assert_close(back.main_effects, result.main_effects)
    assert torch.equal(back.requested, result.requested) and back.player_names[0][0] == "cat"
    figure = iv.plot_network(show=False)
    assert figure is not None
    with pytest.raises(ValueError, match=r"carries no inputs"):
        PairMaskingFaithfulness(model).evaluate(back, target=1)
    check = PairMaskingFaithfulness(model).evaluate(inputs, back, target=1, budgets=(1,),
                                                    n_random=2)
    assert check.ranked_drop.shape == (2, 1)
