"""topk_masking on linear models, where every comprehensiveness and sufficiency is a sum of
per-token contributions that can be written down by hand."""

from __future__ import annotations

import math

import pytest
import torch
from metric_models import Linear, positive_tokens

from captum_interactions.metrics import player_attributions, topk_masking

# One example, 4 tokens and 4 patches with value 1: contributions are the weights.
W_TEXT = torch.tensor([5.0, 1.0, -2.0, 0.5], dtype=torch.float64)  # sum 4.5
W_IMAGE = torch.tensor([3.0, 2.5, 2.0, 0.0], dtype=torch.float64)  # sum 7.5


def hand_example():
    model = Linear(W_TEXT, W_IMAGE)
    text = torch.ones(1, 4, 1, dtype=torch.float64)
    image = torch.ones(1, 4, 1, dtype=torch.float64)
    attributions = (W_TEXT.view(1, 4, 1).clone(), W_IMAGE.view(1, 4, 1).clone())
    return model, (text, image), attributions


def test_hand_computed_per_modality():
    model, inputs, attr = hand_example()
    res = topk_masking(model, inputs, attr, ks=(25, 50), n_random=2)
    # K=25: 1 token (5) + 1 patch (3). K=50: tokens 5, 1 and patches 3, 2.5.
    assert res.counts.tolist() == [[1, 1], [2, 2]]
    assert res.comprehensiveness[0].tolist() == pytest.approx([8.0, 11.5])
    # Sufficiency: p(x) = 12 minus the kept contributions.
    assert res.sufficiency[0].tolist() == pytest.approx([12 - 8.0, 12 - 11.5])
    assert res.aopc_comprehensiveness.item() == pytest.approx((8.0 + 11.5) / 2)
    assert res.aopc_sufficiency.item() == pytest.approx((4.0 + 0.5) / 2)
    assert res.original.item() == pytest.approx(12.0)


def test_hand_computed_global():
    model, inputs, attr = hand_example()
    res = topk_masking(model, inputs, attr, ks=(25, 50), per="global", n_random=2)
    # K=25: 2 of 8 players (5, 3). K=50: 4 players (5, 3, 2.5, 2).
    assert res.counts.tolist() == [[2], [4]]
    assert res.comprehensiveness[0].tolist() == pytest.approx([8.0, 12.5])
    assert res.sufficiency[0].tolist() == pytest.approx([4.0, -0.5])


def test_use_abs_ranks_by_magnitude():
    model, inputs, attr = hand_example()
    res = topk_masking(model, inputs, attr, ks=(50,), use_abs=True, n_random=2)
    # Tokens by |w|: 5, -2; patches 3, 2.5.
    assert res.comprehensiveness[0].tolist() == pytest.approx([5 - 2 + 3 + 2.5])


def test_protected_players_are_never_removed():
    model, inputs, attr = hand_example()
    res = topk_masking(model, inputs, attr, ks=(25,), protected=[0], n_random=50)
    # Token 0 is protected: 3 eligible tokens -> round(0.75) = 1 (token 1), 1 patch (3).
    assert res.counts.tolist() == [[1, 1]]
    assert res.comprehensiveness[0].tolist() == pytest.approx([1.0 + 3.0])
    assert res.sufficiency[0].tolist() == pytest.approx([12 - (5 + 1 + 3)])  # token 0 kept
    # Random selections never touch token 0 either: with it removed comprehensiveness would
    # include its 5, and with it dropped from sufficiency's kept set, sufficiency would too.
    random_set = res.random_comprehensiveness + res.random_sufficiency  # = 12 - 5 always
    torch.testing.assert_close(random_set, torch.full_like(random_set, 7.0))


def test_random_control_removes_the_same_counts():
    """Weights 100 per token and 1 per patch: a comprehensiveness of 100 a + b means a tokens
    and b patches were removed."""
    model = Linear(torch.full((10,), 100.0), torch.ones(10))
    text, image = torch.ones(3, 10, 1), torch.ones(3, 10, 1)
    attr = torch.rand(3, 20, generator=torch.Generator().manual_seed(0))
    res = topk_masking(model, (text, image), attr, ks=(10, 25, 50), n_random=6)
    counts = res.counts  # (3, 2): tokens and patches per K
    assert counts.tolist() == [[1, 1], [3, 3], [5, 5]]  # 2.5 -> 3 (half up)
    expected = (100 * counts[:, 0] + counts[:, 1]).to(torch.float64)
    torch.testing.assert_close(res.comprehensiveness, expected.expand(3, -1))
    torch.testing.assert_close(res.random_comprehensiveness,
                               expected[None, :, None].expand(3, -1, 6))
    # Linear with v(empty) = 0: removed + kept contributions add up to p(x) in every repeat.
    torch.testing.assert_close(res.random_comprehensiveness + res.random_sufficiency,
                               torch.full((3, 3, 6), 1010.0, dtype=torch.float64))


