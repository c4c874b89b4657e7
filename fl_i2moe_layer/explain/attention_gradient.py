"""Attention × gradient rollout (Chefer et al., 2021) for the experts' token relevance.

Per layer, the heads' positive part of gradient ⊙ attention is averaged into Ā (L × L) and
rolled out as R ← R + Ā R from R = I. The experts pool every present token (masked mean per
modality), so the relevance of token k is the mean of R[q, k] over the present queries q.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rollout(attentions: list[Tensor], gradients: list[Tensor], keep: Tensor) -> Tensor:
    """Token relevance from per-layer attentions and their gradients.

    Args:
        attentions, gradients: per layer, (B, E, heads, L, L).
        keep: (B, L) bool, present tokens.

    Returns:
        (B, E, L) relevance, 0 for absent tokens.
    """
    b, e, _, length, _ = attentions[0].shape
    eye = torch.eye(length, dtype=attentions[0].dtype, device=attentions[0].device)
    relevance = eye.expand(b, e, length, length)
    for att, grad in zip(attentions, gradients, strict=True):
        a_bar = (grad * att).clamp_min(0).mean(2)  # (B, E, L, L)
        relevance = relevance + a_bar @ relevance
    q = keep.to(relevance.dtype)  # (B, L): average over the present queries
    scores = torch.einsum("bq,beqk->bek", q, relevance) / q.sum(1).clamp_min(1)[:, None, None]
    return scores * q[:, None, :]
