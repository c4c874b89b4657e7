"""The reweighting (routing) model: which expert should the prediction trust for this input?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_modality_means(inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
    """Mean of the present tokens of each modality, (B, M, H); 0 for an absent modality."""
    means = []
    for x, k in zip(inputs, keep, strict=True):
        w = k.to(x.dtype).unsqueeze(-1)
        means.append((x * w).sum(1) / w.sum(1).clamp_min(1.0))
    return torch.stack(means, 1)


class Reweighting(nn.Module):
    """Masked mean per modality, L2-normalised, concatenated -> MLP -> softmax(logits / T).

    L2 normalisation makes the routing depend on the direction of each modality summary, not
    its scale, so that no modality dominates the router by magnitude alone.
    """

    def __init__(self, num_modalities: int, hidden_dim: int, num_experts: int,
                 router_dim: int, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.mlp = nn.Sequential(
            nn.Linear(num_modalities * hidden_dim, router_dim),
            nn.GELU(),
            nn.Linear(router_dim, num_experts),
        )

    def forward(self, inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
        """Return (B, E) routing weights that sum to 1 per example."""
        summary = F.normalize(masked_modality_means(inputs, keep), dim=-1)  # 0 stays 0
        return (self.mlp(summary.flatten(1)) / self.temperature).softmax(-1)
