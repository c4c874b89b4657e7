"""Bad input to the metrics raises early (before any forward call) with a message naming the
argument."""

from __future__ import annotations

import pytest
import torch
from metric_models import PairProduct, positive_tokens

from captum_interactions.metrics import PairMaskingFaithfulness, concentration, topk_masking

T = P = 3  # F = 6 players, 9 cross pairs
F = T + P


@pytest.fixture
def setup():
    model = PairProduct(torch.ones(T, P, dtype=torch.float64))
    text, image = positive_tokens(2, T, P, seed=0)
    return model, (text, image), model.sii(text, image)


def pair_call(setup, **kwargs):
    model, inputs, scores = setup
    kwargs.setdefault("budgets", (1, 2))
    scores = kwargs.pop("scores", scores)
    return PairMaskingFaithfulness(model).evaluate(inputs, scores, **kwargs)


def topk_call(setup, **kwargs):
    model, inputs, _ = setup
    attributions = kwargs.pop("attributions", torch.rand(2, F))
    return topk_masking(model, inputs, attributions, **kwargs)


def assert_no_forward(setup):
    assert setup[0].rows == [], "the check must fire before any forward call"


# --------------------------------------------------------------------------- pair masking


@pytest.mark.parametrize(
    "shape", [(2, F), (2, F + 1, F + 1), (3, F, F), (F, F)], ids=["2d", "big", "batch", "nobatch"]
)
def test_scores_of_the_wrong_shape(setup, shape):
    with pytest.raises(ValueError, match=r"scores has shape .*expected \(B, F, F\) = \(2, 6, 6\)"):
        pair_call(setup, scores=torch.zeros(shape))
    assert_no_forward(setup)


def test_scores_not_a_tensor(setup):
    with pytest.raises(TypeError, match=r"scores must be a torch\.Tensor"):
        pair_call(setup, scores=[[0.0]])


def test_nan_scores_on_a_requested_pair(setup):
    scores = setup[2].clone()
    scores[1, 0, 4] = torch.nan
    with pytest.raises(ValueError, match=r"scores holds NaN or Inf .*scores\[1, 0, 4\]"):
        pair_call(setup, scores=scores)
    assert_no_forward(setup)


def test_nan_scores_off_the_requested_pairs_are_ignored(setup):
    scores = setup[2].clone()
    scores[:, 0, 1] = torch.nan  # a within-text pair: not requested under pairs="cross"
    assert pair_call(setup, scores=scores, n_random=2).ranked_drop.isfinite().all()


@pytest.mark.parametrize("budgets", [(1, 10), 10, (0,), (-1,)])
def test_budgets_outside_the_requested_pairs(setup, budgets):
    with pytest.raises(ValueError, match=r"budgets holds .* must lie in \[1, 9\]"):
        pair_call(setup, budgets=budgets)
    assert_no_forward(setup)


@pytest.mark.parametrize("budgets", [(0.0,), (1.5,), (-0.2,)])
def test_fraction_budgets_outside_zero_one(setup, budgets):
    with pytest.raises(ValueError, match=r"budgets holds .* must lie in \(0, 1\]"):
        pair_call(setup, budgets=budgets)


def test_empty_budgets(setup):
    with pytest.raises(ValueError, match="budgets is empty"):
        pair_call(setup, budgets=())


@pytest.mark.parametrize("budgets", [(True,), ("2",), "2"])
def test_budgets_of_the_wrong_type(setup, budgets):
    with pytest.raises(TypeError, match="budgets must"):
        pair_call(setup, budgets=budgets)


@pytest.mark.parametrize("call", [pair_call, topk_call], ids=["pairs", "topk"])
def test_n_random_below_one(setup, call):
    with pytest.raises(ValueError, match=r"n_random must be >= 1, got 0"):
        call(setup, n_random=0)
    assert_no_forward(setup)


@pytest.mark.parametrize("call", [pair_call, topk_call], ids=["pairs", "topk"])
def test_mismatched_feature_mask(setup, call):
    mask = (torch.arange(T + 1).view(1, -1, 1), torch.arange(T, F).view(1, -1, 1))
    with pytest.raises(ValueError, match=r"feature_mask\[0\] has shape \(1, 4, 1\)"):
        call(setup, feature_mask=mask)
    assert_no_forward(setup)


