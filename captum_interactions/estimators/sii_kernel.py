"""One matrix product lets a block of coalitions update the SII of every pair at once.

With α_k(T) = w(T) · h_{|T|}(k) · v(T) for k = |T ∩ {i, j}| (see :mod:`.size_plan`), the
sum over T of α_{k_ij(T)}(T) for all pairs is

    Zᵀ diag(α₂ - 2α₁ + α₀) Z + u 1ᵀ + 1 uᵀ + Σ α₀,   u = Zᵀ (α₁ - α₀),

where Z is the (rows, F) 0/1 coalition matrix. The diagonal of the result is meaningless and
is masked by the caller.
"""

from __future__ import annotations

from torch import Tensor


def accumulate_pair_sums(
    out: Tensor, present: Tensor, values: Tensor, row_weight: Tensor, size_weights: Tensor,
    sizes: Tensor,
) -> None:
    """Add Σ_T row_weight(T) · h_{|T|}(k_ij(T)) · v_b(T) for all pairs into ``out`` in place.

    Args:
        out: (B, F, F) float64 accumulator.
        present: (rows, F) bool coalitions shared by the B examples.
        values: (rows, B) values (or residuals) of each coalition for each example.
        row_weight: (rows,) weight of each coalition, e.g. 1 / (coalitions of its size).
        size_weights: (n + 1, 3) h_t(k) from :func:`.size_plan.sii_size_weights`.
        sizes: (rows,) coalition sizes.
    """
    z = present.to(out.dtype)
    hw = size_weights[sizes] * row_weight.unsqueeze(1)  # (rows, 3)
    alpha = values.to(out.dtype).unsqueeze(2) * hw.unsqueeze(1)  # (rows, B, 3)
    quad = alpha[..., 2] - 2 * alpha[..., 1] + alpha[..., 0]  # (rows, B)
    lin = alpha[..., 1] - alpha[..., 0]
    const = alpha[..., 0].sum(0)  # (B,)
    weighted = quad.t().unsqueeze(2) * z.unsqueeze(0)  # (B, rows, F)
    out += weighted.transpose(1, 2) @ z
    u = lin.t() @ z  # (B, F)
    out += u.unsqueeze(2) + u.unsqueeze(1) + const.view(-1, 1, 1)
