r"""Shapley values (main effects) from the rows an SII estimator already evaluated.

For a uniform coalition T of size k, P(i ∈ T) = k/n, so the Shapley value

.. math::
    \phi_i = \frac1n \sum_{s=0}^{n-1} \Big(\mathbb E_{|S|=s,\,i\notin S} v(S \cup i)
             - \mathbb E_{|S|=s,\,i\notin S} v(S)\Big)
           = \sum_{k=0}^{n} \mathbb E_{|T|=k}\big[v(T)\, g_k(T_i)\big],
    \qquad g_k(1) = \tfrac1k,\ g_k(0) = -\tfrac1{n-k}

(the first term only for k ≥ 1, the second only for k ≤ n - 1) is a per-size expectation of a
linear function of v. Sizes the design enumerates contribute exactly; a sampled size k
contributes the mean of ``v(T) g_k(T_i)`` over its rows, which needs no extra forward call.

Since E_k[g_k(T_i)] = 0 for 0 < k < n, subtracting a per-size constant from v leaves the
estimate unbiased and removes the variance of the size's mean level; the constant is the mean
of v over the *other* replicates (cross-fitted), so it is independent of the rows it centres.
The spread of the replicate estimates gives the standard error, as for the pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def size_signs(present: Tensor, n: int) -> Tensor:
    """g_k(T_i) of each row: (rows, F) float64, 1/k where i ∈ T and -1/(n-k) where not."""
    k = present.sum(1, keepdim=True).to(torch.float64)
    inside = 1.0 / k.clamp_min(1.0)
    outside = -1.0 / (n - k).clamp_min(1.0)
    return torch.where(present, inside, outside)


class MainEffectSums:
    """Accumulates per-replicate Shapley-value estimates from evaluated rows.

    Args:
        n: players.
        batch: examples.
        n_replicates: independent replicates of the sampled rows (1 when nothing is sampled).
        device: where the sums live.
    """

    def __init__(self, n: int, batch: int, n_replicates: int, device: torch.device) -> None:
        self.n = n
        self.n_replicates = n_replicates
        self.exact = torch.zeros(batch, n, dtype=torch.float64, device=device)
        self.sampled = torch.zeros(n_replicates, batch, n, dtype=torch.float64, device=device)
        self.signs = torch.zeros(n_replicates, n + 1, n, dtype=torch.float64, device=device)
        self.level = torch.zeros(n_replicates, n + 1, batch, dtype=torch.float64, device=device)
        self.count = torch.zeros(n_replicates, n + 1, dtype=torch.float64, device=device)
        #: v(∅) and v(N) of every example, once an enumerated pass has seen them.
        self.empty: Tensor | None = None
        self.full: Tensor | None = None

    def add_exact(self, present: Tensor, values: Tensor, weight: Tensor) -> None:
        """Rows of enumerated sizes: ``weight`` = 1 / C(n, |T|) per row."""
        self.exact += (values * weight[:, None]).t() @ size_signs(present, self.n)
        sizes = present.sum(1)
        if bool((sizes == 0).any()):
            self.empty = values[sizes == 0][0]
        if bool((sizes == self.n).any()):
            self.full = values[sizes == self.n][0]

    def add_sampled(self, present: Tensor, values: Tensor, replicate: Tensor,
                    scale: Tensor) -> None:
        """Rows of sampled sizes: ``replicate`` of each row, ``scale`` = R / rows of its size
        (so a replicate's sum is its estimate of the size's expectation)."""
        signs = size_signs(present, self.n) * scale[:, None]
        self.sampled.index_add_(0, replicate, values[:, :, None] * signs[:, None, :])
        sizes = present.sum(1)
        cell = replicate * (self.n + 1) + sizes
        self.signs.view(-1, self.n).index_add_(0, cell, signs)
        self.level.view(-1, values.shape[1]).index_add_(0, cell, values)
        self.count.view(-1).index_add_(0, cell, torch.ones_like(scale))

    def finish(self) -> tuple[Tensor, Tensor]:
        """(B, F) Shapley values and their standard errors."""
        if not bool(self.count.any()):
            return self.exact, torch.zeros_like(self.exact)
        # Cross-fitted size means: replicate r is centred by the mean of the other replicates.
        total_level, total_count = self.level.sum(0), self.count.sum(0)
        other = (total_count[None] - self.count).clamp_min(1.0)
        means = (total_level[None] - self.level) / other[..., None]  # (R, n + 1, B)
        per_rep = self.sampled - torch.einsum("rkf,rkb->rbf", self.signs, means)
        r = self.n_replicates
        mean = per_rep.mean(0)
        var = per_rep.var(0, unbiased=True) if r > 1 else torch.zeros_like(mean)
        return self.exact + mean, (var / r).sqrt()
