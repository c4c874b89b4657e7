"""FL-I2MoE: a fusion layer whose experts separate unique, synergistic and redundant evidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import torch
from torch import Tensor

from fl_i2moe_layer.model.base import FusionBase, batch_first
from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.experts import StackedExperts, expert_keep
from fl_i2moe_layer.model.inputs import check_labels
from fl_i2moe_layer.model.losses import (
    balance_loss,
    interaction_losses,
    invariance_loss,
    per_example_task_losses,
    routing_cross_entropy,
    sufficiency_targets,
    task_loss,
)
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.reweighting import Reweighting
from fl_i2moe_layer.model.variants import stack_removals, stack_variants


class FLI2MoE(FusionBase):
    r"""Feature-level interpretable interaction-aware mixture of experts (FL-I2MoE).

    M uniqueness experts, one synergy expert and one redundancy expert (E = M + 2), each a
    small pre-LN Transformer over the concatenated token sequences (positional and modality
    embeddings, key-padding mask) with masked mean pooling per modality, a latent z of size
    M·H and a linear head. A reweighting model (a pooled summary per modality, L2-normalised,
    concatenated, MLP, softmax(logits / temperature)) mixes the experts:
    prediction = Σ_e w_e · logits_e. The experts' weights are stacked, so a forward is a
    handful of batched kernels whatever E.

    Two objectives (``objective``):

    * ``"specialised"`` (default): experts that specialise by construction. Uniqueness expert
      i sees the tokens of modality i only (the others are masked out of its attention and
      pooling: its output is exactly independent of them); the router summarises each
      modality by a masked feature-wise **max** (one cue token reaches it undiluted); every
      expert learns the task from its own view (its own task loss, averaged over experts);
      the router learns **routing targets** from which modalities suffice alone
      (:func:`~fl_i2moe_layer.model.losses.sufficiency_targets`: unique_i where only modality
      i predicts the label as well as the best expert, synergy where none does, redundancy
      where two or more do; cross-entropy, weight ``routing_weight``); the redundancy expert's
      logits must not change when any one modality is removed through the masks, on the
      examples the targets call redundant (``invariance_weight``); an optional load balance
      (KL of the batch-mean routing to uniform, ``balance_weight``). In training the experts
      also see the M variants with modality k removed. Total = task + mean expert task loss
      + routing_weight · routing + balance_weight · balance + invariance_weight · invariance.
    * ``"i2moe"``: the paper's objective. Every expert sees every modality, the router a
      masked **mean** per modality, and in training the experts also see the M variants of
      the batch with modality k replaced (``replacement``); :meth:`loss` adds
      ``interaction_weight`` × the mean interaction loss: a triplet loss per uniqueness
      expert (anchor = full input, negative = its own modality replaced, positives = another
      modality replaced), the mean cosine between anchor and variants for the synergy expert
      (minimised) and the mean 1 - cosine for the redundancy expert. On planted data this
      routes most weight to one expert whatever the interaction type (docs/fl_i2moe.md).

    Args:
        num_modalities (int): M >= 2 token sequences per example.
        hidden_dim (int): H, the width of every input token (project encoders to it).
        num_classes (int): outputs C (1 for ``task="binary"``).
        task (str, optional): ``"multiclass"`` (softmax, cross-entropy), ``"multilabel"``
            (one sigmoid per class) or ``"binary"`` (one logit). Default: ``"multiclass"``.
        num_layers (int, optional): Transformer layers per expert. Default: 2.
        num_heads (int, optional): attention heads (must divide ``hidden_dim``). Default: 4.
        temperature (float, optional): softmax temperature of the routing. Default: 1.0.
        interaction_weight (float, optional): λ in task + λ · interaction (``"i2moe"``).
            Default: 0.5.
        replacement (str, optional): what replaces a modality in an ``"i2moe"`` variant:
            ``"noise"``
            (N(0, 1)), ``"mean"`` (the batch's mean token of that modality) or ``"zero"``.
            Default: ``"noise"``.
        dropout (float, optional): dropout inside the experts. Default: 0.1.
        ffn_dim (int, optional): feed-forward width. Default: 2 · hidden_dim.
        max_len (int, optional): most tokens per modality. Default: 512.
        router_hidden (int, optional): hidden width of the reweighting MLP. Default: hidden_dim.
        objective (str, optional): ``"specialised"`` or ``"i2moe"`` (see above). Default:
            ``"specialised"``.
        routing_weight (float, optional): weight of the routing cross-entropy to the
            sufficiency targets (specialised). Default: 1.0.
        balance_weight (float, optional): weight of the load balance (specialised).
            Default: 0.0 (the targets already spread the routing).
        invariance_weight (float, optional): weight of the redundancy invariance
            (specialised). Default: 1.0.
        sufficiency_scale (float, optional): the loss gap (nats) between a uniqueness expert
            and the best expert beyond which its modality no longer suffices (specialised).
            Default: 0.1.

    Examples::

        >>> layer = FLI2MoE(2, hidden_dim=64, num_classes=5, task="multiclass")
        >>> text, image = torch.randn(8, 12, 64), torch.randn(8, 49, 64)
        >>> text_mask = torch.ones(8, 12, dtype=torch.bool)
        >>> image_mask = torch.ones(8, 49, dtype=torch.bool)
        >>> out = layer([text, image], masks=[text_mask, image_mask])
        >>> out.logits.shape, out.expert_logits.shape, out.weights.shape
        (torch.Size([8, 5]), torch.Size([8, 4, 5]), torch.Size([8, 4]))
        >>> loss = layer.loss(out, torch.randint(0, 5, (8,)))  # task + specialisation terms
        >>> loss.backward()
        >>> layer.save_pretrained("models/fl_i2moe")  # config.json + model.safetensors
        >>> layer = FLI2MoE.from_pretrained("models/fl_i2moe")  # local folders only
    """

    model_kind = "fl_i2moe"

    def __init__(self, num_modalities: int, hidden_dim: int, num_classes: int, *,
                 task: str = "multiclass", num_layers: int = 2, num_heads: int = 4,
                 temperature: float = 1.0, interaction_weight: float = 0.5,
                 replacement: str = "noise", dropout: float = 0.1, ffn_dim: int | None = None,
                 max_len: int = 512, router_hidden: int | None = None,
                 objective: str = "specialised", routing_weight: float = 1.0,
                 balance_weight: float = 0.0, invariance_weight: float = 1.0,
                 sufficiency_scale: float = 0.1) -> None:
        super().__init__()
        self.config = FusionConfig(
            num_modalities=num_modalities, hidden_dim=hidden_dim, num_classes=num_classes,
            task=task, num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim,
            dropout=dropout, max_len=max_len, temperature=temperature,
            interaction_weight=interaction_weight, replacement=replacement,
            router_hidden=router_hidden, objective=objective, routing_weight=routing_weight,
            balance_weight=balance_weight, invariance_weight=invariance_weight,
            sufficiency_scale=sufficiency_scale,
        )
        c = self.config
        self.experts = StackedExperts(
            c.num_modalities + 2, c.num_modalities, c.hidden_dim, c.num_classes, c.num_layers,
            c.num_heads, c.feedforward_dim, c.dropout, c.max_len,
        )
        self.reweighting = Reweighting(c.num_modalities, c.hidden_dim, c.num_modalities + 2,
                                       c.router_dim, c.temperature,
                                       "max" if c.specialised else "mean")

    @classmethod
    def from_config(cls, config: FusionConfig) -> FLI2MoE:
        """Build a layer from a :class:`FusionConfig` (e.g. one read from a checkpoint)."""
        values = asdict(config)  # every field (to_dict leaves out the legacy values)
        return cls(values.pop("num_modalities"), values.pop("hidden_dim"),
                   values.pop("num_classes"), **values)

    @property
    def num_experts(self) -> int:
        return self.config.num_modalities + 2

    @property
    def monitors_objective(self) -> bool:
        return self.config.specialised

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
        specialised = self.config.specialised
        if compute_interactions and specialised:
            rows, row_keep = stack_removals(xs, keep)
        elif compute_interactions:
            rows, row_keep = stack_variants(xs, keep, self.config.replacement, generator)
        else:
            rows, row_keep = xs, keep
        keep_rows = torch.cat(row_keep, 1)
        if specialised:  # uniqueness expert i sees modality i only
            keep_rows = expert_keep(keep_rows, lengths, self.num_experts)
        expert_out = self.experts(
            torch.cat(rows, 1), keep_rows, lengths, return_attentions=return_attentions,
            # the specialised variants need every expert's logits (redundancy invariance)
            head_rows=None if specialised else batch,
        )
        weights = self.reweighting(xs, keep)
        expert_logits = batch_first(expert_out.logits)  # ((M+1)·B or B, E, C)
        latents = batch_first(expert_out.latents)  # ((M+1)·B or B, E, D)
        variant_latents = variant_logits = None
        if compute_interactions:
            e, d = self.num_experts, latents.shape[-1]
            blocks = latents.view(len(xs) + 1, batch, e, d)
            latents, variant_latents = blocks[0], blocks[1:].permute(1, 2, 0, 3)
            if specialised:
                logit_blocks = expert_logits.view(len(xs) + 1, batch, e, -1)
                expert_logits = logit_blocks[0]
                variant_logits = logit_blocks[1:].permute(1, 2, 0, 3)
        return FusionOutput(
            logits=torch.einsum("be,bec->bc", weights, expert_logits),
            expert_logits=expert_logits, weights=weights, latents=latents,
            variant_latents=variant_latents, attentions=expert_out.attentions,
            variant_logits=variant_logits,
        )

    def loss_terms(self, out: FusionOutput, labels: Tensor) -> LossTerms:
        """Task loss and interaction (or specialisation) losses of ``out``.

        The part beyond the task loss is included whenever ``out`` carries variants (a
        training-mode forward, or ``compute_interactions=True``): for ``objective="i2moe"``
        the interaction losses, for ``"specialised"`` each expert's own task loss, the
        routing cross-entropy to the sufficiency targets, the load balance and the
        redundancy invariance (see the class docstring). Without variants it is the task
        loss alone, for both objectives.
        """
        labels = check_labels(labels, self.config, out.logits.shape[0])
        task = task_loss(out.logits, labels, self.config.task)
        if out.variant_latents is None:
            zero = task.new_zeros(())
            return LossTerms(total=task, task=task, interaction=zero, per_expert=None)
        if self.config.specialised:
            return self._specialised_terms(out, labels, task)
        per_expert = interaction_losses(out.latents, out.variant_latents)
        interaction = per_expert.mean()
        total = task + self.config.interaction_weight * interaction
        return LossTerms(total=total, task=task, interaction=interaction, per_expert=per_expert)

    def _specialised_terms(self, out: FusionOutput, labels: Tensor, task: Tensor) -> LossTerms:
        c = self.config
        m = c.num_modalities
        losses = per_example_task_losses(out.expert_logits, labels, c.task)  # (B, E)
        per_expert = losses.mean(0)
        targets = sufficiency_targets(losses.detach(), m, c.sufficiency_scale)
        parts = {"routing": routing_cross_entropy(out.weights, targets),
                 "balance": balance_loss(out.weights)}
        if out.variant_logits is None:
            raise ValueError(
                "the output carries variant latents but no variant_logits: it was not "
                "computed by a layer with objective='specialised'; pass the loss the output "
                "of the same layer.")
        parts["invariance"] = invariance_loss(out.expert_logits[:, m + 1],
                                              out.variant_logits[:, m + 1], targets[:, m + 1])
        interaction = (c.routing_weight * parts["routing"] + c.balance_weight * parts["balance"]
                       + c.invariance_weight * parts["invariance"])
        total = task + per_expert.mean() + interaction
        return LossTerms(total=total, task=task, interaction=interaction,
                         per_expert=per_expert, parts=parts)
