"""FL-I2MoE: a fusion layer whose experts separate unique, synergistic and redundant evidence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fl_i2moe_layer.model.base import FusionBase, batch_first
from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.experts import StackedExperts
from fl_i2moe_layer.model.inputs import check_labels
from fl_i2moe_layer.model.losses import interaction_losses, task_loss
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.reweighting import Reweighting
from fl_i2moe_layer.model.variants import stack_variants


class FLI2MoE(FusionBase):
    r"""Feature-level interpretable interaction-aware mixture of experts (FL-I2MoE).

    M uniqueness experts, one synergy expert and one redundancy expert (E = M + 2), each a
    small pre-LN Transformer over the concatenated token sequences (positional and modality
    embeddings, key-padding mask) with masked mean pooling per modality, a latent z of size
    M·H and a linear head. A reweighting model (masked mean per modality, L2-normalised,
    concatenated, MLP, softmax(logits / temperature)) mixes the experts:
    prediction = Σ_e w_e · logits_e.

    In training the experts also see the M variants of the batch with modality k replaced
    (``replacement``), and :meth:`loss` adds ``interaction_weight`` × the mean interaction
    loss: a triplet loss per uniqueness expert (anchor = full input, negative = its own
    modality replaced, positives = another modality replaced), the mean cosine between anchor
    and variants for the synergy expert (minimised) and the mean 1 - cosine for the
    redundancy expert. The variants travel along the batch dimension and the experts'
    weights are stacked, so one training forward is a handful of batched kernels.

    Args:
        num_modalities (int): M >= 2 token sequences per example.
        hidden_dim (int): H, the width of every input token (project encoders to it).
        num_classes (int): outputs C (1 for ``task="binary"``).
        task (str, optional): ``"multiclass"`` (softmax, cross-entropy), ``"multilabel"``
            (one sigmoid per class) or ``"binary"`` (one logit). Default: ``"multiclass"``.
        num_layers (int, optional): Transformer layers per expert. Default: 2.
        num_heads (int, optional): attention heads (must divide ``hidden_dim``). Default: 4.
        temperature (float, optional): softmax temperature of the routing. Default: 1.0.
        interaction_weight (float, optional): λ in task + λ · interaction. Default: 0.5.
        replacement (str, optional): what replaces a modality in a variant: ``"noise"``
            (N(0, 1)), ``"mean"`` (the batch's mean token of that modality) or ``"zero"``.
            Default: ``"noise"``.
        dropout (float, optional): dropout inside the experts. Default: 0.1.
        ffn_dim (int, optional): feed-forward width. Default: 2 · hidden_dim.
        max_len (int, optional): most tokens per modality. Default: 512.
        router_hidden (int, optional): hidden width of the reweighting MLP. Default: hidden_dim.

    Examples::

        >>> layer = FLI2MoE(2, hidden_dim=64, num_classes=5, task="multiclass")
        >>> text, image = torch.randn(8, 12, 64), torch.randn(8, 49, 64)
        >>> text_mask = torch.ones(8, 12, dtype=torch.bool)
        >>> image_mask = torch.ones(8, 49, dtype=torch.bool)
        >>> out = layer([text, image], masks=[text_mask, image_mask])
        >>> out.logits.shape, out.expert_logits.shape, out.weights.shape
        (torch.Size([8, 5]), torch.Size([8, 4, 5]), torch.Size([8, 4]))
        >>> loss = layer.loss(out, torch.randint(0, 5, (8,)))  # task + interaction losses
        >>> loss.backward()
        >>> layer.save_pretrained("models/fl_i2moe")  # config.json + model.safetensors
        >>> layer = FLI2MoE.from_pretrained("models/fl_i2moe")  # local folders only
    """

    model_kind = "fl_i2moe"

    def __init__(self, num_modalities: int, hidden_dim: int, num_classes: int, *,
                 task: str = "multiclass", num_layers: int = 2, num_heads: int = 4,
                 temperature: float = 1.0, interaction_weight: float = 0.5,
                 replacement: str = "noise", dropout: float = 0.1, ffn_dim: int | None = None,
                 max_len: int = 512, router_hidden: int | None = None) -> None:
        super().__init__()
        self.config = FusionConfig(
            num_modalities=num_modalities, hidden_dim=hidden_dim, num_classes=num_classes,
            task=task, num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim,
            dropout=dropout, max_len=max_len, temperature=temperature,
            interaction_weight=interaction_weight, replacement=replacement,
            router_hidden=router_hidden,
        )
        c = self.config
        self.experts = StackedExperts(
            c.num_modalities + 2, c.num_modalities, c.hidden_dim, c.num_classes, c.num_layers,
            c.num_heads, c.feedforward_dim, c.dropout, c.max_len,
        )
        self.reweighting = Reweighting(c.num_modalities, c.hidden_dim, c.num_modalities + 2,
                                       c.router_dim, c.temperature)

    @classmethod
    def from_config(cls, config: FusionConfig) -> FLI2MoE:
        """Build a layer from a :class:`FusionConfig` (e.g. one read from a checkpoint)."""
        values = config.to_dict()
        return cls(values.pop("num_modalities"), values.pop("hidden_dim"),
                   values.pop("num_classes"), **values)

    @property
    def num_experts(self) -> int:
        return self.config.num_modalities + 2

    @property
    def expert_names(self) -> tuple[str, ...]:
        """``("unique_0", ..., "unique_{M-1}", "synergy", "redundancy")``."""
        m = self.config.num_modalities
        return (*(f"unique_{i}" for i in range(m)), "synergy", "redundancy")

    def forward(self, inputs: Sequence[Tensor], masks: Sequence[Tensor] | None = None, *,
                presence: Sequence[Tensor] | None = None,
                compute_interactions: bool | None = None, return_attentions: bool = False,
                generator: torch.Generator | None = None) -> FusionOutput:
        r"""Fuse M token sequences.

        Args:
            inputs (list of Tensor): M tensors (B, T_m, H).
            masks (list of Tensor, optional): M padding masks (B, T_m), True (or 1) for real
                tokens. Default: every token is real.
            presence (list of Tensor, optional): M boolean tensors (B, T_m), False for tokens
                to drop (the presence-mask removal of ``captum_interactions``); combined with
                ``masks``. Rows may drop every token of a modality.
            compute_interactions (bool, optional): also run the M replaced variants (needed by
                the interaction losses). Default: ``self.training``.
            return_attentions (bool, optional): return the attention probabilities (used by
                the attention × gradient explanations; on CUDA this replaces the fused
                attention kernel by explicit matmuls). Default: False.
            generator (torch.Generator, optional): source of the replacement noise.

        Returns:
            :class:`FusionOutput` with ``logits`` (B, C), ``expert_logits`` (B, M+2, C),
            ``weights`` (B, M+2), ``latents`` and, with interactions, ``variant_latents``.
        """
        xs, keep = self._prepare(inputs, masks, presence)
        batch = xs[0].shape[0]
        lengths = [x.shape[1] for x in xs]
        if compute_interactions is None:
            compute_interactions = self.training
        if compute_interactions:
            rows, row_keep = stack_variants(xs, keep, self.config.replacement, generator)
        else:
            rows, row_keep = xs, keep
        expert_out = self.experts(
            torch.cat(rows, 1), torch.cat(row_keep, 1), lengths,
            return_attentions=return_attentions, head_rows=batch,
        )
        weights = self.reweighting(xs, keep)
        expert_logits = batch_first(expert_out.logits)  # (B, E, C)
        latents = batch_first(expert_out.latents)  # ((M+1)·B or B, E, D)
        variant_latents = None
        if compute_interactions:
            e, d = self.num_experts, latents.shape[-1]
            blocks = latents.view(len(xs) + 1, batch, e, d)
            latents, variant_latents = blocks[0], blocks[1:].permute(1, 2, 0, 3)
        return FusionOutput(
            logits=torch.einsum("be,bec->bc", weights, expert_logits),
            expert_logits=expert_logits, weights=weights, latents=latents,
            variant_latents=variant_latents, attentions=expert_out.attentions,
        )

    def loss_terms(self, out: FusionOutput, labels: Tensor) -> LossTerms:
        """Task loss and interaction losses of ``out``.

        The interaction part is included whenever ``out`` carries variant latents (a
        training-mode forward, or ``compute_interactions=True``).
        """
        labels = check_labels(labels, self.config, out.logits.shape[0])
        task = task_loss(out.logits, labels, self.config.task)
        if out.variant_latents is None:
            zero = task.new_zeros(())
            return LossTerms(total=task, task=task, interaction=zero, per_expert=None)
        per_expert = interaction_losses(out.latents, out.variant_latents)
        interaction = per_expert.mean()
        total = task + self.config.interaction_weight * interaction
        return LossTerms(total=total, task=task, interaction=interaction, per_expert=per_expert)
