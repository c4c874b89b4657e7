"""Task loss and the interaction losses of docs/design.md §5, vectorised over experts and variants.

Expert order: uniqueness experts 0..M-1, then synergy (M), then redundancy (M + 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Same epsilons as F.triplet_margin_loss (pairwise_distance) and F.cosine_similarity, so the
# vectorised losses equal the textbook per-triplet calls of the reference implementation.
_PAIRWISE_EPS = 1e-6
_COSINE_EPS = 1e-8
TRIPLET_MARGIN = 1.0


def task_loss(logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """Cross-entropy (multiclass) or binary cross-entropy on logits (multilabel, binary)."""
    if task == "multiclass":
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels)


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    return F.cosine_similarity(a, b, dim=-1, eps=_COSINE_EPS)


def interaction_losses(latents: Tensor, variant_latents: Tensor) -> Tensor:
    """Per-expert interaction losses, (M + 2,).

    Args:
        latents: (B, M + 2, D) anchors (full input).
        variant_latents: (B, M + 2, M, D), index k on dim 2 = modality k replaced.

    * uniqueness expert i: triplet margin loss (margin 1, L2), anchor = full input,
      negative = modality i replaced, positives = each other modality replaced (mean over
      the M - 1 positives and the batch);
    * synergy expert: mean cosine(anchor, variant k), minimised (pushes variants apart);
    * redundancy expert: mean (1 - cosine(anchor, variant k)) (pulls them together).
    """
    m = variant_latents.shape[2]
    anchors = latents[:, :m].unsqueeze(2)  # (B, M, 1, D)
    # dist[b, i, k] = ||z_i(full) - z_i(variant k)|| for uniqueness expert i.
    dist = torch.linalg.vector_norm(anchors - variant_latents[:, :m] + _PAIRWISE_EPS, dim=-1)
    negative = dist.diagonal(dim1=1, dim2=2).unsqueeze(2)  # (B, M, 1): variant k = i
    hinge = (dist - negative + TRIPLET_MARGIN).clamp_min(0)  # (B, M, M)
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=dist.device)
    uniqueness = (hinge * off_diagonal).sum((0, 2)) / (hinge.shape[0] * (m - 1))  # (M,)
    cos = _cosine(latents[:, m:].unsqueeze(2), variant_latents[:, m:])  # (B, 2, M)
    synergy = cos[:, 0].mean()
    redundancy = (1 - cos[:, 1]).mean()
    return torch.cat([uniqueness, synergy.view(1), redundancy.view(1)])
