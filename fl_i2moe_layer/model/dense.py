"""The dense baseline: one expert-shaped Transformer, task loss only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fl_i2moe_layer.model.base import FusionBase, batch_first
from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.experts import StackedExperts
from fl_i2moe_layer.model.output import FusionOutput


class DenseFusion(FusionBase):
    r"""Dense fusion baseline: one Transformer shaped like an FL-I2MoE expert.

    Same inputs, outputs and loss interface as :class:`FLI2MoE`, with a single "expert"
    (``expert_logits`` (B, 1, C), ``weights`` all ones) and the task loss only: the comparison
    the FL-I2MoE paper makes.

    Args:
        num_modalities, hidden_dim, num_classes, task, num_layers, num_heads, dropout,
        ffn_dim, max_len: as in :class:`FLI2MoE`.

    Examples::

        >>> dense = DenseFusion(2, hidden_dim=64, num_classes=5)
        >>> out = dense([torch.randn(8, 12, 64), torch.randn(8, 49, 64)])
        >>> out.logits.shape
        torch.Size([8, 5])
        >>> dense.loss(out, torch.randint(0, 5, (8,))).backward()
        >>> dense.save_pretrained("models/dense")
        >>> dense = DenseFusion.from_pretrained("models/dense")
    """

    model_kind = "dense"

    def __init__(self, num_modalities: int, hidden_dim: int, num_classes: int, *,
                 task: str = "multiclass", num_layers: int = 2, num_heads: int = 4,
                 dropout: float = 0.1, ffn_dim: int | None = None, max_len: int = 512) -> None:
        super().__init__()
        self.config = FusionConfig(
            num_modalities=num_modalities, hidden_dim=hidden_dim, num_classes=num_classes,
            task=task, num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim,
            dropout=dropout, max_len=max_len, interaction_weight=0.0,
            # unused by the dense baseline (task loss only); the legacy value keeps its
            # recorded configuration as it was before FL-I2MoE had objectives
            objective="i2moe",
        )
        c = self.config
        self.experts = StackedExperts(1, c.num_modalities, c.hidden_dim, c.num_classes,
                                      c.num_layers, c.num_heads, c.feedforward_dim, c.dropout,
                                      c.max_len)

    @classmethod
    def from_config(cls, config: FusionConfig) -> DenseFusion:
        c = config
        return cls(c.num_modalities, c.hidden_dim, c.num_classes, task=c.task,
                   num_layers=c.num_layers, num_heads=c.num_heads, dropout=c.dropout,
                   ffn_dim=c.ffn_dim, max_len=c.max_len)

    @property
    def num_experts(self) -> int:
        return 1

    @property
    def expert_names(self) -> tuple[str, ...]:
        return ("dense",)

    def forward(self, inputs: Sequence[Tensor], masks: Sequence[Tensor] | None = None, *,
                presence: Sequence[Tensor] | None = None,
                compute_interactions: bool | None = None, return_attentions: bool = False,
                generator: torch.Generator | None = None) -> FusionOutput:
        """Fuse M token sequences (arguments as :meth:`FLI2MoE.forward`; the dense model has no
        interaction losses, so ``compute_interactions`` and ``generator`` are ignored)."""
        del compute_interactions, generator
        xs, keep = self._prepare(inputs, masks, presence)
        out = self.experts(torch.cat(xs, 1), torch.cat(keep, 1), [x.shape[1] for x in xs],
                           return_attentions=return_attentions)
        expert_logits = batch_first(out.logits)
        return FusionOutput(
            logits=expert_logits[:, 0], expert_logits=expert_logits,
            weights=expert_logits.new_ones(expert_logits.shape[0], 1),
            latents=batch_first(out.latents), attentions=out.attentions,
        )
