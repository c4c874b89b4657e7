"""FL-I2MoE: a drop-in fusion layer whose experts separate unique, synergistic and redundant
cross-modal evidence, with frozen encoders, a trainer and expert-wise explanations.

Public API:

* :class:`FLI2MoE`: the mixture-of-experts fusion layer; :class:`DenseFusion`: the baseline.
* :class:`TextEncoder`, :class:`ImageEncoder`: frozen backbones + trainable projection.
* :class:`Trainer`: seeded training with early stopping and resumable checkpoints.
* :class:`ExpertExplainer`: token/patch attributions, SII / RG maps and routing per expert.
"""

from fl_i2moe_layer.model import DenseFusion, FLI2MoE, FusionConfig, FusionOutput

__all__ = ["DenseFusion", "FLI2MoE", "FusionConfig", "FusionOutput"]
