"""Frozen backbone + trainable projection: the shape shared by the text and image encoders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from captum_interactions.validation import check_positive_int
from fl_i2moe_layer.storage import tensor_digest


@contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Hugging Face offline mode for the duration of a load: with ``enabled``, no request to
    the Hub is attempted (``local_files_only=True`` alone still lets transformers try to
    connect). The environment and huggingface_hub's switch are restored afterwards."""
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub_constants

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_flag = hub_constants.HF_HUB_OFFLINE
    os.environ.update({k: "1" for k in saved_env})
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

@dataclass
class EncodedTokens:
    """Projected tokens for the fusion layer.

    Attributes:
        tokens: (B, T, hidden_dim) projected token (or patch) features.
        mask: (B, T) bool, True for real tokens (False for padding).
    """

    tokens: Tensor
    mask: Tensor


class FrozenEncoder(nn.Module):
    """A frozen backbone (eval mode, no gradients) and a trainable projection to ``hidden_dim``.

    Subclasses implement :meth:`prepare` (raw data -> model-ready tensors) and
    :meth:`_backbone_features` (tensors -> (features (B, T, D), mask (B, T))).

    The projection is Linear + LayerNorm: the LayerNorm puts every modality on the unit scale
    that the N(0, 1) replacement of the FL-I2MoE interaction losses assumes.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, hidden_dim: int,
                 name: str) -> None:
        super().__init__()
        check_positive_int("hidden_dim", hidden_dim)
        check_positive_int("feature_dim", feature_dim)
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.feature_dim = feature_dim
        self.hidden_dim = hidden_dim
        self.name = name
        self.projection = nn.Sequential(nn.Linear(feature_dim, hidden_dim),
                                        nn.LayerNorm(hidden_dim))
        self._identity: str | None = None

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Train the projection only: the backbone stays in eval mode (no dropout, frozen
        batch-norm statistics) whatever ``mode`` is."""
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def identity(self) -> str:
        """A string naming the backbone and the preprocessing, used to key feature caches."""
        if self._identity is None:
            self._identity = (f"{type(self).__name__}:{self.name}:{self._preprocessing_id()}:"
                              f"{tensor_digest(dict(self.backbone.state_dict()))}")
        return self._identity

    def _preprocessing_id(self) -> str:
        return ""

    def prepare(self, data: Any) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def _backbone_features(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def features(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        """Frozen backbone features (B, T, D) and the token mask (B, T), without gradients."""
        device = next(self.backbone.parameters()).device
        with torch.no_grad():
            feats, mask = self._backbone_features(*(t.to(device) for t in tensors))
        return feats.float(), mask.bool()

    def project(self, features: Tensor) -> Tensor:
        """Trainable projection of backbone (or cached) features to ``hidden_dim``."""
        if features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"features have width {features.shape[-1]} but this encoder's backbone gives "
                f"{self.feature_dim}."
            )
        return self.projection(features)

    def forward(self, *tensors: Tensor) -> EncodedTokens:
        feats, mask = self.features(*tensors)
        return EncodedTokens(self.project(feats), mask)

    def encode(self, data: Any) -> EncodedTokens:
        """Raw data (texts, images) -> projected tokens and mask."""
        return self(*self.prepare(data))


def not_found(path_or_name: object, local_files_only: bool) -> FileNotFoundError:
    """The error for a model that could not be loaded, saying where it was looked for."""
    where = ("a local folder or a model already in the Hugging Face cache (local_files_only="
             "True never downloads)" if local_files_only else "a local folder or a Hub model")
    return FileNotFoundError(
        f"cannot load a model from {str(path_or_name)!r}: pass {where}; a folder written by "
        "save_pretrained() works offline.")
