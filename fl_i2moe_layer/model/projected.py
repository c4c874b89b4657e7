"""A fusion layer behind trainable per-modality projections (e.g. of cached encoder features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from torch import Tensor, nn

from fl_i2moe_layer.model.base import FusionBase
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.pretrained import MODEL_KINDS, PretrainedMixin


class ProjectedFusion(PretrainedMixin, nn.Module):
    """``fusion([proj_1(x_1), ..., proj_M(x_M)], masks)``: train projections and fusion together
    on frozen backbone features (for instance from a
    :class:`~fl_i2moe_layer.encoders.FeatureCache`).

    Args:
        projections (sequence of nn.Module): one module per modality, (B, T, D_m) -> (B, T, H).
        fusion (FLI2MoE or DenseFusion): the fusion layer.

    Examples::

        >>> model = ProjectedFusion.from_encoders([text_encoder, image_encoder], layer)
        >>> out = model([text_features, image_features], masks=[text_mask, image_mask])
        >>> model.save_pretrained("models/projected")   # Linear + LayerNorm projections only
        >>> model = ProjectedFusion.from_pretrained("models/projected")
    """

    model_kind = "projected"

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

    def pretrained_config(self) -> dict[str, Any]:
        """``feature_dims`` (the projections' input sizes), the fusion layer's kind and its
        configuration. Only projections built as ``nn.Sequential(nn.Linear(d, H),
        nn.LayerNorm(H))`` (``build_model``, the encoders) can be described this way."""
        hidden = self.fusion.config.hidden_dim
        dims = []
        for i, p in enumerate(self.projections):
            if not _standard_projection(p, hidden):
                raise TypeError(
                    f"save_pretrained: projection {i} is not nn.Sequential(nn.Linear(d, "
                    f"{hidden}), nn.LayerNorm({hidden})) with default options, so config.json "
                    "cannot describe it; save the weights with "
                    "fl_i2moe_layer.training.save_checkpoint(path, model) instead."
                )
            dims.append(int(cast(nn.Linear, cast(nn.Sequential, p)[0]).in_features))
        return {"feature_dims": dims, "fusion_kind": self.fusion.model_kind,
                "fusion": self.fusion.pretrained_config()}

    @classmethod
    def _from_pretrained_config(cls, config: dict[str, Any]) -> ProjectedFusion:
        unknown = sorted(set(config) - {"feature_dims", "fusion_kind", "fusion"})
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        kind, dims = config["fusion_kind"], config["feature_dims"]
        if kind not in ("fl_i2moe", "dense"):
            raise ValueError(f"fusion_kind must be 'fl_i2moe' or 'dense', got {kind!r}")
        if not isinstance(dims, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(f"feature_dims must be a list of ints >= 1, got {dims!r}")
        fusion: Any = MODEL_KINDS[kind]._from_pretrained_config(config["fusion"])
        h = fusion.config.hidden_dim
        return cls([nn.Sequential(nn.Linear(d, h), nn.LayerNorm(h)) for d in dims], fusion)

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

    @property
    def monitors_objective(self) -> bool:
        """The fusion layer's :attr:`~fl_i2moe_layer.model.base.FusionBase.monitors_objective`."""
        return bool(getattr(self.fusion, "monitors_objective", False))

    def loss(self, out: FusionOutput, labels: Tensor) -> Tensor:
        return self.fusion.loss(out, labels)

    def loss_terms(self, out: FusionOutput, labels: Tensor) -> LossTerms:
        return self.fusion.loss_terms(out, labels)


def _standard_projection(module: nn.Module, hidden: int) -> bool:
    """``nn.Sequential(nn.Linear(d, hidden), nn.LayerNorm(hidden))`` with default options."""
    if type(module) is not nn.Sequential or len(module) != 2:
        return False
    linear, norm = module[0], module[1]
    return (type(linear) is nn.Linear and linear.bias is not None
            and linear.out_features == hidden and type(norm) is nn.LayerNorm
            and tuple(norm.normalized_shape) == (hidden,) and norm.eps == 1e-5
            and norm.elementwise_affine and norm.bias is not None)
