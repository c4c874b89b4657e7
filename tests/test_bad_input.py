"""Bad inputs raise ValueError / TypeError early, with a message naming the offending argument.

Every test uses tiny inputs (text (2, 3, 4) and image (2, 2, 4): F = 5 players, 6 cross pairs)
and a closed-form forward function, so the whole file runs in well under a second.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from captum_interactions import MAX_EXACT_PLAYERS, RedundancyGap, ShapleyInteractionIndex

BOTH = [ShapleyInteractionIndex, RedundancyGap]
N_TEXT, N_IMAGE = 3, 2
F = N_TEXT + N_IMAGE
N_CROSS = N_TEXT * N_IMAGE


def two_class(text: Tensor, image: Tensor) -> Tensor:
    """(B, 2) output with cross-modal products."""
    t, i = text.sum((1, 2)), image.sum((1, 2))
    return torch.stack([t * i, t - i], dim=1)


def one_value(text: Tensor, image: Tensor) -> Tensor:
    """(B, 1) output: no target needed."""
    return (text.sum((1, 2)) * image.sum((1, 2))).unsqueeze(1)


def make_inputs(batch: int = 2) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    text = torch.rand(batch, N_TEXT, 4, generator=gen) + 0.5
    image = torch.rand(batch, N_IMAGE, 4, generator=gen) + 0.5
    return text, image


class CountingModel(torch.nn.Module):
    """one_value, counting its forward calls (to prove that a check fires before any call)."""

    def __init__(self) -> None:
        super().__init__()
        self.n_calls = 0

    def forward(self, *inputs: Tensor) -> Tensor:
        self.n_calls += 1
        return torch.stack([x.flatten(1).sum(1) for x in inputs], dim=1).prod(1, keepdim=True)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("cls", BOTH)
def test_inputs_with_different_batch_sizes(cls):
    text, _ = make_inputs()
    with pytest.raises(ValueError, match=r"inputs .*batch sizes \[2, 3\]"):
        cls(one_value).attribute((text, torch.rand(3, N_IMAGE, 4)))


def test_forward_func_not_callable():
    with pytest.raises(TypeError, match="forward_func"):
        ShapleyInteractionIndex("not a model")


# --------------------------------------------------------------------------- feature_mask


@pytest.mark.parametrize("cls", BOTH)
def test_feature_mask_wrong_shape(cls):
    text, image = make_inputs()
    bad = torch.zeros(1, N_TEXT + 1, 1, dtype=torch.long)  # 4 positions for a 3-token input
    good = torch.tensor([[3, 4]]).unsqueeze(2)
    with pytest.raises(ValueError, match=r"feature_mask\[0\] has shape \(1, 4, 1\).*broadcast"):
        cls(one_value).attribute((text, image), feature_mask=(bad, good))


@pytest.mark.parametrize("cls", BOTH)
def test_feature_mask_wrong_dtype(cls):
    text, image = make_inputs()
    masks = (torch.tensor([[0.0, 1.0, 2.0]]).unsqueeze(2), torch.tensor([[3, 4]]).unsqueeze(2))
    with pytest.raises(TypeError, match=r"feature_mask\[0\] must hold integer.*float"):
        cls(one_value).attribute((text, image), feature_mask=masks)


@pytest.mark.parametrize("cls", BOTH)
def test_feature_mask_wrong_number_of_tensors(cls):
    text, image = make_inputs()
    only_text = (torch.tensor([[0, 1, 2]]).unsqueeze(2),)
    with pytest.raises(ValueError, match=r"feature_mask has 1 tensor\(s\) but inputs has 2"):
        cls(one_value).attribute((text, image), feature_mask=only_text)


@pytest.mark.parametrize("cls", BOTH)
def test_player_spanning_two_modalities_under_cross_pairs(cls):
    text, image = make_inputs()
    # Player 2 is text token 2 *and* image patch 0.
    masks = (torch.tensor([[0, 1, 2]]).unsqueeze(2), torch.tensor([[2, 3]]).unsqueeze(2))
    with pytest.raises(ValueError, match=r"pairs='cross'.*player id\(s\) \[2\].*feature_mask"):
        cls(one_value).attribute((text, image), feature_mask=masks, pairs="cross")


# --------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("bad_id", [F, F + 3, -1])
def test_pairs_naming_unknown_players(cls, bad_id):
    text, image = make_inputs()
    pairs = torch.tensor([[0, 3], [1, bad_id]])
    with pytest.raises(ValueError, match=rf"pairs\[1\] = \[1, {bad_id}\] names an unknown player"):
        cls(one_value).attribute((text, image), pairs=pairs)


@pytest.mark.parametrize("cls", BOTH)
def test_pairs_with_a_player_paired_with_itself(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"pairs\[0\] = \[2, 2\] pairs a player with itself"):
        cls(one_value).attribute((text, image), pairs=torch.tensor([[2, 2], [0, 3]]))


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    "pairs", [torch.tensor([0, 3]), torch.tensor([[0, 3, 4]]), torch.zeros(0, 2, dtype=torch.long)]
)
def test_pairs_of_the_wrong_shape(cls, pairs):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"pairs must have shape \(P, 2\)"):
        cls(one_value).attribute((text, image), pairs=pairs)


@pytest.mark.parametrize("cls", BOTH)
def test_pairs_unknown_string_and_float_tensor(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"pairs must be 'cross', 'all'"):
        cls(one_value).attribute((text, image), pairs="within")
    with pytest.raises(TypeError, match=r"pairs must be an integer tensor"):
        cls(one_value).attribute((text, image), pairs=torch.tensor([[0.0, 3.0]]))


# --------------------------------------------------------------------------- n_samples


def test_sii_n_samples_below_sampler_minimum():
    text, image = make_inputs()
    model = CountingModel()
    sii = ShapleyInteractionIndex(model)
    with pytest.raises(ValueError, match=rf"n_samples={3 * F - 1} is too small.*3F = {3 * F}"):
        sii.attribute((text, image), n_samples=3 * F - 1)
    assert model.n_calls == 0
    sii.attribute((text, image), n_samples=3 * F)  # the documented minimum is accepted


def test_rg_sampled_n_samples_below_eight_rows_per_pair():
    text, image = make_inputs()
    rg = RedundancyGap(one_value)
    with pytest.raises(ValueError, match=rf"n_samples={8 * N_CROSS - 1} is too small.*8 rows"):
        rg.attribute((text, image), n_samples=8 * N_CROSS - 1)
    rg.attribute((text, image), n_samples=8 * N_CROSS)


def test_rg_full_context_n_samples_below_3p_plus_1():
    text, image = make_inputs()
    rg = RedundancyGap(one_value)
    needed = 3 * N_CROSS + 1
    with pytest.raises(ValueError, match=rf"n_samples={needed - 1} is too small.*3P \+ 1"):
        rg.attribute((text, image), n_samples=needed - 1, context="full")
    rg.attribute((text, image), n_samples=needed, context="full")


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("value, error", [(0, ValueError), (100.0, TypeError), (True, TypeError)])
def test_n_samples_not_a_positive_int(cls, value, error):
    text, image = make_inputs()
    with pytest.raises(error, match="n_samples"):
        cls(one_value).attribute((text, image), n_samples=value)


# --------------------------------------------------------------------------- forward output


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    "forward",
    [lambda t, i: one_value(t, i)[:1], lambda t, i: one_value(t, i).sum(0, keepdim=True)],
    ids=["first-row", "batch-sum"],
)
def test_forward_output_of_the_wrong_batch_size(cls, forward):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"forward_func returned shape \(1, 1\)"):
        cls(forward).attribute((text, image))


def test_forward_output_not_a_tensor():
    text, image = make_inputs()
    with pytest.raises(TypeError, match="forward_func must return a tensor"):
        ShapleyInteractionIndex(lambda t, i: one_value(t, i).tolist()).attribute((text, image))


def nan_without_text_token_0(text: Tensor, image: Tensor) -> Tensor:
    """NaN when text token 0 is absent (zeroed) while image patch 0 is positive: only
    example 1 of the inputs below ever produces NaN."""
    out = one_value(text, image)
    bad = (text[:, 0].abs().sum(1) == 0) & (image[:, 0, 0] > 0)
    return torch.where(bad.unsqueeze(1), torch.full_like(out, float("nan")), out)


@pytest.mark.parametrize("method", ["sampling", "exact"])
def test_nan_in_forward_output_names_coalitions_and_examples(method):
    text, image = make_inputs()
    image[0, 0, 0] = -1.0  # example 0 never hits the NaN branch
    with pytest.raises(ValueError, match=r"NaN or Inf") as info:
        ShapleyInteractionIndex(nan_without_text_token_0).attribute(
            (text, image), method=method, n_samples=64
        )
    message = str(info.value)
    assert "coalition" in message
    assert "of example 1" in message
    assert "of example 0" not in message


def test_inf_in_forward_output_is_reported():
    text, image = make_inputs()

    def inf_model(t: Tensor, i: Tensor) -> Tensor:  # +Inf (never NaN) without image patch 0
        out = one_value(t, i)
        return torch.where(i[:, :1, 0] == 0, torch.full_like(out, float("inf")), out)

    with pytest.raises(ValueError, match=r"NaN or Inf.*coalition \d+ of example 0"):
        RedundancyGap(inf_model).attribute((text, image), method="exact")


# --------------------------------------------------------------------------- target


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    "target",
    [2, -3, [0, 2], torch.tensor([1, 5]), (2,)],
    ids=["int", "negative", "list", "tensor", "tuple"],
)
def test_target_out_of_range(cls, target):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"target .* is out of range .*dim 1 has size 2"):
        cls(two_class).attribute((text, image), target=target)


@pytest.mark.parametrize("cls", BOTH)
def test_target_missing_for_multi_column_output(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"shape \(2, 2\): pass `target`"):
        cls(two_class).attribute((text, image), target=None)


@pytest.mark.parametrize(
    "target, error, match",
    [
        ([0, 1, 0], ValueError, "target list has 3 entries"),
        (torch.tensor([0, 1, 1]), ValueError, "target tensor has 3 entries"),
        (torch.tensor([0.0, 1.0]), TypeError, "target tensor must hold integer"),
        (1.0, TypeError, "target must be None, an int"),
        (True, TypeError, "target must be an int"),
        ((0, 1), ValueError, "target indexes 2 output dim"),
    ],
)
def test_target_of_the_wrong_kind(target, error, match):
    text, image = make_inputs()
    with pytest.raises(error, match=match):
        ShapleyInteractionIndex(two_class).attribute((text, image), target=target)


# --------------------------------------------------------------------------- method / options


@pytest.mark.parametrize("cls", BOTH)
def test_exact_with_too_many_players_fails_before_any_forward_call(cls):
    n_text = MAX_EXACT_PLAYERS // 2 + 1
    n_image = MAX_EXACT_PLAYERS + 1 - n_text
    text, image = torch.ones(1, n_text, 1), torch.ones(1, n_image, 1)
    model = CountingModel()
    kwargs = {"candidates": 4} if cls is RedundancyGap else {}
    with pytest.raises(ValueError, match=rf"method='exact'.*F={MAX_EXACT_PLAYERS + 1}"):
        cls(model).attribute((text, image), method="exact", **kwargs)
    assert model.n_calls == 0


@pytest.mark.parametrize("cls", BOTH)
def test_unknown_method(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"method must be one of .*'exhaustive'"):
        cls(one_value).attribute((text, image), method="exhaustive")


def test_unknown_context():
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"context must be one of .*'partial'"):
        RedundancyGap(one_value).attribute((text, image), context="partial")


@pytest.mark.parametrize("cls", BOTH)
def test_unknown_removal(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"removal must be 'baseline', 'presence'.*'mean'"):
        cls(one_value).attribute((text, image), removal="mean")
    with pytest.raises(TypeError, match=r"removal must be"):
        cls(one_value).attribute((text, image), removal=object())


@pytest.mark.parametrize("method", ["sampling", "exact"])
def test_unknown_control_variate(method):
    text, image = make_inputs()
    model = CountingModel()
    with pytest.raises(ValueError, match=r"control_variate must be one of .*'cubic'"):
        ShapleyInteractionIndex(model).attribute(
            (text, image), control_variate="cubic", method=method
        )
    assert model.n_calls == 0


@pytest.mark.parametrize("cls", BOTH)
def test_baselines_with_presence_removal(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"baselines are unused with removal='presence'"):
        cls(one_value).attribute((text, image), baselines=0.0, removal="presence")


@pytest.mark.parametrize("cls", BOTH)
def test_baselines_of_a_non_broadcastable_shape(cls):
    text, image = make_inputs()
    with pytest.raises(ValueError, match=r"baselines\[1\] has shape \(3,\).*broadcast"):
        cls(one_value).attribute((text, image), baselines=(torch.zeros(4), torch.zeros(3)))
    with pytest.raises(ValueError, match=r"baselines has 3 entries but inputs has 2"):
        cls(one_value).attribute((text, image), baselines=(0.0, 0.0, 0.0))


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("value, error", [(0, ValueError), (-4, ValueError), (2.5, TypeError)])
def test_perturbations_per_eval_not_a_positive_int(cls, value, error):
    text, image = make_inputs()
    with pytest.raises(error, match="perturbations_per_eval"):
        cls(one_value).attribute((text, image), perturbations_per_eval=value)


def test_candidates_larger_than_the_number_of_pairs():
    text, image = make_inputs()
    model = CountingModel()
    with pytest.raises(ValueError, match=rf"candidates={N_CROSS + 1} exceeds the {N_CROSS}"):
        RedundancyGap(model).attribute((text, image), candidates=N_CROSS + 1)
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        RedundancyGap(model).attribute((text, image), candidates=0)
    assert model.n_calls == 0
