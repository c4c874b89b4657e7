"""A tiny two-modality fusion Transformer, trained in seconds on a task with planted synergy.

Used by the tests (sampling vs exact on a real PyTorch model) and by the estimator comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyFusionTransformer(nn.Module):
    """text (B, T, H) and image (B, P, H) -> logits (B, C) through one Transformer encoder.

    Accepts ``presence=(text_mask, image_mask)`` (bool, True = present): absent tokens are
    dropped from attention with a key-padding mask and from the mean pooling, so it supports
    both removal operators of ``captum_interactions``.
    """

    def __init__(self, hidden: int = 16, n_classes: int = 2, n_layers: int = 1,
                 n_heads: int = 2, max_len: int = 64) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            hidden, n_heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.modality = nn.Parameter(torch.randn(2, hidden) * 0.1)
        self.position = nn.Parameter(torch.randn(max_len, hidden) * 0.1)
        self.cls = nn.Parameter(torch.randn(hidden) * 0.1)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, text: Tensor, image: Tensor,
                presence: tuple[Tensor, Tensor] | None = None) -> Tensor:
        batch, n_text, n_image = text.shape[0], text.shape[1], image.shape[1]
        tokens = torch.cat([text + self.modality[0], image + self.modality[1]], dim=1)
        tokens = tokens + self.position[: n_text + n_image]
        tokens = torch.cat([self.cls.expand(batch, 1, -1), tokens], dim=1)
        if presence is None:
            keep = torch.ones(batch, n_text + n_image, dtype=torch.bool, device=text.device)
        else:
            keep = torch.cat(presence, dim=1)
        keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)  # CLS always present
        encoded = self.encoder(tokens, src_key_padding_mask=~keep)
        return self.head(encoded[:, 0])



def planted_synergy_data(n: int, n_text: int = 8, n_image: int = 8, hidden: int = 16,
                         seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random tokens with planted rules: label = (a AND b) OR c, where bit a is the sign of
    text token 0, bit b the sign of image patch 0 (a synergistic pair), and bit c is carried
    by both text token 1 and image patch 1 (a redundant pair)."""
    gen = torch.Generator().manual_seed(seed)
    text = torch.randn(n, n_text, hidden, generator=gen)
    image = torch.randn(n, n_image, hidden, generator=gen)
    a = text[:, 0, 0] > 0
    b = image[:, 0, 0] > 0
    c = torch.rand(n, generator=gen) < 0.3
    sign_c = c.float() * 2 - 1
    text[:, 1, 0] = sign_c * text[:, 1, 0].abs()
    image[:, 1, 0] = sign_c * image[:, 1, 0].abs()
    labels = ((a & b) | c).long()
    return text, image, labels


def train_tiny_fusion(seed: int = 0, steps: int = 400, n_text: int = 8, n_image: int = 8,
                      hidden: int = 16, lr: float = 3e-3,
                      ) -> tuple[TinyFusionTransformer, Tensor, Tensor]:
    """Train a :class:`TinyFusionTransformer` for a few seconds on CPU (fresh data each step,
    Adam at ``lr``; 3e-3 does not train a hidden-256 model in 175 steps, 1e-3 reaches ~0.8
    test accuracy in 300).

    Returns:
        the model in eval mode, and held-out text and image inputs (16 examples).
    """
    torch.manual_seed(seed)
    model = TinyFusionTransformer(hidden=hidden, max_len=max(64, n_text + n_image))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        text, image, labels = planted_synergy_data(128, n_text, n_image, hidden, seed + 1000 + step)
        loss = nn.functional.cross_entropy(model(text, image), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test_text, test_image, _ = planted_synergy_data(16, n_text, n_image, hidden, seed + 1)
    return model, test_text, test_image
