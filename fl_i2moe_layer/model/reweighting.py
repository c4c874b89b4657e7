"""The reweighting (routing) model: which expert should the prediction trust for this input?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POOLINGS = ("mean", "max")


def masked_modality_means(inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
    """Mean of the present tokens of each modality, (B, M, H); 0 for an absent modality."""
    means = []
    for x, k in zip(inputs, keep, strict=True):
        w = k.to(x.dtype).unsqueeze(-1)
        means.append((x * w).sum(1) / w.sum(1).clamp_min(1.0))
    return torch.stack(means, 1)


def masked_modality_maxima(inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
    """Feature-wise maximum over the present tokens of each modality, (B, M, H); 0 for an
    absent modality. Unlike the mean, one distinctive token (a single cue word among ten, a
    single cue patch among 49) reaches the summary undiluted."""
    maxima = []
    for x, k in zip(inputs, keep, strict=True):
        low = torch.finfo(x.dtype).min
        top = x.masked_fill(~k.unsqueeze(-1), low).amax(1)
        maxima.append(torch.where(k.any(1, keepdim=True), top, torch.zeros_like(top)))
    return torch.stack(maxima, 1)


class Reweighting(nn.Module):
    """Masked mean (or max) per modality, L2-normalised, concatenated -> MLP ->
    softmax(logits / T).

    L2 normalisation makes the routing depend on the direction of each modality summary, not
    its scale, so that no modality dominates the router by magnitude alone.

    Args:
        num_modalities, hidden_dim, num_experts, router_dim: sizes.
        temperature: softmax temperature.
        pooling: ``"mean"`` (the I2MoE router) or ``"max"`` (the specialised objective's).
    """

    def __init__(self, num_modalities: int, hidden_dim: int, num_experts: int,
                 router_dim: int, temperature: float, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        self.temperature = temperature
        self.pooling = pooling
        self.mlp = nn.Sequential(
            nn.Linear(num_modalities * hidden_dim, router_dim),
            nn.GELU(),
            nn.Linear(router_dim, num_experts),
        )

    def summaries(self, inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
        """(B, M, H) L2-normalised summaries of the modalities (0 for an absent one)."""
        pool = masked_modality_maxima if self.pooling == "max" else masked_modality_means
        return F.normalize(pool(inputs, keep), dim=-1)  # 0 stays 0

    def forward(self, inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]) -> Tensor:
        """Return (B, E) routing weights that sum to 1 per example."""
        summary = self.summaries(inputs, keep)
        return (self.mlp(summary.flatten(1)) / self.temperature).softmax(-1)
