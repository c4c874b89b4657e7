"""Encode a dataset once with a frozen encoder and reuse the features from disk.

The cache file is named by a key that hashes the encoder's identity (backbone weights and
preprocessing) together with a fingerprint of the model-ready data (token ids and masks, or
pixels): change either and the key changes, so a stale cache is never read. The same two
strings are stored in the file's metadata and checked again on load.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_interactions.validation import check_positive_int
from fl_i2moe_layer.encoders.base import FrozenEncoder
from fl_i2moe_layer.progress import progress
from fl_i2moe_layer.storage import atomic_save_file, read_cache, tensor_digest

CACHE_FORMAT = "fl_i2moe_layer.feature_cache/1"


@dataclass
class CachedFeatures:
    """Backbone features of a whole dataset.

    Attributes:
        features: (N, T, D) frozen backbone features (project them with ``encoder.project``).
        mask: (N, T) bool token mask.
        path: the cache file.
        from_cache: True if read from disk, False if just encoded.
    """

    features: Tensor
    mask: Tensor
    path: Path
    from_cache: bool


class FeatureCache:
    """A folder of safetensors files, one per (encoder, dataset) pair.

    Args:
        root (str or Path): the cache folder (created if missing).

    Examples::

        >>> cache = FeatureCache("~/.cache/fl_i2moe")
        >>> text = cache.load_or_encode(text_encoder, texts)      # encodes once
        >>> text = cache.load_or_encode(text_encoder, texts)      # then reads the file
        >>> tokens = text_encoder.project(text.features)          # trainable part
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"FeatureCache root {str(self.root)!r} is a file; pass a folder "
                             "(created if missing).")

    def key(self, encoder: FrozenEncoder, prepared: tuple[Tensor, ...]) -> tuple[str, str]:
        """(file key, data fingerprint) of a dataset already passed through ``prepare``."""
        fingerprint = tensor_digest({str(k): t for k, t in enumerate(prepared)})
        key = hashlib.sha256(f"{CACHE_FORMAT}|{encoder.identity}|{fingerprint}".encode())
        return key.hexdigest()[:32], fingerprint

    def path_for(self, encoder: FrozenEncoder, data: Any) -> Path:
        key, _ = self.key(encoder, encoder.prepare(data))
        return self.root / f"{key}.safetensors"

    def load_or_encode(self, encoder: FrozenEncoder, data: Any, *, batch_size: int = 32,
                       show_progress: bool = False) -> CachedFeatures:
        """Features of ``data`` (texts for a TextEncoder, images for an ImageEncoder), read
        from the cache when a file for this exact encoder and data exists, else encoded in
        batches of ``batch_size`` and written (atomically) to the cache."""
        check_positive_int("batch_size", batch_size)
        prepared = encoder.prepare(data)
        key, fingerprint = self.key(encoder, prepared)
        path = self.root / f"{key}.safetensors"
        expected = {"format": CACHE_FORMAT, "encoder": encoder.identity, "data": fingerprint}
        # Same name, other content (a hand-copied file) or altered tensors: never served.
        cached = read_cache(path, expected, what="feature cache file")
        if cached is not None and {"features", "mask"} <= set(cached):
            return CachedFeatures(cached["features"], cached["mask"], path, from_cache=True)
        n = prepared[0].shape[0]
        feats, masks = [], []
        for start in progress(range(0, n, batch_size), desc=f"encoding {encoder.name}",
                              disable=not show_progress, unit="batch"):
            f_, m_ = encoder.features(*(t[start : start + batch_size] for t in prepared))
            feats.append(f_.cpu())
            masks.append(m_.cpu())
        features, mask = torch.cat(feats).contiguous(), torch.cat(masks).contiguous()
        atomic_save_file({"features": features, "mask": mask}, path, expected)
        return CachedFeatures(features, mask, path, from_cache=False)
