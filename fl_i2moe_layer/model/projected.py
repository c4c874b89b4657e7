"""A fusion layer behind trainable per-modality projections (e.g. of cached encoder features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from fl_i2moe_layer.model.base import FusionBase
from fl_i2moe_layer.model.output import FusionOutput, LossTerms


class ProjectedFusion(nn.Module):
    """``fusion([proj_1(x_1), ..., proj_M(x_M)], masks)``: train projections and fusion together
    on frozen backbone features (for instance from a
    :class:`~fl_i2moe_layer.encoders.FeatureCache`).

    Args:
        projections (sequence of nn.Module): one module per modality, (B, T, D_m) -> (B, T, H).
        fusion (FLI2MoE or DenseFusion): the fusion layer.

    Examples::

        >>> model = ProjectedFusion.from_encoders([text_encoder, image_encoder], layer)
        >>> out = model([text_features, image_features], masks=[text_mask, image_mask])
    """

    def __init__(self, projections: Sequence[nn.Module], fusion: FusionBase) -> None:
        super().__init__()
        if len(projections) != fusion.config.num_modalities:
            raise ValueError(
                f"projections has {len(projections)} modules but the fusion layer has "
                f"num_modalities={fusion.config.num_modalities}."
            )
        self.projections = nn.ModuleList(projections)
        self.fusion = fusion

    @classmethod
    def from_encoders(cls, encoders: Sequence[Any], fusion: FusionBase) -> ProjectedFusion:
        """Share the encoders' projections (training updates the encoders' projections too)."""
        return cls([enc.projection for enc in encoders], fusion)

    @property
    def config(self) -> Any:
        return self.fusion.config

    def forward(self, inputs: Sequence[Tensor], masks: Sequence[Tensor] | None = None,
                **kwargs: Any) -> FusionOutput:
        if len(inputs) != len(self.projections):
            raise ValueError(
                f"inputs has {len(inputs)} tensors but there are {len(self.projections)} "
                "projections."
            )
        projected = [p(x) for p, x in zip(self.projections, inputs, strict=True)]
        return self.fusion(projected, masks, **kwargs)

    def loss(self, out: FusionOutput, labels: Tensor) -> Tensor:
        return self.fusion.loss(out, labels)

    def loss_terms(self, out: FusionOutput, labels: Tensor) -> LossTerms:
        return self.fusion.loss_terms(out, labels)
