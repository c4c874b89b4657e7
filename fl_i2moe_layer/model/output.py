"""Typed outputs of the fusion layers and of their loss."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class FusionOutput:
    """What :class:`~fl_i2moe_layer.FLI2MoE` (and :class:`~fl_i2moe_layer.DenseFusion`) return.

    With B examples, E experts (M + 2 for FL-I2MoE, 1 for the dense baseline), C outputs and M
    modalities of width H:

    Attributes:
        logits: (B, C) prediction, Σ_e weights[:, e] · expert_logits[:, e].
        expert_logits: (B, E, C) each expert's logits.
        weights: (B, E) routing weights (softmax of the reweighting model / temperature);
            the local explanation of which interaction type the prediction relies on.
        latents: (B, E, M·H) each expert's pooled latent z on the full input.
        variant_latents: (B, E, M, M·H) latents with modality k replaced (``objective=
            "i2moe"``) or removed through the masks (``"specialised"``), index k on dim 2,
            computed in training (they feed the interaction losses); None otherwise.
        attentions: per Transformer layer, (E, N, heads, L, L) attention probabilities over
            the concatenated tokens, if ``return_attentions=True``; else None. They are the
            tensors the output was computed from (so ``torch.autograd.grad`` works on them),
            expert-major, over the N rows processed: B, or (M + 1)·B with interactions, the
            first B rows being the full input.
        variant_logits: (B, E, M, C) each expert's logits with modality k removed (index k on
            dim 2), computed with the variants of ``objective="specialised"`` (they feed the
            redundancy invariance); None otherwise.
    """

    logits: Tensor
    expert_logits: Tensor
    weights: Tensor
    latents: Tensor
    variant_latents: Tensor | None = None
    attentions: list[Tensor] | None = None
    variant_logits: Tensor | None = None


@dataclass
class LossTerms:
    """The parts of :meth:`FLI2MoE.loss`.

    Attributes:
        total: the value to back-propagate: ``objective="i2moe"``: task +
            interaction_weight · interaction; ``"specialised"``: task + the mean of
            ``per_expert`` + interaction.
        task: the task loss of the mixture prediction.
        interaction: ``"i2moe"``: mean over experts of ``per_expert`` (0 when not computed);
            ``"specialised"``: the weighted sum of ``parts["routing"]``,
            ``parts["balance"]`` and ``parts["invariance"]``.
        per_expert: (E,) ``"i2moe"``: interaction loss of each expert, or None when not
            computed; ``"specialised"``: each expert's own task loss.
        parts: the unweighted terms of the specialised objective (``"routing"``,
            ``"balance"``, ``"invariance"``), empty for ``"i2moe"``.
    """

    total: Tensor
    task: Tensor
    interaction: Tensor
    per_expert: Tensor | None
    parts: dict[str, Tensor] = field(default_factory=dict)
