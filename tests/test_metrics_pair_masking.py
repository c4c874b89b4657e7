"""PairMaskingFaithfulness against closed forms: planted pair products, whose ranked drops are
known exactly, the exact expected drop of random pairs, and the real removal operators."""

from __future__ import annotations

import math

import pytest
import torch
from metric_models import PairProduct, positive_tokens
from oracles import value_of_model

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.metrics import PairMaskingFaithfulness

T = P = 5  # 25 cross pairs
N_PAIRS = T * P


def planted_model() -> PairProduct:
    """Three disjoint planted pairs: token k x patch k with coefficients 4, 2, 1."""
    coef = torch.zeros(T, P, dtype=torch.float64)
    coef[0, 0], coef[1, 1], coef[2, 2] = 4.0, 2.0, 1.0
    return PairProduct(coef)


def dense_model(seed: int = 0) -> PairProduct:
    """Every cross pair interacts, with coefficients in [0.5, 1.5)."""
    gen = torch.Generator().manual_seed(seed)
    return PairProduct(torch.rand(T, P, generator=gen, dtype=torch.float64) + 0.5)


def planted_contributions(model: PairProduct, text, image) -> torch.Tensor:
    """(B, 3) contributions of the planted pairs."""
    contrib = model.contributions(text, image)
    return torch.stack([contrib[:, k, k] for k in range(3)], dim=1)


def test_ranked_drop_is_the_sum_of_the_top_planted_products_and_beats_random():
    model = planted_model()
    text, image = positive_tokens(20, T, P, seed=1)
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(1, 2, 3, 5), n_random=10
    )
    top = planted_contributions(model, text, image).sort(1, descending=True).values.cumsum(1)
    expected = torch.cat([top, top[:, 2:]], dim=1)  # budget 5 removes nothing more
    torch.testing.assert_close(res.ranked_drop, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.original, top[:, 2], rtol=0, atol=1e-12)
    assert res.budgets == (1, 2, 3, 5)
    assert res.ranked_drop.shape == (20, 4) and res.random_drop.shape == (20, 4, 10)
    assert (res.gap > 0.05 * res.original.mean()).all()
    # Budget 5: random pairs also kill all three products 80% of the time, so the ranking
    # is less distinguishable from random there (the exchange test accounts for it).
    assert (res.p_value[:3] < 1e-3).all() and res.p_value[3] < 0.05, res.p_value
    assert (res.wins >= 18).all()
    classic = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(1, 2, 3, 5), n_random=10,
        test="wilcoxon",
    )
    assert (classic.p_value < 1e-3).all(), classic.p_value
    torch.testing.assert_close(classic.ranked_drop, res.ranked_drop)


def test_real_sii_scores_give_the_same_ranked_drops():
    """End to end: exact SII from the attribution core ranks the planted pairs first."""
    model = planted_model()
    text, image = positive_tokens(6, T, P, seed=2)
    sii = ShapleyInteractionIndex(model).attribute((text, image), method="exact")
    from_sii = PairMaskingFaithfulness(model).evaluate((text, image), sii, budgets=(1, 2, 3))
    closed = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(1, 2, 3)
    )
    torch.testing.assert_close(from_sii.ranked_drop, closed.ranked_drop, rtol=0, atol=1e-9)


def test_random_drop_matches_the_exact_expectation_of_uniform_pairs():
    """b uniform pairs out of 25 miss product (k, k) with probability C(16, b) / C(25, b): the
    9 pairs that touch token k or patch k must all be avoided."""
    model = planted_model()
    text, image = positive_tokens(20, T, P, seed=3)
    budgets = (1, 2, 5)
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=budgets, n_random=50, seed=7
    )
    contrib = planted_contributions(model, text, image).sum(1)  # (B,)
    for k, b in enumerate(budgets):
        hit = 1 - math.comb(N_PAIRS - (T + P - 1), b) / math.comb(N_PAIRS, b)
        residual = res.random_drop[:, k, :] - (hit * contrib)[:, None]
        stderr = residual.std() / math.sqrt(residual.numel())
        assert abs(residual.mean()) < 4 * stderr, (b, residual.mean(), stderr)


