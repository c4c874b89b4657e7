"""Shared inputs and tiny random Hugging Face models of the Hugging Face tests (never a
download): a padded batch of token ids with special tokens, 32 x 32 images, a tiny CLIP
(the ``clip`` and ``pixels`` fixtures of tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

BOS, EOS, PAD = 49, 48, 0
IDS = torch.tensor([[BOS, 5, 6, 7, EOS, PAD], [BOS, 8, 9, EOS, PAD, PAD]])
ATTENTION = (IDS != PAD).long()
SPECIAL = ((IDS == BOS) | (IDS == EOS)).long()


def tiny_clip() -> Any:
    """A random CLIP with 16-wide, one-layer towers and 16 x 16 patches, in float64."""
    import transformers

    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "bos_token_id": BOS,
                     "eos_token_id": EOS, "pad_token_id": PAD},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
        projection_dim=8)
    return transformers.CLIPModel(config).eval().double()


def image_batch() -> Tensor:
    """Two 3 x 32 x 32 float64 images."""
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64)
