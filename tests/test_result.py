"""PairInteractions: explain() keeps the values of attribute() and the game's context; top
pairs, names and maps follow from the definitions; metrics reuse the context and warn when
explicit arguments contradict it; direction= for signed targets."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from torch import Tensor

from captum_interactions import (
    RedundancyGap,
    ShapleyInteractionIndex,
    default_feature_mask,
    patch_grid_mask,
)
from captum_interactions.adapters import token_names, token_players
from captum_interactions.metrics import PairMaskingFaithfulness
from captum_interactions.result import PairInteractions

matplotlib.use("Agg")

# f(text, image) = sum_{t, p} W[t, p] * text_t * pixel-patch_p: bilinear, so with zero
# baselines SII(t, p) = W[t, p] * text_t * patch_p exactly.
W = torch.tensor([[3.0, -1.0, 0.5, 0.0], [0.0, 2.0, -4.0, 1.0], [1.5, 0.0, 0.0, -0.5]],
                 dtype=torch.float64)


def bilinear(text: Tensor, pixels: Tensor) -> Tensor:
    patches = pixels.unfold(2, 2, 2).unfold(3, 2, 2).sum((1, 4, 5)).flatten(1)  # (B, 4)
    return torch.einsum("bt,tp,bp->b", text, W, patches)


def inputs() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    text = torch.rand(2, 3, dtype=torch.float64, generator=g) + 0.5
    pixels = torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=g) + 0.5
    return text, pixels


def masks(text: Tensor, pixels: Tensor) -> tuple[Tensor, ...]:
    return default_feature_mask((text, pixels), overrides={1: patch_grid_mask(4, 4, 2)})


def closed_form(text: Tensor, pixels: Tensor) -> Tensor:
    patches = pixels.unfold(2, 2, 2).unfold(3, 2, 2).sum((1, 4, 5)).flatten(1)
    return W[None] * text[:, :, None] * patches[:, None, :]  # (B, 3, 4)


def test_explain_has_the_values_of_attribute_and_its_context() -> None:
    text, pixels = inputs()
    fm = masks(text, pixels)
    sii = ShapleyInteractionIndex(bilinear)
    result = sii.explain((text, pixels), feature_mask=fm, n_samples=64, seed=3)
    values, stderr = sii.attribute((text, pixels), feature_mask=fm, n_samples=64, seed=3,
                                   return_stderr=True)
    assert isinstance(result, PairInteractions) and result.kind == "SII"
    torch.testing.assert_close(result.as_tensor(), values, rtol=0, atol=0)
    torch.testing.assert_close(result.stderr, stderr, rtol=0, atol=0)
    error = (result.values[:, :3, 3:] - closed_form(text, pixels)).abs()
    assert bool((error <= 6 * result.stderr[:, :3, 3:] + 1e-8).all())
    assert result.context["feature_mask"] is fm and result.settings["seed"] == 3
    assert result.settings["n_samples"] == 64 and result.shape == (2, 7, 7)
    assert int(torch.triu(result.requested, 1).sum()) == 12  # cross pairs 3 x 4


@pytest.mark.parametrize("order", ["largest", "smallest", "magnitude"])
def test_top_pairs_follow_the_closed_form_ranking(order: str) -> None:
    text, pixels = inputs()
    result = ShapleyInteractionIndex(bilinear).explain(
        (text, pixels), feature_mask=masks(text, pixels), method="exact")
    truth = closed_form(text, pixels)[1].flatten()
    key = {"largest": truth, "smallest": -truth, "magnitude": truth.abs()}[order]
    expected = torch.argsort(key, descending=True, stable=True)[:4].tolist()
    top = result.top_pairs(4, example=1, order=order)
    assert [(p.first, p.second - 3) for p in top] == [divmod(k, 4) for k in expected]
    assert [p.value for p in top] == pytest.approx(truth[expected].tolist(), abs=1e-12)
    assert all(p.stderr == 0 for p in top) and top[0].example == 1


def test_players_are_named_by_position_patch_or_given_text() -> None:
    text, pixels = inputs()
    fm = masks(text, pixels)
    result = ShapleyInteractionIndex(bilinear).explain(
        (text, pixels), feature_mask=fm, method="exact",
        player_names=[{0: "cat"}, ["dog", "runs"]])
    assert result.player_names[0][:4] == ("cat", "in0[1]", "in0[2]", "in1 patch (0, 0)")
    assert result.player_names[1][:2] == ("dog", "runs")
    assert result.player_names[1][3:] == ("in1 patch (0, 0)", "in1 patch (0, 1)",
                                         "in1 patch (1, 0)", "in1 patch (1, 1)")
    assert str(result.top_pairs(1, example=0)[0]).count("×") == 1


def test_token_names_join_pieces_and_skip_non_players() -> None:
    tokens = [["[CLS]", "play", "##ing", "cats", "[SEP]", "[PAD]"],
              ["<s>", "\u0120red", "\u0120car", "</s>", "<pad>", "<pad>"]]
    ids = token_players(torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]]),
                        torch.tensor([[1, 0, 0, 0, 1, 0], [1, 0, 0, 1, 0, 0]]),
                        word_ids=[[None, 0, 0, 1, None, None], [None, 0, 1, None, None, None]])
    assert token_names(tokens, ids) == [{0: "playing", 1: "cats"}, {0: "red", 1: "car"}]
    with pytest.raises(ValueError, match=r"tokens\[0\] has 2 tokens"):
        token_names([["a", "b"], ["c", "d"]], ids)
    with pytest.raises(ValueError, match=r"\(B, T\) integer tensor"):
        token_names(tokens, ids.float())


def test_pair_map_paints_each_pixel_with_its_patch_value() -> None:
    text, pixels = inputs()
    result = ShapleyInteractionIndex(bilinear).explain(
        (text, pixels), feature_mask=masks(text, pixels), method="exact")
    painted = result.pair_map(1, example=1)
    truth = closed_form(text, pixels)[1, 1]  # token 1 with patches 0..3
    for r in range(4):
        for c in range(4):
            assert painted[r, c].item() == pytest.approx(truth[(r // 2) * 2 + c // 2].item())
    assert result.pair_map(4, input_index=0).tolist() == pytest.approx(
        closed_form(text, pixels)[0, :, 1].tolist())
    ax = result.heatmap(1, example=1, image=pixels[1].expand(3, -1, -1))
    assert "in0[1]" in ax.get_title()
    with pytest.raises(ValueError, match=r"player must be a player id in 0..6"):
        result.pair_map(7)
    with pytest.raises(ValueError, match=r"example must be an index in 0..1"):
        result.top_pairs(example=2)


def test_non_player_positions_in_maps_are_zero() -> None:
    text, pixels = inputs()
    image_ids = patch_grid_mask(4, 4, 2).clone()
    image_ids = image_ids - 1  # the top-left patch (id 0) becomes -1: not a player
    fm = default_feature_mask((text, pixels), overrides={1: image_ids})
    result = ShapleyInteractionIndex(bilinear).explain((text, pixels), feature_mask=fm,
                                                       method="exact")
    assert result.n_players == 3 + 3
    assert bool((result.pair_map(0)[:2, :2] == 0).all())


def test_pair_masking_reuses_the_context_and_warns_on_contradictions() -> None:
    text, pixels = inputs()
    fm = masks(text, pixels)
    result = ShapleyInteractionIndex(bilinear).explain(
        (text, pixels), feature_mask=fm, baselines=(0.0, 0.25), method="exact")
    metric = PairMaskingFaithfulness(bilinear)
    explicit = metric.evaluate((text, pixels), result.values, feature_mask=fm,
                               baselines=(0.0, 0.25), budgets=(1, 2), n_random=3)
    reused = metric.evaluate(result, budgets=(1, 2), n_random=3)
    torch.testing.assert_close(reused.ranked_drop, explicit.ranked_drop)
    torch.testing.assert_close(reused.random_drop, explicit.random_drop)
    also = metric.evaluate((text, pixels), result, budgets=(1, 2), n_random=3)
    torch.testing.assert_close(also.ranked_drop, explicit.ranked_drop)
    with pytest.warns(UserWarning, match=r"baselines= differs from the baselines"):
        other = metric.evaluate(result, baselines=(0.0, 0.0), budgets=(1, 2), n_random=3)
    assert not torch.allclose(other.ranked_drop, explicit.ranked_drop)
    with pytest.warns(UserWarning, match=r"inputs differ"):
        metric.evaluate((text + 1, pixels), result, budgets=(1,), n_random=2)
    with pytest.raises(TypeError, match=r"scores is required"):
        metric.evaluate((text, pixels))


def test_direction_for_signed_targets() -> None:
    """A negated model: the top SII pairs now raise the score when removed. 'increase'
    reads them as the faithful ranking they are; 'absolute' takes the size of the change."""
    text, pixels = inputs()
    fm = masks(text, pixels)

    def negated(t: Tensor, p: Tensor) -> Tensor:
        return -bilinear(t, p)

    result = ShapleyInteractionIndex(negated).explain((text, pixels), feature_mask=fm,
                                                      method="exact")
    metric = PairMaskingFaithfulness(negated)
    kwargs = dict(budgets=(1, 2), n_random=4, descending=False)
    down = metric.evaluate(result, **kwargs)
    up = metric.evaluate(result, direction="increase", **kwargs)
    size = metric.evaluate(result, direction="absolute", **kwargs)
    torch.testing.assert_close(up.ranked_drop, -down.ranked_drop)
    torch.testing.assert_close(size.random_drop, down.random_drop.abs())
    assert bool((up.gap > 0).all()) and "direction='increase'" in down.summary()
    assert "masked - original" in up.summary()
    with pytest.raises(ValueError, match=r"direction must be one of"):
        metric.evaluate(result, direction="down")


def test_rg_takes_an_sii_result_for_its_candidates() -> None:
    text, pixels = inputs()
    fm = masks(text, pixels)
    sii = ShapleyInteractionIndex(bilinear).explain((text, pixels), feature_mask=fm,
                                                    method="exact")
    by_result = RedundancyGap(bilinear).attribute((text, pixels), feature_mask=fm, candidates=3,
                                                  sii=sii, method="exact")
    by_tensor = RedundancyGap(bilinear).attribute((text, pixels), feature_mask=fm, candidates=3,
                                                  sii=sii.values, method="exact")
    torch.testing.assert_close(by_result, by_tensor)
    rg = RedundancyGap(bilinear).explain((text, pixels), feature_mask=fm, method="exact",
                                         candidates=3, sii=sii)
    assert rg.kind == "RG"
    with pytest.raises(ValueError, match=r"sii= must hold SII values"):
        RedundancyGap(bilinear).attribute((text, pixels), feature_mask=fm, candidates=3, sii=rg)


@pytest.mark.parametrize(("names", "error", "match"), [
    ({9: "x"}, ValueError, r"player_names names player 9; player ids are 0..6"),
    ({0: 5}, TypeError, r"player_names\[0\] must be a str"),
    ([{0: "a"}], ValueError, r"player_names has 1 entries; give one per example \(2\)"),
    ("cat", TypeError, r"player_names must be a mapping"),
])
def test_bad_player_names(names, error, match) -> None:
    text, pixels = inputs()
    with pytest.raises(error, match=match):
        ShapleyInteractionIndex(bilinear).explain(
            (text, pixels), feature_mask=masks(text, pixels), method="exact",
            player_names=names)


def test_explain_refuses_return_stderr_and_bad_k() -> None:
    text, pixels = inputs()
    sii = ShapleyInteractionIndex(bilinear)
    with pytest.raises(TypeError, match=r"always computes standard errors"):
        sii.explain((text, pixels), feature_mask=masks(text, pixels), return_stderr=False)
    result = sii.explain((text, pixels), feature_mask=masks(text, pixels), method="exact")
    with pytest.raises(ValueError, match=r"k must be"):
        result.top_pairs(0)
    with pytest.raises(ValueError, match=r"order must be one of"):
        result.top_pairs(3, order="best")