def test_uninformative_scores_give_no_gap_and_a_large_p_value():
    """Random scores: the ranked selection is one more random selection, so the gap is within
    its standard error of 0 and the test finds nothing; planted scores on the same inputs give
    a gap many standard errors above 0."""
    model = planted_model()
    text, image = positive_tokens(40, T, P, seed=4)
    gen = torch.Generator().manual_seed(5)
    noise = torch.rand(40, T + P, T + P, generator=gen, dtype=torch.float64)
    pmf = PairMaskingFaithfulness(model)
    informed = pmf.evaluate((text, image), model.sii(text, image), budgets=(1, 2, 3))
    random = pmf.evaluate((text, image), noise, budgets=(1, 2, 3))

    def stderr(res):
        return (res.ranked_drop - res.random_mean).std(0) / math.sqrt(40)

    assert (informed.p_value < 1e-3).all() and (informed.gap > 5 * stderr(informed)).all()
    assert (random.gap.abs() < 2.5 * stderr(random)).all(), (random.gap, stderr(random))
    assert (random.p_value > 0.05).all(), random.p_value


def test_descending_false_is_the_same_as_negated_scores():
    model = dense_model(1)
    text, image = positive_tokens(4, T, P, seed=6)
    scores = model.sii(text, image)
    pmf = PairMaskingFaithfulness(model)
    low_first = pmf.evaluate((text, image), scores, budgets=(1, 4), descending=False)
    negated = pmf.evaluate((text, image), -scores, budgets=(1, 4))
    torch.testing.assert_close(low_first.ranked_drop, negated.ranked_drop)
    torch.testing.assert_close(low_first.random_drop, negated.random_drop)
    high_first = pmf.evaluate((text, image), scores, budgets=(1, 4))
    assert (high_first.ranked_drop > low_first.ranked_drop).all()


def test_budgets_as_fractions_of_the_requested_pairs():
    model = planted_model()
    text, image = positive_tokens(3, T, P, seed=8)
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(0.01, 0.5, 1.0, 3), n_random=2
    )
    assert res.budgets == (1, 13, 25, 3)  # 0.25 -> at least 1, 12.5 -> 13 (half up)
    torch.testing.assert_close(res.ranked_drop[:, 2], res.original)  # all removed: v = 0
    torch.testing.assert_close(res.random_drop[:, 2], res.original[:, None].expand(-1, 2))


def test_rows_per_forward_call_never_exceed_max_rows_per_eval():
    model = dense_model()
    text, image = positive_tokens(6, T, P, seed=9)
    pmf = PairMaskingFaithfulness(model)
    pmf.evaluate((text, image), model.sii(text, image), budgets=(1, 2, 3), n_random=4,
                 max_rows_per_eval=20)
    n_coalitions = 1 + 3 * (1 + 4)  # original + ranked + random, all stacked
    assert max(model.rows) <= 20
    assert len(model.rows) == math.ceil(n_coalitions / (20 // 6))  # 3 coalitions per call
    assert sum(model.rows) == n_coalitions * 6
    model.rows.clear()
    pmf.evaluate((text, image), model.sii(text, image), budgets=(1, 2, 3), n_random=4)
    assert model.rows == [n_coalitions * 6]  # everything in one call by default


def test_matches_brute_force_removal_on_a_trained_transformer(trained_fusion):
    """Zero-baseline removal: ranked drop = v(N) - v(N minus the top pairs' players)."""
    model, text, image = trained_fusion
    gen = torch.Generator().manual_seed(10)
    scores = torch.randn(text.shape[0], 12, 12, generator=gen, dtype=torch.float64)
    scores = scores + scores.transpose(1, 2)
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), scores, budgets=(1, 2), target=1, n_random=3
    )
    for b in range(text.shape[0]):
        value = value_of_model(model, (text, image), b, target=1)
        cross = [(i, j) for i in range(6) for j in range(6, 12)]
        ranked = sorted(cross, key=lambda ij: -float(scores[b, ij[0], ij[1]]))
        players = set(range(12))
        for k, budget in enumerate((1, 2)):
            kept = players - {p for pair in ranked[:budget] for p in pair}
            expected = value(frozenset(players)) - value(frozenset(kept))
            assert res.ranked_drop[b, k].item() == pytest.approx(expected, abs=1e-9)


