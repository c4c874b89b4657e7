"""The fusion layers: FL-I2MoE (``layer``), its experts, reweighting and losses, the dense
baseline (``dense``) and a sequential reference implementation (``reference``)."""

from __future__ import annotations

from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.dense import DenseFusion
from fl_i2moe_layer.model.layer import FLI2MoE
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.pretrained import load_pretrained

__all__ = ["DenseFusion", "FLI2MoE", "FusionConfig", "FusionOutput", "LossTerms",
           "load_pretrained"]
