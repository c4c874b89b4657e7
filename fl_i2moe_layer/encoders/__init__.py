"""Frozen encoders (``text``, ``image``) with trainable projections, a feature cache, and a
per-item feature store that streams."""

from __future__ import annotations

from fl_i2moe_layer.encoders.base import EncodedTokens, FrozenEncoder
from fl_i2moe_layer.encoders.cache import CachedFeatures, FeatureCache
from fl_i2moe_layer.encoders.image import ImageEncoder
from fl_i2moe_layer.encoders.stream import (
    FeatureRows,
    FeatureStore,
    StoredFeatures,
    file_key,
    text_key,
)
from fl_i2moe_layer.encoders.text import TextEncoder

__all__ = ["CachedFeatures", "EncodedTokens", "FeatureCache", "FeatureRows", "FeatureStore",
           "FrozenEncoder", "ImageEncoder", "StoredFeatures", "TextEncoder", "file_key",
           "text_key"]