def test_presence_removal_on_tiny_fusion(trained_fusion):
    model, text, image = trained_fusion
    gen = torch.Generator().manual_seed(11)
    scores = torch.rand(text.shape[0], 12, 12, generator=gen, dtype=torch.float64)
    scores = scores + scores.transpose(1, 2)  # the metric ranks (s_ij + s_ji) / 2
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), scores, budgets=(2,), target=0, removal="presence", n_random=2
    )
    upper = torch.zeros(12, 12, dtype=torch.bool)
    upper[:6, 6:] = True
    for b in range(text.shape[0]):
        flat = scores[b].masked_fill(~upper, -1.0).flatten().topk(2).indices
        presence = torch.ones(1, 12, dtype=torch.bool)
        presence[0, flat // 12] = False
        presence[0, flat % 12] = False
        with torch.no_grad():
            full = model(text[b : b + 1], image[b : b + 1])[0, 0]
            masked = model(text[b : b + 1], image[b : b + 1],
                           presence=(presence[:, :6], presence[:, 6:]))[0, 0]
        assert res.ranked_drop[b, 0].item() == pytest.approx((full - masked).item(), abs=1e-9)
    assert torch.isfinite(res.random_drop).all()


def test_per_example_target_and_multi_output():
    model = dense_model()
    text, image = positive_tokens(4, T, P, seed=12)

    def two_outputs(t, i):
        v = model(t, i)
        return torch.stack([v, -2 * v], dim=1)

    pmf = PairMaskingFaithfulness(two_outputs)
    scores = model.sii(text, image)
    single = PairMaskingFaithfulness(model).evaluate((text, image), scores, budgets=(1, 3))
    mixed = pmf.evaluate((text, image), scores, budgets=(1, 3), target=[0, 1, 0, 1])
    sign = torch.tensor([1.0, -2.0, 1.0, -2.0], dtype=torch.float64)[:, None]
    torch.testing.assert_close(mixed.ranked_drop, single.ranked_drop * sign)


def test_summary_is_a_readable_table():
    model = planted_model()
    text, image = positive_tokens(5, T, P, seed=13)
    res = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(1, 2, 4), n_random=3
    )
    table = res.summary(title="SII, descending")
    lines = table.splitlines()
    assert lines[0] == "SII, descending"
    assert "5 examples, 25 requested pairs" in lines[1] and "p (greater)" in lines[2]
    assert len(lines) == 3 + 3
    assert lines[3].split()[0] == "1" and lines[5].split()[0] == "4"


def test_ties_everywhere_give_p_one_and_no_gap():
    """A model that ignores its input: every drop is 0, every difference a tie."""
    text, image = positive_tokens(6, T, P, seed=14)
    scores = torch.rand(6, T + P, T + P)
    for test in ("exchange", "wilcoxon"):
        with pytest.warns(RuntimeWarning, match="removing players changed nothing"):
            res = PairMaskingFaithfulness(lambda t, i: t.sum((1, 2)) * 0 + 1.0).evaluate(
                (text, image), scores, budgets=(1, 2), test=test
            )
        assert (res.p_value == 1).all() and (res.gap == 0).all() and (res.wins == 0).all()


