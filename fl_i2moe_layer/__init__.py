"""FL-I2MoE: a drop-in fusion layer whose experts separate unique, synergistic and redundant
cross-modal evidence, with frozen encoders, a trainer and expert-wise explanations.

Public API:

* :class:`FLI2MoE`: the mixture-of-experts fusion layer; :class:`DenseFusion`: the baseline;
  ``save_pretrained(folder)`` / ``from_pretrained(folder)`` on both (and on
  :class:`ProjectedFusion`), :func:`load_pretrained` for any of them.
* :class:`TextEncoder`, :class:`ImageEncoder`: frozen backbones + trainable projection;
  :class:`FeatureCache` encodes a dataset once.
* :class:`Trainer`: seeded training with early stopping and resumable checkpoints.
* :class:`ExpertExplainer`: token/patch attributions, SII / RG maps and routing per expert.

Layout: ``model/`` (layer, experts, reweighting, losses, dense baseline, reference),
``encoders/`` (text, image, feature cache), ``training/`` (trainer, metrics, checkpoints),
``explain/`` (explainer, report, plots), ``data/`` (planted generator, dataset loaders),
``experiments/`` (dataset registry, ``run.json``, train / evaluate / explain, the demo),
``cli.py`` (``fl-i2moe``).
"""

from __future__ import annotations

from fl_i2moe_layer.encoders import FeatureCache, ImageEncoder, TextEncoder
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.model import (
    DenseFusion,
    FLI2MoE,
    FusionConfig,
    FusionOutput,
    load_pretrained,
)
from fl_i2moe_layer.model.pretrained import package_version
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.training import FusionDataset, Trainer

__version__ = package_version()

__all__ = [
    "DenseFusion",
    "ExpertExplainer",
    "FLI2MoE",
    "FeatureCache",
    "FusionConfig",
    "FusionDataset",
    "FusionOutput",
    "ImageEncoder",
    "ProjectedFusion",
    "TextEncoder",
    "Trainer",
    "__version__",
    "load_pretrained",
]
