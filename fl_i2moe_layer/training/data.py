"""In-memory datasets of token sequences, masks and labels, in the layout the Trainer expects."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset


class FusionDataset(Dataset):
    """M token tensors (N, T_m, D_m), M masks (N, T_m) and labels (N, ...).

    An item is ``([x_1, ..., x_M], [mask_1, ..., mask_M], label)``; PyTorch's default collate
    turns a batch of items into lists of stacked tensors, the layout of ``layer(inputs, masks)``.

    Examples::

        >>> data = FusionDataset([text, image], [text_mask, image_mask], labels)
        >>> trainer.fit(data, val_data)
    """

    def __init__(self, inputs: Sequence[Tensor], masks: Sequence[Tensor] | None,
                 labels: Tensor) -> None:
        given: object = inputs  # checked at run time whatever the annotation says
        if isinstance(given, Tensor) or not inputs:
            raise ValueError("inputs must be a non-empty list of tensors, one per modality.")
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a tensor, got {type(labels).__name__} (use "
                            "torch.tensor(labels)).")
        for i, x in enumerate(inputs):
            if not isinstance(x, Tensor) or x.dim() < 2:
                raise TypeError(f"inputs[{i}] must be a (N, T, ...) tensor, got "
                                f"{type(x).__name__}.")
        n = labels.shape[0]
        for i, x in enumerate(inputs):
            if x.shape[0] != n:
                raise ValueError(f"inputs[{i}] has {x.shape[0]} examples but labels has {n}.")
        if masks is None:
            masks = [torch.ones(x.shape[:2], dtype=torch.bool) for x in inputs]
        if len(masks) != len(inputs):
            raise ValueError(f"masks has {len(masks)} tensors but inputs has {len(inputs)}.")
        for i, (m, x) in enumerate(zip(masks, inputs, strict=True)):
            if tuple(m.shape) != tuple(x.shape[:2]):
                raise ValueError(
                    f"masks[{i}] has shape {tuple(m.shape)}, expected {tuple(x.shape[:2])}."
                )
        self.inputs = list(inputs)
        self.masks = [m.bool() for m in masks]
        self.labels = labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[list[Tensor], list[Tensor], Tensor]:
        return ([x[index] for x in self.inputs], [m[index] for m in self.masks],
                self.labels[index])