def test_a_single_example_gives_a_valid_but_large_p_value():
    model = planted_model()
    text, image = positive_tokens(1, T, P, seed=15)
    for test in ("exchange", "wilcoxon"):
        res = PairMaskingFaithfulness(model).evaluate(
            (text, image), model.sii(text, image), budgets=(1, 2), test=test
        )
        assert ((res.p_value > 0.05) & (res.p_value <= 1)).all(), (test, res.p_value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_run_on_cuda_and_agree_with_cpu():
    from captum_interactions.metrics import concentration, topk_masking

    model = planted_model()
    text, image = positive_tokens(8, T, P, seed=16)
    scores = model.sii(text, image)
    cpu = PairMaskingFaithfulness(model).evaluate((text, image), scores, budgets=(1, 3))
    gpu = PairMaskingFaithfulness(model.cuda()).evaluate(
        (text.cuda(), image.cuda()), scores.cuda(), budgets=(1, 3)
    )
    assert gpu.ranked_drop.device.type == "cuda" and gpu.p_value.device.type == "cuda"
    # No ties among the top-3 scores: the ranked drops do not depend on the device's RNG.
    torch.testing.assert_close(gpu.ranked_drop.cpu(), cpu.ranked_drop)
    assert (gpu.p_value < 1e-3).all()
    attr = torch.rand(8, T + P, dtype=torch.float64)
    top_cpu = topk_masking(model.cpu(), (text, image), attr, ks=(20, 40))
    top_gpu = topk_masking(model.cuda(), (text.cuda(), image.cuda()), attr.cuda(), ks=(20, 40))
    torch.testing.assert_close(top_gpu.comprehensiveness.cpu(), top_cpu.comprehensiveness)
    conc = concentration(scores.cuda())
    torch.testing.assert_close(conc.gini.cpu(), concentration(scores).gini)


@pytest.mark.parametrize("test", ["exchange", "wilcoxon"])
def test_results_of_parts_pool_into_the_result_of_the_whole(test):
    """Splitting the examples into parts and pooling them gives back every per-example drop,
    and the gap, wins and p-values of the whole (recomputed from the pooled drops)."""
    from dataclasses import replace

    from captum_interactions.metrics import PairMaskingResult

    model = dense_model(3)
    text, image = positive_tokens(12, T, P, seed=4)
    whole = PairMaskingFaithfulness(model).evaluate(
        (text, image), model.sii(text, image), budgets=(1, 3), n_random=6, test=test, seed=5)

    def part(a: int, b: int) -> PairMaskingResult:
        assert whole.tolerance is not None
        return replace(whole, ranked_drop=whole.ranked_drop[a:b],
                       random_drop=whole.random_drop[a:b], original=whole.original[a:b],
                       tolerance=whole.tolerance[a:b], gap=whole.gap * 0,
                       p_value=whole.p_value * 0, wins=whole.wins * 0)

    pooled = PairMaskingResult.concatenate([part(0, 5), part(5, 12)], seed=5)
    for name in ("ranked_drop", "random_drop", "original", "wins"):
        torch.testing.assert_close(getattr(pooled, name), getattr(whole, name), rtol=0, atol=0)
    # means over a strided and a contiguous tensor may sum in another order: 1 ulp apart
    torch.testing.assert_close(pooled.gap, whole.gap, rtol=0, atol=1e-14)
    torch.testing.assert_close(pooled.p_value, whole.p_value, rtol=0, atol=1e-12)
    random_mean = whole.random_drop.mean(-1)
    torch.testing.assert_close(pooled.gap, (whole.ranked_drop - random_mean).mean(0))
    with pytest.raises(ValueError, match="parts is empty"):
        PairMaskingResult.concatenate([])
    with pytest.raises(ValueError, match=r"parts\[1\] has budgets=\(1,\)"):
        PairMaskingResult.concatenate([part(0, 5), replace(part(5, 12), budgets=(1,))])
