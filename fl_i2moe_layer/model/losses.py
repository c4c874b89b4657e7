"""Task loss, the interaction losses of docs/design.md §5 (``objective="i2moe"``) and the terms of
the specialised objective (per-example expert losses, sufficiency routing targets, load balance,
redundancy invariance), vectorised over experts and variants.

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


# -- the specialised objective --------------------------------------------------------------


def per_example_task_losses(expert_logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """(B, E) task loss of every expert on every example (the loss of :func:`task_loss`
    without the batch mean; multilabel: the mean over classes).

    Args:
        expert_logits: (B, E, C).
        labels: (B,) class indices (multiclass) or (B, C) 0/1 floats, as returned by
            :func:`~fl_i2moe_layer.model.inputs.check_labels`.
    """
    if task == "multiclass":
        log_p = expert_logits.log_softmax(-1)
        index = labels.view(-1, 1, 1).expand(-1, expert_logits.shape[1], 1)
        return -log_p.gather(-1, index).squeeze(-1)
    target = labels.unsqueeze(1).expand_as(expert_logits)
    return F.binary_cross_entropy_with_logits(expert_logits, target, reduction="none").mean(-1)


def sufficiency_targets(losses: Tensor, num_modalities: int, scale: float) -> Tensor:
    """(B, E) routing targets from which modalities suffice on their own.

    Modality i *suffices* for an example to the degree s_i = exp(-(g_i / scale)²), where the
    gap g_i = ℓ_i - min_e ℓ_e ≥ 0 compares the loss ℓ_i of uniqueness expert i (which sees
    modality i only) with the best loss of any expert: s_i is 1 when modality i alone
    predicts the label as well as the best expert, stays near 1 for gaps well below
    ``scale`` (nats) and falls quickly towards 0 beyond it. Treating the
    s_i as independent probabilities partitions each example over the interaction types:

    * ``unique_i``: s_i · Π_{j≠i} (1 - s_j) (modality i alone suffices, no other does);
    * ``synergy``: Π_j (1 - s_j) (no modality suffices alone: they are needed together);
    * ``redundancy``: the rest, i.e. the probability that at least two modalities suffice.

    The targets sum to 1. Callers pass detached losses: the targets teach the router, they
    do not train the experts.

    Args:
        losses: (B, E) per-example losses of the E = M + 2 experts.
        num_modalities: M.
        scale: the loss gap (nats) at which sufficiency has dropped to 1/e.
    """
    m = num_modalities
    gap = (losses[:, :m] - losses.min(1, keepdim=True).values).clamp_min(0)
    s = torch.exp(-(gap / scale).square())  # (B, M)
    q = 1 - s
    eye = torch.eye(m, dtype=torch.bool, device=losses.device)
    others = torch.where(eye, torch.ones((), dtype=q.dtype, device=q.device),
                         q.unsqueeze(1)).prod(-1)  # (B, M): Π_{j≠i} q_j
    unique = s * others
    synergy = q.prod(1, keepdim=True)
    redundancy = (1 - synergy - unique.sum(1, keepdim=True)).clamp_min(0)
    return torch.cat([unique, synergy, redundancy], 1)


def routing_cross_entropy(weights: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -Σ_e target_e · log w_e."""
    log_w = weights.clamp_min(torch.finfo(weights.dtype).tiny).log()
    return -(targets * log_w).sum(1).mean()


def balance_loss(weights: Tensor) -> Tensor:
    """KL(batch-mean routing || uniform) = Σ_e w̄_e log(E · w̄_e), 0 when every expert gets the
    same share of the batch."""
    mean = weights.mean(0)
    e = weights.shape[1]
    return (mean * (mean * e).clamp_min(torch.finfo(mean.dtype).tiny).log()).sum()


def invariance_loss(logits: Tensor, variant_logits: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared change of one expert's logits when a modality is removed.

    Args:
        logits: (B, C) on the full input.
        variant_logits: (B, M, C), index k = modality k removed.
        weights: (B,) how much each example asks for invariance (the redundancy target: the
            probability that at least two modalities suffice); the result is
            Σ_b weights_b · mean_{k, c} (variant - full)² / B.
    """
    change = (variant_logits - logits.unsqueeze(1)).square().mean((1, 2))  # (B,)
    return (weights * change).mean()
