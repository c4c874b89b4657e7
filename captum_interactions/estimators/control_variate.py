"""Cross-fitted control variates for SII sampling.

The sampler only samples interior sizes t = 2..n-2 (all four cells of every pair exist there).
For a surrogate game g(T) = a_{|T|} + Σ_k β_k [k ∈ T] + Σ_{k<l} ψ_kl [k, l ∈ T], the SII
contribution of one interior size is the same for every t and known in closed form:

* per-size intercepts and linear terms contribute exactly 0;
* ψ contributes (ψ_ij - Σ_{l∉ij}(ψ_il + ψ_jl)/(n-2) + 2 Σ_{k<l, {k,l}∩{i,j}=∅} ψ_kl /
  ((n-2)(n-3))) / (n-1).

So SII(v) on the sampled sizes = (their number) × that + SII(v - g), and the second term is
estimated on the residual, whose variance is much smaller: the main effects (linear) and
pairwise effects (quadratic) of all other players are gone. g is fitted once per replicate on
the *other* replicates (leave-one-replicate-out), so it never depends on the rows it corrects
and the estimator stays unbiased.

With complementary pairs the surrogate is fitted to w(T) = v(T) + v(N∖T). There the linear
terms of any game of degree <= 3 are tied to its pair terms: ψ_kl ([k,l ∈ T] + [k,l ∉ T]) =
ψ_kl (1 - T_k - T_l + 2 T_k T_l). The *tied* quadratic surrogate uses exactly these features,
2 T_k T_l - T_k - T_l with pair coefficient 2φ_kl: n(n-1)/2 coefficients instead of n(n+1)/2,
which still absorb all pairwise and three-way effects and fit better on small budgets
(docs/estimators.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from captum_interactions.modes import Surrogate


def pair_index(n: int, device: torch.device) -> Tensor:
    """(2, n(n-1)/2) indices of the pairs k < l."""
    return torch.triu_indices(n, n, offset=1, device=device)


class ReplicateRegression:
    """Streams per-replicate sufficient statistics and fits leave-one-replicate-out surrogates.

    Args:
        n_replicates: R.
        n_players: n (sizes run over 0..n).
        batch_size: B.
        device: where statistics live (float64).
        mode: ``"quadratic"`` (per-size intercepts, player slopes and pair terms),
            ``"linear"`` (intercepts and slopes), ``"size"`` (intercepts) or ``"none"``.
        tied: with ``"quadratic"``, use the tied features 2 T_k T_l - T_k - T_l (for values
            symmetrised over complementary pairs).
    """

    def __init__(
        self, n_replicates: int, n_players: int, batch_size: int, device: torch.device,
        mode: Surrogate = "linear", *, tied: bool = False,
    ) -> None:
        r, n, b = n_replicates, n_players, batch_size
        self.mode = mode
        self.n_replicates, self.n_players, self.batch_size = r, n, b
        self.pairs = pair_index(n, device) if mode == "quadratic" else None
        self.tied = tied and self.pairs is not None
        # Pair-term columns start after the player slopes, unless the slopes are tied.
        self.pair_offset = 0 if self.tied else n
        n_pairs = n * (n - 1) // 2
        p = {"quadratic": self.pair_offset + n_pairs, "linear": n}.get(mode, 0)
        self.n_features = p
        f64 = torch.float64
        self.count = torch.zeros(r, n + 1, dtype=f64, device=device)
        self.sum_v = torch.zeros(r, n + 1, b, dtype=f64, device=device)
        self.sum_x = torch.zeros(r, n + 1, p, dtype=f64, device=device)
        self.gram = torch.zeros(r, p, p, dtype=f64, device=device)
        self.cross = torch.zeros(r, b, p, dtype=f64, device=device)

    def features(self, present: Tensor) -> Tensor:
        """(rows, n) bool -> (rows, p) float64 regression features."""
        z = present.to(torch.float64)
        if self.pairs is None:
            return z if self.n_features else z[:, :0]
        first, second = z[:, self.pairs[0]], z[:, self.pairs[1]]
        if self.tied:
            return 2 * first * second - first - second
        return torch.cat([z, first * second], dim=1)

    def add(self, replicate: Tensor, size: Tensor, present: Tensor, values: Tensor) -> None:
        """Add rows: replicate (rows,), size (rows,), present (rows, n), values (rows, B).

        Rows arrive grouped by replicate, so a block holds only a few replicate segments; each
        segment updates its statistics with matrix products (per-size sums via one-hot).
        """
        if self.mode == "none":
            return
        v = values.to(torch.float64)
        x = self.features(present)
        # Features are small integers (0, ±1, the tied -1), so the Gram matrix (counts) is exact
        # in float32 for any block below 2^24 rows, at half the cost of float64: it is the
        # estimator's largest per-row cost (p^2 per row with p = n(n-1)/2 up to 496).
        x32 = x.to(torch.float32)
        reps, lengths = torch.unique_consecutive(replicate, return_counts=True)
        offset = 0
        for rep, length in zip(reps.tolist(), lengths.tolist(), strict=True):
            part = slice(offset, offset + length)
            offset += length
            onehot = nn.functional.one_hot(size[part], self.n_players + 1).to(torch.float64)
            self.count[rep] += onehot.sum(0)
            self.sum_v[rep] += onehot.t() @ v[part]
            if self.n_features:
                self.sum_x[rep] += onehot.t() @ x[part]
                self.cross[rep] += v[part].t() @ x[part]
                self.gram[rep] += (x32[part].t() @ x32[part]).to(torch.float64)

    def fit(self, ridge: float = 1e-3) -> tuple[Tensor, Tensor]:
        """Leave-one-replicate-out fits, centred within each size.

        Returns:
            intercept (R, n + 1, B) and slopes (R, p, B) of g_r for each replicate r.
        """
        r, b = self.n_replicates, self.batch_size
        loo = lambda stat: stat.sum(0, keepdim=True) - stat  # noqa: E731
        count = loo(self.count)
        safe = count.clamp_min(1.0).unsqueeze(2)
        mean_v = loo(self.sum_v) / safe
        slopes = torch.zeros(r, self.n_features, b, dtype=torch.float64, device=count.device)
        sum_x = loo(self.sum_x)
        if self.n_features:
            scaled = sum_x / safe.sqrt()
            a = loo(self.gram) - scaled.transpose(1, 2) @ scaled
            rhs = loo(self.cross) - torch.einsum("rtb,rtf->rbf", mean_v, sum_x)
            scale = a.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
            eye = torch.eye(self.n_features, dtype=torch.float64, device=a.device)
            # The ridged system is symmetric positive definite: solve it by Cholesky. (Batched
            # LU solves of ~200+ unknowns are wrong in torch 2.13 on CPU once the thread count
            # is above one; Cholesky is exact at any thread count and cheaper.)
            factor = torch.linalg.cholesky(a + (ridge * scale).view(-1, 1, 1) * eye)
            slopes = torch.cholesky_solve(rhs.transpose(1, 2), factor)
            mean_v = mean_v - (sum_x / safe) @ slopes
        # A size without held-out units (tiny budgets) falls back to the held-out mean over
        # all sizes, so that e.g. the constant v(T) + v(N∖T) of an additive game still cancels.
        pooled_v = loo(self.sum_v).sum(1) - (sum_x.sum(1).unsqueeze(1) @ slopes).squeeze(1)
        pooled = pooled_v / count.sum(1, keepdim=True).clamp_min(1.0)  # (R, B)
        intercept = torch.where(count.unsqueeze(2) > 0, mean_v, pooled.unsqueeze(1))
        return intercept, slopes

    def fitted(self, intercept: Tensor, slopes: Tensor, replicate: Tensor, size: Tensor,
               present: Tensor) -> Tensor:
        """g_r(T) for rows grouped by replicate: (rows, B)."""
        out = intercept[replicate, size]
        if self.n_features:
            features = self.features(present)
            reps, lengths = torch.unique_consecutive(replicate, return_counts=True)
            offset = 0
            for rep, length in zip(reps.tolist(), lengths.tolist(), strict=True):
                part = slice(offset, offset + length)
                out[part] += features[part] @ slopes[rep]
                offset += length
        return out

    def sii_per_size(self, slopes: Tensor) -> Tensor | None:
        """SII of g_r on one interior size, for every replicate: (R, B, n, n), or ``None``
        when the surrogate has no pair terms (its SII is then exactly 0)."""
        if self.pairs is None:
            return None
        r, b, n = self.n_replicates, self.batch_size, self.n_players
        psi = torch.zeros(r, b, n, n, dtype=torch.float64, device=slopes.device)
        coef = slopes[:, self.pair_offset :].transpose(1, 2)  # (R, B, n(n-1)/2)
        if self.tied:
            coef = 2 * coef  # 2 T_k T_l - T_k - T_l carries the pair term twice
        psi[:, :, self.pairs[0], self.pairs[1]] = coef
        return pair_term_sii(psi + psi.transpose(2, 3))


def pair_term_sii(psi: Tensor) -> Tensor:
    """SII on one interior size of the pair terms Σ_{k<l} ψ_kl T_k T_l: (..., n, n) from the
    symmetric (..., n, n) coefficients ψ (zero diagonal); see the module docstring."""
    n = psi.shape[-1]
    row = psi.sum(-1)  # Σ_l ψ_il
    total = row.sum(-1) / 2  # Σ_{k<l} ψ_kl
    touching = row.unsqueeze(-1) + row.unsqueeze(-2) - psi  # pairs meeting {i, j}
    one_shared = touching - psi  # ... other than {i, j} itself
    out = psi - one_shared / (n - 2)
    if n > 3:
        disjoint = total[..., None, None] - touching
        out = out + 2 * disjoint / ((n - 2) * (n - 3))
    return out / (n - 1)
