"""The paired tests of PairMaskingFaithfulness: the exchange null against exact enumeration,
calibration under a skewed null where the classical signed-rank test fails, tie handling."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.stats import rankdata

from captum_interactions.metrics.paired_test import exchange_test, signed_rank, wilcoxon_test


def brute_signed_rank(diff: np.ndarray) -> float:
    nonzero = diff[diff != 0]
    return float((np.sign(nonzero) * rankdata(np.abs(nonzero))).sum())


def test_signed_rank_matches_scipy_ranks_with_ties_and_zeros():
    gen = torch.Generator().manual_seed(0)
    diff = torch.randint(-3, 4, (50, 9), generator=gen).to(torch.float64)  # many ties, zeros
    tol = torch.zeros(9, dtype=torch.float64)
    expected = torch.tensor([brute_signed_rank(row) for row in diff.numpy()], dtype=torch.float64)
    torch.testing.assert_close(signed_rank(diff, tol), expected)


def test_exchange_p_value_matches_exact_enumeration():
    """3 examples, 2 random repeats: the null relabels one of 3 selections per example, 27
    equally likely configurations."""
    ranked = torch.tensor([[3.0], [1.0], [2.5]], dtype=torch.float64)
    random = torch.tensor([[[1.0, 2.0]], [[1.5, 0.0]], [[0.5, 2.0]]], dtype=torch.float64)
    pool = torch.cat([ranked[..., None], random], dim=-1)[:, 0, :].numpy()  # (B, 3)
    as_ranked = (3 * pool - pool.sum(1, keepdims=True)) / 2
    observed = brute_signed_rank(as_ranked[:, 0])
    null = [
        brute_signed_rank(as_ranked[np.arange(3), list(pick)])
        for pick in itertools.product(range(3), repeat=3)
    ]
    exact = np.mean(np.array(null) >= observed - 1e-9)
    n_draws = 40000
    p = exchange_test(ranked, random, torch.zeros(3, dtype=torch.float64), "greater",
                      n_draws=n_draws, seed=0).item()
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / n_draws) + 1 / n_draws, (p, exact)


def saturating_null(n_tests: int, batch: int, n_random: int, seed: int, saturate: float = 0.8):
    """Drops of a random ranking on a model that saturates: a share ``saturate`` of the
    selections remove everything (drop 1), the others a uniform part. Ranked and random are
    i.i.d."""
    gen = torch.Generator().manual_seed(seed)
    draws = torch.rand(batch, n_tests, 1 + n_random, generator=gen, dtype=torch.float64)
    saturated = torch.rand(draws.shape, generator=gen) < saturate
    drops = torch.where(saturated, torch.ones_like(draws), draws)
    return drops[..., 0], drops[..., 1:]


def test_exchange_test_is_calibrated_where_the_classical_test_is_not():
    ranked, random = saturating_null(n_tests=400, batch=20, n_random=10, seed=1)
    tol = torch.zeros(20, dtype=torch.float64)
    exchange = exchange_test(ranked, random, tol, "greater", n_draws=999, seed=2)
    classical = wilcoxon_test(ranked, random.mean(-1), tol, "greater")
    assert (exchange < 0.05).double().mean() < 0.08  # nominal 0.05
    # D = X - mean(Y) is skewed here, so scipy's symmetric null rejects far too often.
    assert (classical < 0.05).double().mean() > 0.2


def test_exchange_test_has_power_against_a_better_than_random_ranking():
    """Random selections saturate half the time, the ranked one always: 20 examples make that
    a 2^-20 event under the null."""
    ranked, random = saturating_null(n_tests=50, batch=20, n_random=10, seed=3, saturate=0.5)
    better = torch.ones_like(ranked)
    p = exchange_test(better, random, torch.zeros(20, dtype=torch.float64), "greater",
                      n_draws=999, seed=4)
    assert (p < 0.01).double().mean() > 0.9


def test_rounding_noise_counts_as_a_tie():
    ranked = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    random = ranked[..., None] + torch.tensor([[[1e-13]], [[-1e-13]]], dtype=torch.float64)
    tol = torch.full((2,), 1e-12, dtype=torch.float64)
    assert exchange_test(ranked, random, tol, "two-sided", n_draws=99, seed=0).item() == 1.0
    assert wilcoxon_test(ranked, random.mean(-1), tol, "two-sided").item() == 1.0
