"""A small synthetic fusion task for tests, examples and smoke runs.

Each modality m carries one bit b_m, planted as a shift of +-``signal`` on feature 0 of its
real tokens (padding is random noise that a correct model must ignore). Labels need every
modality: multiclass ``sum_m b_m 2^m`` (2^M classes), multilabel ``[b_0, ..., b_{M-1},
AND of all]``, binary ``AND of all``.
"""

from __future__ import annotations

import torch

from fl_i2moe_layer.training.data import FusionDataset


def synthetic_fusion_data(n: int, *, num_modalities: int = 2, tokens: int = 6,
                          hidden_dim: int = 16, task: str = "multiclass", signal: float = 1.0,
                          seed: int = 0) -> FusionDataset:
    """``n`` examples of M modalities with ``tokens`` tokens (some padded) of width
    ``hidden_dim``; see the module docstring for the labels."""
    gen = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (n, num_modalities), generator=gen)
    inputs, masks = [], []
    for m in range(num_modalities):
        x = torch.randn(n, tokens, hidden_dim, generator=gen)
        lengths = torch.randint(max(1, tokens // 2), tokens + 1, (n,), generator=gen)
        mask = torch.arange(tokens).unsqueeze(0) < lengths.unsqueeze(1)
        shift = (bits[:, m].float() * 2 - 1) * signal
        x[..., 0] += shift.unsqueeze(1) * mask  # only real tokens carry the bit
        inputs.append(x)
        masks.append(mask)
    if task == "multiclass":
        labels = (bits * (2 ** torch.arange(num_modalities))).sum(1)
    elif task == "multilabel":
        labels = torch.cat([bits, bits.all(1, keepdim=True).long()], 1).float()
    elif task == "binary":
        labels = bits.all(1).float()
    else:
        raise ValueError(f"task must be multiclass, multilabel or binary, got {task!r}.")
    return FusionDataset(inputs, masks, labels)


def synthetic_num_classes(task: str, num_modalities: int = 2) -> int:
    """num_classes matching :func:`synthetic_fusion_data`."""
    return {"multiclass": 2**num_modalities, "multilabel": num_modalities + 1,
            "binary": 1}[task]
