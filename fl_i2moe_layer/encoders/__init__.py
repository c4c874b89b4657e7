"""Frozen encoders (``text``, ``image``) with trainable projections, and a feature cache."""

from __future__ import annotations

from fl_i2moe_layer.encoders.base import EncodedTokens, FrozenEncoder
from fl_i2moe_layer.encoders.cache import CachedFeatures, FeatureCache
from fl_i2moe_layer.encoders.image import ImageEncoder
from fl_i2moe_layer.encoders.text import TextEncoder

__all__ = ["CachedFeatures", "EncodedTokens", "FeatureCache", "FrozenEncoder", "ImageEncoder",
           "TextEncoder"]
