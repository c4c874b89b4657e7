"""Paired tests across examples of ranked versus random drops, one test per budget.

For each example b the ranked removal gives a drop X_b and the n random removals Y_b1..Y_bn;
the paired difference is D_b = X_b - mean_r Y_br. Two tests of "the ranking is no better than
random" are offered:

* ``"exchange"`` (default): the Wilcoxon signed-rank statistic of D (sum over examples of
  sign(D_b) times the rank of |D_b|), with its null distribution from the exchange argument:
  if the ranking is uninformative, the ranked selection of an example is exchangeable with its
  random selections, so relabelling, independently per example, a uniformly chosen one of the
  n + 1 selections as "ranked" draws from the null. The p-value is
  (1 + #{null draws at least as extreme}) / (1 + n_draws). It is valid whatever the shape of
  the drop distribution.
* ``"wilcoxon"``: scipy's classical signed-rank test of D. Its null is "D is symmetric about
  0", which fails when drops are skewed (e.g. a model that saturates once a few pairs are
  removed): D = X - mean(Y) is then skewed even for a random ranking, and the test rejects
  too often (docs/metrics.md gives measured rates).

Shared rules: differences within ``tol`` (a few ulps of the model's output dtype, relative to
the original score) are rounding noise and count as zero; zero differences are dropped
(Wilcoxon's ``zero_method="wilcox"``); when every difference is zero, p = 1.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.stats import wilcoxon
from torch import Tensor

from captum_interactions.modes import Alternative


def zero_tolerance(original: Tensor, output_dtype: torch.dtype) -> Tensor:
    """(B,) differences at or below this are rounding noise of the model's output dtype."""
    eps = torch.finfo(output_dtype).eps if output_dtype.is_floating_point else 0.0
    return 8 * eps * original.abs().clamp(min=1.0)


def signed_rank(diff: Tensor, tol: Tensor) -> Tensor:
    """Signed-rank statistic over the last axis: sum of sign(d) * rank(|d|) over the non-zero
    differences, with average ranks for tied magnitudes. diff (..., B), tol (B,) -> (...)."""
    nonzero = diff.abs() > tol
    magnitude = torch.where(nonzero, diff.abs(), torch.full_like(diff, -1.0))
    ordered = magnitude.sort(dim=-1).values.contiguous()
    below = torch.searchsorted(ordered, magnitude.contiguous(), right=False)
    upto = torch.searchsorted(ordered, magnitude.contiguous(), right=True)
    # Average 1-based rank among all entries, shifted past the zeros (which rank lowest).
    ranks = (below + upto + 1).to(diff.dtype) / 2 - (~nonzero).sum(-1, keepdim=True)
    return (diff.sign() * torch.where(nonzero, ranks, torch.zeros_like(ranks))).sum(-1)


def exchange_test(
    ranked: Tensor,
    random_drop: Tensor,
    tol: Tensor,
    alternative: Alternative,
    *,
    n_draws: int,
    seed: int,
) -> Tensor:
    """Signed-rank test with the exchange null (see the module docstring).

    Args:
        ranked: (B, K) ranked drops.
        random_drop: (B, K, n) random drops.
        tol: (B,) zero tolerance.
        alternative: ``"greater"``, ``"two-sided"`` or ``"less"``.
        n_draws: null draws per budget.
        seed: seed of the null draws (a generator on the drops' device).

    Returns:
        (K,) float64 p-values on the drops' device.
    """
    pool = torch.cat([ranked[..., None], random_drop], dim=-1).to(torch.float64)
    batch, n_budgets, n_sel = pool.shape
    # D when selection k plays "ranked": Z_k - (S - Z_k) / n, as (K, B, n + 1).
    as_ranked = ((n_sel * pool - pool.sum(-1, keepdim=True)) / (n_sel - 1)).transpose(0, 1)
    observed = signed_rank(as_ranked[..., 0], tol)  # (K,)
    generator = torch.Generator(device=pool.device).manual_seed(seed)
    extreme = torch.zeros(n_budgets, dtype=torch.long, device=pool.device)
    # Null draws in chunks of about 2^20 differences: memory stays bounded for any B.
    chunk = max(1, (1 << 20) // (batch * n_budgets))
    for start in range(0, n_draws, chunk):
        size = min(chunk, n_draws - start)
        pick = torch.randint(
            n_sel, (size, n_budgets, batch, 1), generator=generator, device=pool.device
        )
        null_d = as_ranked.expand(size, -1, -1, -1).gather(3, pick)[..., 0]
        null = signed_rank(null_d, tol)  # (size, K)
        # Statistics are multiples of 1/2: the margin only absorbs float noise.
        if alternative == "greater":
            extreme += (null >= observed - 1e-9).sum(0)
        elif alternative == "less":
            extreme += (null <= observed + 1e-9).sum(0)
        else:
            extreme += (null.abs() >= observed.abs() - 1e-9).sum(0)
    p_value = (1 + extreme).to(torch.float64) / (1 + n_draws)
    all_zero = ~(as_ranked[..., 0].abs() > tol).any(-1)
    return torch.where(all_zero, torch.ones_like(p_value), p_value)


def wilcoxon_test(
    ranked: Tensor, random_mean: Tensor, tol: Tensor, alternative: Alternative = "greater"
) -> Tensor:
    """scipy's classical signed-rank test of ranked - random_mean, one per column: (K,)."""
    diff = ranked - random_mean
    diff = torch.where(diff.abs() <= tol[:, None], torch.nan, diff)
    data = diff.detach().cpu().numpy()
    with warnings.catch_warnings():
        # Columns with no non-zero difference come back NaN with a warning; they get p = 1.
        warnings.simplefilter("ignore")
        result = wilcoxon(data, axis=0, nan_policy="omit", alternative=alternative)
    p_value = np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64))
    p_value = np.where(np.isnan(p_value), 1.0, p_value)
    return torch.as_tensor(p_value, dtype=torch.float64, device=ranked.device)
