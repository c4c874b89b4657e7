"""A plain, sequential reference implementation of the FL-I2MoE forward and loss.

It loops over variants and experts and calls one expert at a time with textbook operations
(``F.layer_norm``, explicit attention, ``F.triplet_margin_loss``, ``F.cosine_similarity``),
reading the same parameters as the vectorised layer. The tests assert that both agree, and
``benchmarks/train_step.py`` times one against the other. It is not meant for training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fl_i2moe_layer.model.experts import StackedExperts, attention_bias
from fl_i2moe_layer.model.inputs import check_labels
from fl_i2moe_layer.model.layer import FLI2MoE
from fl_i2moe_layer.model.losses import TRIPLET_MARGIN, task_loss
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.variants import replacement_values


def expert_forward(experts: StackedExperts, e: int, inputs: Sequence[Tensor],
                   keep: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Expert ``e`` on one set of inputs: returns latent (B, M·H) and logits (B, C)."""
    heads = experts.num_heads
    parts = []
    for m, x in enumerate(inputs):
        parts.append(x + experts.position[e, : x.shape[1]] + experts.modality[e, m])
    h = torch.cat(parts, 1)
    mask = torch.cat(list(keep), 1)
    bias = attention_bias(mask, h.dtype)  # (B, 1, 1, L)
    b, length, width = h.shape
    d = width // heads
    for i in range(experts.num_layers):
        a = F.layer_norm(h, (width,), experts.ln1_w[i, e], experts.ln1_b[i, e])
        q, k, v = (a @ experts.qkv_w[i, e] + experts.qkv_b[i, e]).split(width, -1)
        q, k, v = (t.view(b, length, heads, d).transpose(1, 2) for t in (q, k, v))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(d) + bias).softmax(-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, length, width)
        h = h + ctx @ experts.out_w[i, e] + experts.out_b[i, e]
        f = F.layer_norm(h, (width,), experts.ln2_w[i, e], experts.ln2_b[i, e])
        f = F.gelu(f @ experts.ff1_w[i, e] + experts.ff1_b[i, e])
        h = h + f @ experts.ff2_w[i, e] + experts.ff2_b[i, e]
    h = F.layer_norm(h, (width,), experts.lnf_w[e], experts.lnf_b[e])
    pooled, start = [], 0
    for x, kp in zip(inputs, keep, strict=True):
        seg = h[:, start : start + x.shape[1]]
        w = kp.to(h.dtype).unsqueeze(-1)
        pooled.append((seg * w).sum(1) / w.sum(1).clamp_min(1.0))
        start += x.shape[1]
    latent = torch.cat(pooled, 1)
    return latent, latent @ experts.head_w[e] + experts.head_b[e]


