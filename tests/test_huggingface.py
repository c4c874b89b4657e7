"""Hugging Face models as they are (tiny random configs, never a download): ModelOutput / dict /
tuple outputs and the output= selector, CLIP through contrastive_score, ViLT with a lambda for
argument order, special and padding tokens that are not players, image players from a model
config, lists and dicts as containers."""

from __future__ import annotations

import pytest
import torch
from hf_fixtures import ATTENTION, IDS, PAD, SPECIAL
from torch import Tensor

from captum_interactions import (
    RedundancyGap,
    ShapleyInteractionIndex,
    default_feature_mask,
    patch_grid_mask,
)
from captum_interactions.adapters import contrastive_score, token_players
from captum_interactions.metrics import PairMaskingFaithfulness

transformers = pytest.importorskip("transformers", reason="needs the [hf] extra")


def clip_masks(clip) -> tuple[Tensor, Tensor]:
    return default_feature_mask((IDS, torch.zeros(2, 3, 32, 32)), overrides={
        0: token_players(ATTENTION, SPECIAL), 1: patch_grid_mask(32, 32, clip.config)})


def test_contrastive_score_is_the_diagonal_of_the_model_logits(clip, pixels):
    score = contrastive_score(clip)
    with torch.no_grad():
        out = clip(input_ids=IDS, pixel_values=pixels, attention_mask=ATTENTION)
        torch.testing.assert_close(score(IDS, pixels, ATTENTION),
                                   out.logits_per_text.diagonal())
    with pytest.raises(TypeError, match="logit_scale"):
        contrastive_score(torch.nn.Linear(2, 2))


def test_clip_special_tokens_are_not_players_and_cost_nothing(clip, pixels):
    """F counts real tokens and patches only; the special and padding positions keep their
    ids in every coalition; a budget covering 2^F gives the exact values."""
    seen: list[Tensor] = []
    score = contrastive_score(clip)

    def recording(ids: Tensor, px: Tensor, attention: Tensor) -> Tensor:
        seen.append(ids)
        return score(ids, px, attention)

    masks = clip_masks(clip)
    kwargs = dict(additional_forward_args=(ATTENTION,), baselines=(PAD, 0.0),
                  feature_mask=masks)
    exact = ShapleyInteractionIndex(recording).attribute((IDS, pixels), method="exact",
                                                         **kwargs)
    n_players = 3 + 4  # 3 real tokens at most per example, 2 x 2 patches
    assert exact.shape == (2, n_players, n_players)
    rows = torch.cat(seen).view(-1, 2, IDS.shape[1])
    fixed = (masks[0] < 0).expand_as(IDS)
    assert rows.shape[0] == 2**n_players
    assert torch.equal(rows[:, fixed], IDS[fixed].expand(rows.shape[0], -1))
    assert exact[:, :3, 3:].abs().max() > 1e-6  # the tiny model has real interactions
    sampled = ShapleyInteractionIndex(score).attribute((IDS, pixels), n_samples=2**n_players,
                                                       **kwargs)
    torch.testing.assert_close(sampled, exact, rtol=1e-8, atol=1e-10)
    # Example 1 has 2 real tokens: player 2 never appears there (a dummy player: 0 up to
    # rounding).
    assert exact[1, 2].abs().max() < 1e-12


def test_vilt_with_a_lambda_for_argument_order(pixels):
    torch.manual_seed(0)
    config = transformers.ViltConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, image_size=32, patch_size=16, max_position_embeddings=16,
        num_labels=3, max_image_length=-1)
    vilt = transformers.ViltForQuestionAnswering(config).eval().double()

    def forward(ids: Tensor, px: Tensor, attention: Tensor):
        return vilt(input_ids=ids, pixel_values=px, attention_mask=attention)  # a ModelOutput

    masks = default_feature_mask((IDS, pixels), overrides={
        0: token_players(ATTENTION, SPECIAL), 1: patch_grid_mask(32, 32, config)})
    kwargs = dict(additional_forward_args=(ATTENTION,), baselines=(PAD, 0.0),
                  feature_mask=masks, target=1)
    sii = ShapleyInteractionIndex(forward).attribute((IDS, pixels), n_samples=256, **kwargs)
    exact = ShapleyInteractionIndex(forward).attribute((IDS, pixels), method="exact", **kwargs)
    torch.testing.assert_close(sii, exact, rtol=1e-8, atol=1e-12)
    rg = RedundancyGap(forward).attribute((IDS, pixels), candidates=3, sii=sii, **kwargs)
    assert rg.shape == (2, 7, 7) and (rg >= 0).all()


class DictModel(torch.nn.Module):
    def forward(self, text: Tensor, image: Tensor) -> dict[str, Tensor]:
        t, i = text.sum((1, 2)), image.sum((1, 2))
        return {"logits": torch.stack([t * i, t], 1), "score": (t * i)[:, None] * 2}


