"""concentration: extreme values on one-hot and uniform mass, and the textbook formulas."""

from __future__ import annotations

import math

import pytest
import torch

from captum_interactions.metrics import concentration, requested_pair_mask


def test_one_hot_and_uniform_vectors_give_the_extremes():
    values = torch.tensor([[0.0, 0.0, -3.0, 0.0, 0.0], [2.0, -2.0, 2.0, 2.0, -2.0]])
    res = concentration(values, top_fraction=0.4)  # top 2 of 5
    assert res.entropy.tolist() == pytest.approx([0.0, 1.0])
    assert res.gini.tolist() == pytest.approx([4 / 5, 0.0])
    assert res.top_mass.tolist() == pytest.approx([1.0, 2 / 5])
    assert res.n.tolist() == [5, 5]


def brute(values: list[float], top_fraction: float) -> tuple[float, float, float]:
    """Textbook formulas on |x|: H(p)/log n, mean absolute difference / (2 mean), top mass."""
    a = [abs(v) for v in values]
    n, total = len(a), sum(a)
    entropy = -sum(x / total * math.log(x / total) for x in a if x > 0) / math.log(n)
    gini = sum(abs(x - y) for x in a for y in a) / (2 * n * n * (total / n))
    k = max(1, math.floor(top_fraction * n + 0.5))
    return entropy, gini, sum(sorted(a, reverse=True)[:k]) / total


def test_random_vectors_with_masks_match_the_formulas():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    values[0, 3] = values[0, 5]  # a tie
    mask = torch.rand(6, 9, generator=gen) < 0.7
    mask[:, 0] = True
    res = concentration(values, mask, top_fraction=0.25)
    for b in range(6):
        kept = values[b][mask[b]].tolist()
        entropy, gini, top = brute(kept, 0.25)
        assert res.entropy[b].item() == pytest.approx(entropy)
        assert res.gini[b].item() == pytest.approx(gini)
        assert res.top_mass[b].item() == pytest.approx(top)
        assert res.n[b].item() == len(kept)


def test_interaction_matrices_count_each_requested_pair_once():
    """A (B, F, F) matrix: only the upper triangle of the requested pairs counts, so the
    within-modality entries (zero for pairs="cross") do not dilute the mass."""
    text, image = torch.zeros(2, 3, 4), torch.zeros(2, 4, 4)  # 12 cross pairs
    mask = requested_pair_mask((text, image))
    sym = torch.zeros(2, 7, 7)
    sym[0, 1, 5] = sym[0, 5, 1] = 2.0  # one pair holds everything
    sym[1, :3, 3:] = 1.0  # uniform over the cross pairs
    sym[1, 3:, :3] = 1.0
    sym[1, 0, 1] = sym[1, 1, 0] = 50.0  # a within-text entry: masked out
    res = concentration(sym, mask, top_fraction=0.5)
    assert res.n.tolist() == [12, 12]
    assert res.entropy.tolist() == pytest.approx([0.0, 1.0])
    assert res.gini.tolist() == pytest.approx([11 / 12, 0.0])
    assert res.top_mass.tolist() == pytest.approx([1.0, 0.5])
    unmasked = concentration(sym)  # all 21 pairs i < j
    assert unmasked.n.tolist() == [21, 21]
    assert unmasked.gini[0].item() == pytest.approx(20 / 21)


def test_zero_rows_are_nan_and_single_entries_are_concentrated():
    res = concentration(torch.tensor([[0.0, 0.0, 0.0]]))
    assert torch.isnan(res.entropy).all() and torch.isnan(res.gini).all()
    assert torch.isnan(res.top_mass).all()
    single = concentration(torch.tensor([[4.0, 1.0]]), torch.tensor([True, False]))
    assert single.n.tolist() == [1]
    assert (single.entropy.item(), single.gini.item(), single.top_mass.item()) == (0.0, 0.0, 1.0)