def reference_weights(layer: FLI2MoE, inputs: Sequence[Tensor],
                      keep: Sequence[Tensor]) -> Tensor:
    """Routing weights, one modality summary at a time."""
    summaries = []
    for x, kp in zip(inputs, keep, strict=True):
        if layer.config.specialised:  # max over the present tokens, one example at a time
            rows = [x[b][kp[b]].max(0).values if bool(kp[b].any()) else x.new_zeros(x.shape[-1])
                    for b in range(x.shape[0])]
            pooled = torch.stack(rows)
        else:
            w = kp.to(x.dtype).unsqueeze(-1)
            pooled = (x * w).sum(1) / w.sum(1).clamp_min(1.0)
        summaries.append(pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    logits = layer.reweighting.mlp(torch.cat(summaries, 1))
    return (logits / layer.config.temperature).softmax(-1)


def sequential_forward(layer: FLI2MoE, inputs: Sequence[Tensor],
                       masks: Sequence[Tensor] | None = None, *,
                       presence: Sequence[Tensor] | None = None,
                       compute_interactions: bool | None = None,
                       generator: torch.Generator | None = None) -> FusionOutput:
    """Same contract as :meth:`FLI2MoE.forward` (dropout must be 0 for equal outputs), computed
    with one expert call per (variant, expert)."""
    xs, keep = layer._prepare(inputs, masks, presence)
    if compute_interactions is None:
        compute_interactions = layer.training
    specialised = layer.config.specialised
    # (tokens, keep masks) of each variant: the full input first.
    variants: list[tuple[list[Tensor], list[Tensor]]] = [(list(xs), list(keep))]
    if compute_interactions and specialised:
        for k in range(len(xs)):  # modality k removed: no token of it is present
            variants.append((list(xs), [torch.zeros_like(kp) if m == k else kp
                                        for m, kp in enumerate(keep)]))
    elif compute_interactions:
        # Drawn in the vectorised layer's order, so the same generator gives the same noise.
        values = [replacement_values(x, kp, layer.config.replacement, generator)
                  for x, kp in zip(xs, keep, strict=True)]
        for k in range(len(xs)):
            variants.append(([values[k] if m == k else x for m, x in enumerate(xs)],
                             list(keep)))

    def seen(e: int, masks_: list[Tensor]) -> list[Tensor]:
        """What expert e sees: uniqueness expert e < M its own modality only (specialised)."""
        if not specialised or e >= len(masks_):
            return masks_
        return [kp if m == e else torch.zeros_like(kp) for m, kp in enumerate(masks_)]

    latents = [[expert_forward(layer.experts, e, v, seen(e, vk))
                for e in range(layer.num_experts)] for v, vk in variants]
    expert_logits = torch.stack([lg for _, lg in latents[0]], 1)
    weights = reference_weights(layer, xs, keep)
    full = torch.stack([z for z, _ in latents[0]], 1)
    variant_latents = variant_logits = None
    if compute_interactions:
        variant_latents = torch.stack(
            [torch.stack([z for z, _ in per_variant], 1) for per_variant in latents[1:]], 2
        )
        if specialised:
            variant_logits = torch.stack(
                [torch.stack([lg for _, lg in per_variant], 1) for per_variant in latents[1:]],
                2)
    logits = sum(weights[:, e : e + 1] * expert_logits[:, e] for e in range(layer.num_experts))
    assert isinstance(logits, Tensor)
    return FusionOutput(logits=logits, expert_logits=expert_logits, weights=weights,
                        latents=full, variant_latents=variant_latents,
                        variant_logits=variant_logits)


def sequential_loss_terms(layer: FLI2MoE, out: FusionOutput, labels: Tensor) -> LossTerms:
    """The loss of docs/design.md §5, one triplet / cosine term at a time."""
    labels = check_labels(labels, layer.config, out.logits.shape[0])
    task = task_loss(out.logits, labels, layer.config.task)
    if out.variant_latents is None:
        return LossTerms(total=task, task=task, interaction=task.new_zeros(()), per_expert=None)
    if layer.config.specialised:
        return _sequential_specialised_terms(layer, out, labels, task)
    m = layer.config.num_modalities
    z, zv = out.latents, out.variant_latents
    per_expert = []
    for i in range(m):
        triplets = [F.triplet_margin_loss(z[:, i], zv[:, i, j], zv[:, i, i],
                                          margin=TRIPLET_MARGIN, p=2)
                    for j in range(m) if j != i]
        per_expert.append(torch.stack(triplets).mean())
    syn, red = m, m + 1
    per_expert.append(torch.stack([F.cosine_similarity(z[:, syn], zv[:, syn, k]).mean()
                                   for k in range(m)]).mean())
    per_expert.append(torch.stack([(1 - F.cosine_similarity(z[:, red], zv[:, red, k])).mean()
                                   for k in range(m)]).mean())
    stacked = torch.stack(per_expert)
    interaction = stacked.mean()
    return LossTerms(total=task + layer.config.interaction_weight * interaction, task=task,
                     interaction=interaction, per_expert=stacked)


def _sequential_specialised_terms(layer: FLI2MoE, out: FusionOutput, labels: Tensor,
                                  task: Tensor) -> LossTerms:
    """The specialised objective, one example and one expert at a time."""
    c = layer.config
    m, e_count, batch = c.num_modalities, layer.num_experts, out.logits.shape[0]
    rows = []  # per example: each expert's own task loss
    for b in range(batch):
        rows.append(torch.stack([task_loss(out.expert_logits[b : b + 1, e], labels[b : b + 1],
                                           c.task) for e in range(e_count)]))
    losses = torch.stack(rows)  # (B, E)
    routing, redundant = [], []
    plain = losses.detach()  # the targets teach the router, not the experts
    for b in range(batch):
        best = float(plain[b].min())
        s = [math.exp(-(max(float(plain[b, i]) - best, 0.0) / c.sufficiency_scale) ** 2)
             for i in range(m)]
        unique = [s[i] * math.prod(1 - s[j] for j in range(m) if j != i) for i in range(m)]
        synergy = math.prod(1 - v for v in s)
        target = [*unique, synergy, max(1 - synergy - sum(unique), 0.0)]
        redundant.append(target[-1])
        routing.append(-torch.stack([t * torch.log(out.weights[b, e])
                                     for e, t in enumerate(target)]).sum())
    assert out.variant_logits is not None
    red = out.expert_logits[:, m + 1]
    invariance = [redundant[b] * torch.stack([F.mse_loss(out.variant_logits[b, m + 1, k],
                                                         red[b]) for k in range(m)]).mean()
                  for b in range(batch)]
    weights_mean = out.weights.mean(0)
    balance = torch.stack([w * torch.log(w * e_count) for w in weights_mean]).sum()
    parts = {"routing": torch.stack(routing).mean(),
             "balance": balance,
             "invariance": torch.stack(invariance).mean()}
    interaction = (c.routing_weight * parts["routing"] + c.balance_weight * parts["balance"]
                   + c.invariance_weight * parts["invariance"])
    per_expert = losses.mean(0)
    return LossTerms(total=task + per_expert.mean() + interaction, task=task,
                     interaction=interaction, per_expert=per_expert, parts=parts)