def test_outputs_mappings_tuples_and_selectors():
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, 2, generator=gen), torch.randn(2, 2, 2, generator=gen))
    from_logits = ShapleyInteractionIndex(DictModel()).attribute(x, target=0, method="exact")
    as_tensor = ShapleyInteractionIndex(lambda t, i: DictModel()(t, i)["logits"]).attribute(
        x, target=0, method="exact")
    torch.testing.assert_close(from_logits, as_tensor, rtol=0, atol=0)
    as_tuple = ShapleyInteractionIndex(lambda t, i: (DictModel()(t, i)["logits"], None))
    torch.testing.assert_close(as_tuple.attribute(x, target=0, method="exact"), as_tensor)
    by_key = ShapleyInteractionIndex(DictModel()).attribute(x, output="score", method="exact")
    torch.testing.assert_close(by_key, 2 * as_tensor)
    by_callable = ShapleyInteractionIndex(DictModel()).attribute(
        x, output=lambda out: out["score"] / 2, method="exact")
    torch.testing.assert_close(by_callable, as_tensor)
    scores = torch.rand(2, 5, 5)
    res = PairMaskingFaithfulness(DictModel()).evaluate(x, scores, budgets=(1,), output="score",
                                                        n_random=2)
    assert res.ranked_drop.shape == (2, 1)
    with pytest.raises(ValueError, match=r"output='scores' is not in the forward output "
                                         r"\(\['logits', 'score'\]\)"):
        ShapleyInteractionIndex(DictModel()).attribute(x, output="scores")
    with pytest.raises(TypeError, match=r"mapping without 'logits'.*pass output="):
        ShapleyInteractionIndex(lambda t, i: {"y": t.sum((1, 2))}).attribute(x)
    with pytest.raises(TypeError, match="output must be a key name, a callable or None"):
        ShapleyInteractionIndex(DictModel()).attribute(x, output=3)


def test_token_players_with_words_and_offsets():
    attention = torch.tensor([[1, 1, 1, 1, 1, 0]])
    special = torch.tensor([[1, 0, 0, 0, 1, 0]])
    assert token_players(attention, special).tolist() == [[-1, 0, 1, 2, -1, -1]]
    words = [[None, 0, 0, 1, None, None]]  # "playing" = "play" + "##ing", then "cats"
    assert token_players(attention, special, word_ids=words, offset=4).tolist() == [
        [-1, 4, 4, 5, -1, -1]]
    with pytest.raises(ValueError, match="special_tokens_mask must be a tensor"):
        token_players(attention, special[:, :3])
    with pytest.raises(ValueError, match="word_ids has 2 entries"):
        token_players(attention, word_ids=[[0], [0]])


def test_image_inputs_need_players_and_masks_can_come_from_configs():
    text, image = torch.randn(1, 3, 4), torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"inputs\[1\] has shape \(1, 3, 32, 32\), an "
                                         r"image-like input.*patch_grid_mask\(32, 32"):
        ShapleyInteractionIndex(lambda t, i: t.sum((1, 2)) + i.mean((1, 2, 3))).attribute(
            (text, image))
    vit = transformers.ViTConfig(image_size=32, patch_size=8)
    grid = patch_grid_mask(32, 32, vit)
    assert int(grid.max()) == 15 and torch.equal(grid, patch_grid_mask(32, 32, 8))
    masks = default_feature_mask((text, image), overrides={1: grid})
    assert masks[0].flatten().tolist() == [0, 1, 2] and int(masks[1].min()) == 3


def test_lists_work_like_tuples_and_dicts_in_extra_args_are_repeated():
    gen = torch.Generator().manual_seed(2)
    text, image = torch.randn(2, 3, 2, generator=gen), torch.randn(2, 2, 2, generator=gen)

    def model(t: Tensor, i: Tensor, extra: dict[str, Tensor]) -> Tensor:
        return t.sum((1, 2)) * i.sum((1, 2)) * extra["weight"]

    weight = {"weight": torch.tensor([1.0, 3.0])}
    as_lists = ShapleyInteractionIndex(model).attribute(
        [text, image], baselines=[0.0, 0.0], additional_forward_args=(weight,), method="exact",
        feature_mask=[torch.arange(3).view(1, 3, 1), torch.arange(3, 5).view(1, 2, 1)])
    as_tuples = ShapleyInteractionIndex(model).attribute(
        (text, image), additional_forward_args=(weight,), method="exact")
    torch.testing.assert_close(as_lists, as_tuples, rtol=0, atol=0)
    torch.testing.assert_close(as_tuples[1], 3 * ShapleyInteractionIndex(
        lambda t, i: t.sum((1, 2)) * i.sum((1, 2))).attribute(
        (text, image), method="exact")[1])
    with pytest.raises(ValueError, match=r"additional_forward_args\[0\]\['weight'\] has "
                                         r"shape \(3,\)"):
        ShapleyInteractionIndex(model).attribute(
            (text, image), additional_forward_args=({"weight": torch.ones(3)},))
