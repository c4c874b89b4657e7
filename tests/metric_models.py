"""Closed-form models for the metric tests: outputs are sums of planted products or of linear
contributions of present tokens, so every drop has a hand-computable value.

Inputs are text (B, T, 1) and image (B, P, 1) with the default players (token t is player t,
patch p is player T + p); under the zero baseline an absent token contributes nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CountingModule(nn.Module):
    """Records the rows of every forward call (to check max_rows_per_eval)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []

    def count(self, rows: int) -> None:
        self.rows.append(rows)


class PairProduct(CountingModule):
    """v = Σ_{(a, b)} coef[a, b] · text[a] · image[b]: Möbius terms on cross pairs only, so
    SII(a, T + b) = coef[a, b] · text[a] · image[b] (the pair's contribution) and removing a
    set of players removes exactly the products that touch them.

    Accepts ``presence=(text_mask, image_mask)`` as well (absent = contributes nothing).
    """

    def __init__(self, coef: Tensor) -> None:
        super().__init__()
        self.register_buffer("coef", coef.to(torch.float64))

    def forward(self, text: Tensor, image: Tensor, presence: tuple[Tensor, Tensor] | None = None
                ) -> Tensor:
        self.count(text.shape[0])
        x, y = text[..., 0].to(torch.float64), image[..., 0].to(torch.float64)
        if presence is not None:
            x, y = x * presence[0], y * presence[1]
        return torch.einsum("bi,ij,bj->b", x, self.coef, y)

    def contributions(self, text: Tensor, image: Tensor) -> Tensor:
        """(B, T, P) contribution of every cross pair."""
        x, y = text[..., 0].to(torch.float64), image[..., 0].to(torch.float64)
        return x[:, :, None] * self.coef[None] * y[:, None, :]

    def sii(self, text: Tensor, image: Tensor) -> Tensor:
        """(B, F, F) exact SII: the pair contributions, symmetric."""
        n_text = text.shape[1]
        contrib = self.contributions(text, image)
        n = n_text + image.shape[1]
        out = torch.zeros(text.shape[0], n, n, dtype=torch.float64)
        out[:, :n_text, n_text:] = contrib
        out[:, n_text:, :n_text] = contrib.transpose(1, 2)
        return out


class Linear(CountingModule):
    """v = Σ_t w_text[t] · text[t] + Σ_p w_image[p] · image[p] (sum over the feature dim)."""

    def __init__(self, w_text: Tensor, w_image: Tensor) -> None:
        super().__init__()
        self.register_buffer("w_text", w_text.to(torch.float64))
        self.register_buffer("w_image", w_image.to(torch.float64))

    def forward(self, text: Tensor, image: Tensor) -> Tensor:
        self.count(text.shape[0])
        t = text.to(torch.float64).sum(2) @ self.w_text
        i = image.to(torch.float64).sum(2) @ self.w_image
        return t + i


def positive_tokens(batch: int, n_text: int, n_image: int, seed: int) -> tuple[Tensor, Tensor]:
    """Token values in [0.5, 1.5): never equal to the zero baseline."""
    gen = torch.Generator().manual_seed(seed)
    text = torch.rand(batch, n_text, 1, generator=gen, dtype=torch.float64) + 0.5
    image = torch.rand(batch, n_image, 1, generator=gen, dtype=torch.float64) + 0.5
    return text, image
