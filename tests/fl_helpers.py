"""Small builders shared by the FL-I2MoE tests (tiny dims so every test runs in ~a second)."""

from __future__ import annotations

import torch
from torch import Tensor

from fl_i2moe_layer import FLI2MoE

H = 16


def tiny_layer(num_modalities: int = 2, num_classes: int = 3, *, task: str = "multiclass",
               seed: int = 0, dtype: torch.dtype = torch.float64, **kwargs) -> FLI2MoE:
    torch.manual_seed(seed)
    options = {"num_layers": 2, "num_heads": 2, "dropout": 0.0, **kwargs}
    return FLI2MoE(num_modalities, H, num_classes, task=task, **options).to(dtype)


def tiny_batch(lengths: tuple[int, ...] = (5, 4), batch: int = 3, *, padded: bool = True,
               seed: int = 1, dtype: torch.dtype = torch.float64
               ) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs (B, T_m, H) and masks with a different amount of padding per example."""
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(batch, t, H, generator=gen, dtype=dtype) for t in lengths]
    masks = []
    for t in lengths:
        mask = torch.ones(batch, t, dtype=torch.bool)
        if padded:
            for b in range(batch):
                mask[b, t - (b % t) :] = False  # example b pads its last b % t tokens
        masks.append(mask)
    return xs, masks