def test_linear_model_batch_against_sorted_contributions():
    gen = torch.Generator().manual_seed(1)
    w_text = torch.randn(7, generator=gen, dtype=torch.float64)
    w_image = torch.randn(5, generator=gen, dtype=torch.float64)
    model = Linear(w_text, w_image)
    text, image = positive_tokens(8, 7, 5, seed=2)
    contrib_text, contrib_image = text[..., 0] * w_text, image[..., 0] * w_image
    attr = (contrib_text[..., None], contrib_image[..., None])
    ks = (15, 40, 100)
    res = topk_masking(model, (text, image), attr, ks=ks, n_random=3)
    for k, value in enumerate(ks):
        top = 0.0
        for contrib in (contrib_text, contrib_image):
            count = max(1, math.floor(value * contrib.shape[1] / 100 + 0.5))
            top = top + contrib.sort(1, descending=True).values[:, :count].sum(1)
        torch.testing.assert_close(res.comprehensiveness[:, k], top)
        torch.testing.assert_close(res.sufficiency[:, k], res.original - top)
    torch.testing.assert_close(res.comprehensiveness[:, 2], res.original)  # K=100: all


def test_feature_mask_groups_and_player_scores_agree():
    """Two tokens per player through feature_mask; (B, F) scores give the same result."""
    model = Linear(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([10.0, 20.0]))
    text, image = positive_tokens(2, 4, 2, seed=3)
    text = text.expand(-1, -1, 3).contiguous()  # (B, 4, 3): the feature dim is summed
    mask = (torch.tensor([[0, 0, 1, 1]]).unsqueeze(2), torch.tensor([[2, 3]]).unsqueeze(2))
    attr = (text * model.w_text.view(1, 4, 1), image * model.w_image.view(1, 2, 1))
    per_player = player_attributions((text, image), attr, feature_mask=mask)
    assert per_player.shape == (2, 4)
    torch.testing.assert_close(per_player[:, 0], attr[0][:, :2].sum((1, 2)))
    from_input = topk_masking(model, (text, image), attr, feature_mask=mask, ks=(50,))
    from_players = topk_masking(model, (text, image), per_player, feature_mask=mask, ks=(50,))
    torch.testing.assert_close(from_input.comprehensiveness, from_players.comprehensiveness)
    top_text = torch.maximum(per_player[:, 0], per_player[:, 1])
    top_image = torch.maximum(per_player[:, 2], per_player[:, 3])
    torch.testing.assert_close(from_input.comprehensiveness[:, 0], top_text + top_image)


def test_counts_round_half_up_with_at_least_one():
    model = Linear(torch.ones(6), torch.ones(6))
    text, image = torch.ones(1, 6, 1), torch.ones(1, 6, 1)
    res = topk_masking(model, (text, image), torch.zeros(1, 12), ks=(5, 25, 30, 100),
                       n_random=1)
    assert res.counts.tolist() == [[1, 1], [2, 2], [2, 2], [6, 6]]  # 0.3->1, 1.5->2, 1.8->2


def test_presence_removal_on_tiny_fusion(trained_fusion):
    model, text, image = trained_fusion
    attr = torch.randn(text.shape[0], 12, generator=torch.Generator().manual_seed(4),
                       dtype=torch.float64)
    res = topk_masking(model, (text, image), attr, ks=(20,), target=1, removal="presence",
                       n_random=2)
    # 20% of 6 tokens -> 1 token and 1 patch per example.
    top_text, top_image = attr[:, :6].argmax(1), attr[:, 6:].argmax(1)
    rows = torch.arange(text.shape[0])
    keep_text = torch.ones(text.shape[0], 6, dtype=torch.bool)
    keep_image = torch.ones(text.shape[0], 6, dtype=torch.bool)
    keep_text[rows, top_text] = False
    keep_image[rows, top_image] = False
    with torch.no_grad():
        full = model(text, image)[:, 1]
        removed = model(text, image, presence=(keep_text, keep_image))[:, 1]
        only = model(text, image, presence=(~keep_text, ~keep_image))[:, 1]
    torch.testing.assert_close(res.comprehensiveness[:, 0], full - removed)
    torch.testing.assert_close(res.sufficiency[:, 0], full - only)


def test_rows_per_forward_call_never_exceed_max_rows_per_eval():
    model = Linear(torch.ones(5), torch.ones(5))
    text, image = positive_tokens(4, 5, 5, seed=5)
    res = topk_masking(model, (text, image), torch.rand(4, 10), ks=(20, 40), n_random=3,
                       max_rows_per_eval=10)
    n_coalitions = 1 + 2 * 2 * (1 + 3)
    assert max(model.rows) <= 10
    assert len(model.rows) == math.ceil(n_coalitions / 2)
    assert res.random_comprehensiveness.shape == (4, 2, 3)
    assert res.random_aopc_comprehensiveness.shape == (4,)


def test_summary_lists_every_k_and_the_aopc():
    model, inputs, attr = hand_example()
    table = topk_masking(model, inputs, attr, ks=(25, 50), n_random=2).summary()
    lines = table.splitlines()
    assert "top-K% masking (modality)" in lines[0] and len(lines) == 5
    assert lines[2].split()[:3] == ["25", "1+1", "+8.0000"]
    assert lines[4].split()[0] == "AOPC"