@pytest.mark.parametrize("call", [pair_call, topk_call], ids=["pairs", "topk"])
def test_max_rows_per_eval_below_the_batch(setup, call):
    with pytest.raises(ValueError, match=r"max_rows_per_eval=1 is smaller than the batch size"):
        call(setup, max_rows_per_eval=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alternative": "bigger"}, ValueError, "alternative must be one of"),
        ({"test": "t-test"}, ValueError, "test must be one of"),
        ({"descending": "yes"}, TypeError, "descending must be a bool"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"removal": "drop"}, ValueError, "removal must be"),
        ({"target": 5}, ValueError, "target"),
    ],
)
def test_other_pair_masking_options(setup, kwargs, error, match):
    with pytest.raises(error, match=match):
        pair_call(setup, **kwargs)


def test_forward_func_not_callable():
    with pytest.raises(TypeError, match="forward_func must be callable"):
        PairMaskingFaithfulness("model")
    with pytest.raises(TypeError, match="forward_func must be callable"):
        topk_masking("model", torch.zeros(1, 2, 1), torch.zeros(1, 2))


# --------------------------------------------------------------------------- top-K masking


@pytest.mark.parametrize("ks", [(0,), (101,), (10, -5), (100.5,)])
def test_k_outside_zero_to_hundred(setup, ks):
    with pytest.raises(ValueError, match=r"ks holds .* percentage in \(0, 100\]"):
        topk_call(setup, ks=ks)
    assert_no_forward(setup)


def test_empty_ks(setup):
    with pytest.raises(ValueError, match="ks is empty"):
        topk_call(setup, ks=[])


def test_nan_attributions(setup):
    attributions = torch.rand(2, F)
    attributions[0, 2] = torch.nan
    with pytest.raises(ValueError, match=r"attributions holds 1 NaN or Inf"):
        topk_call(setup, attributions=attributions)
    text_attr, image_attr = torch.rand(2, T, 1), torch.rand(2, P, 1)
    image_attr[1, 0, 0] = torch.inf
    with pytest.raises(ValueError, match=r"attributions\[1\] holds 1 NaN or Inf"):
        topk_call(setup, attributions=(text_attr, image_attr))
    assert_no_forward(setup)


@pytest.mark.parametrize(
    "attributions",
    [torch.rand(2, F + 1), (torch.rand(2, T, 2), torch.rand(2, P, 1)), torch.rand(2, T, 1)],
    ids=["players", "tuple", "one-input"],
)
def test_attributions_of_the_wrong_shape(setup, attributions):
    with pytest.raises(ValueError, match=r"attributions have shape\(s\) .* \(B, F\) = \(2, 6\)"):
        topk_call(setup, attributions=attributions)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"per": "input"}, ValueError, "per must be one of"),
        ({"protected": [6]}, ValueError, r"protected holds player id 6"),
        ({"protected": [0.5]}, TypeError, "protected must hold integer"),
        ({"protected": list(range(F))}, ValueError, "protected covers every player"),
        ({"use_abs": 1}, TypeError, "use_abs must be a bool"),
    ],
)
def test_other_topk_options(setup, kwargs, error, match):
    with pytest.raises(error, match=match):
        topk_call(setup, **kwargs)
    assert_no_forward(setup)


def test_per_modality_with_a_player_spanning_inputs(setup):
    mask = (torch.tensor([[0, 1, 2]]).unsqueeze(2), torch.tensor([[2, 3, 4]]).unsqueeze(2))
    with pytest.raises(ValueError, match=r"per='modality' .* player id\(s\) \[2\]"):
        topk_call(setup, feature_mask=mask, attributions=torch.rand(2, 5))


# --------------------------------------------------------------------------- concentration


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), (2, 2, 2, 2)])
def test_concentration_values_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"values has shape .*expected \(B, F\)"):
        concentration(torch.rand(shape))


def test_concentration_bad_mask_nan_and_fraction():
    with pytest.raises(ValueError, match=r"mask has shape \(3,\); expected \(4,\)"):
        concentration(torch.rand(2, 4), torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        concentration(torch.rand(2, 4), torch.ones(4))
    with pytest.raises(ValueError, match="values holds 1 NaN"):
        concentration(torch.tensor([[1.0, torch.nan]]))
    with pytest.raises(ValueError, match=r"top_fraction must lie in \(0, 1\]"):
        concentration(torch.rand(2, 4), top_fraction=0.0)
    with pytest.raises(ValueError, match=r"mask selects no entry for example\(s\) \[1\]"):
        concentration(torch.rand(2, 2), torch.tensor([[True, False], [False, False]]))
