"""Datasets of token sequences, masks and labels, in the layout the Trainer expects: in memory
(:class:`FusionDataset`) or read from a feature store on demand
(:class:`StreamedFusionDataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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

    @property
    def lengths(self) -> tuple[int, ...]:
        """Tokens per modality (T_1, ..., T_M)."""
        return _lengths(self.inputs)

    @property
    def feature_dims(self) -> list[int]:
        """Feature width per modality."""
        return _feature_dims(self.inputs)

    def select(self, index: Tensor) -> FusionDataset:
        """The examples ``index`` (a LongTensor of positions), in that order."""
        return _select(self.inputs, self.masks, self.labels, index)


class Rows(Protocol):
    """What :class:`StreamedFusionDataset` needs of a feature column: an (N, T, D) shape and
    row indexing (a :class:`~fl_i2moe_layer.encoders.stream.FeatureRows`, or a tensor)."""

    @property
    def shape(self) -> torch.Size: ...

    def __getitem__(self, index: Tensor) -> Tensor: ...


class StreamedFusionDataset(Dataset):
    """Like :class:`FusionDataset`, but the token features stay on disk: each modality is a
    lazy (N, T_m, D_m) column (:class:`~fl_i2moe_layer.encoders.stream.FeatureRows`) and an
    item reads only its own rows, so memory does not grow with the split. Masks and labels
    (small) are in memory.

    Examples::

        >>> text = store.encode(text_encoder, keys, load=texts_of)
        >>> data = StreamedFusionDataset([text.features, image.features],
        ...                              [text.mask, image.mask], labels)
        >>> trainer.fit(data)            # a DataLoader reads each batch's rows
    """

    def __init__(self, inputs: Sequence[Rows], masks: Sequence[Tensor], labels: Tensor) -> None:
        if not inputs or len(masks) != len(inputs):
            raise ValueError(f"inputs ({len(inputs)} columns) and masks ({len(masks)}) must be "
                             "non-empty lists of the same length, one per modality.")
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a tensor, got {type(labels).__name__}.")
        n = labels.shape[0]
        for i, (x, m) in enumerate(zip(inputs, masks, strict=True)):
            if len(x.shape) != 3 or x.shape[0] != n or tuple(m.shape) != tuple(x.shape[:2]):
                raise ValueError(f"inputs[{i}] has shape {tuple(x.shape)} and masks[{i}] "
                                 f"{tuple(m.shape)}; expected ({n}, T, D) and ({n}, T).")
        self.columns = list(inputs)
        self.masks = [m.bool() for m in masks]
        self.labels = labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[list[Tensor], list[Tensor], Tensor]:
        at = torch.tensor([index])
        return ([x[at][0] for x in self.columns], [m[index] for m in self.masks],
                self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[list[Tensor], list[Tensor], Tensor]]:
        """A DataLoader batch: each column's rows are read with one gather per chunk."""
        at = torch.as_tensor(indices, dtype=torch.long)
        columns = [x[at] for x in self.columns]
        return [([c[k] for c in columns], [m[i] for m in self.masks], self.labels[i])
                for k, i in enumerate(indices)]

    @property
    def lengths(self) -> tuple[int, ...]:
        """Tokens per modality (T_1, ..., T_M)."""
        return _lengths(self.columns)

    @property
    def feature_dims(self) -> list[int]:
        """Feature width per modality."""
        return _feature_dims(self.columns)

    def select(self, index: Tensor) -> FusionDataset:
        """The examples ``index`` (a LongTensor of positions) read into memory, in that
        order."""
        return _select(self.columns, self.masks, self.labels, index)


def _lengths(columns: Sequence[Rows]) -> tuple[int, ...]:
    return tuple(int(x.shape[1]) for x in columns)


def _feature_dims(columns: Sequence[Rows]) -> list[int]:
    return [int(x.shape[-1]) for x in columns]


def _select(columns: Sequence[Rows], masks: Sequence[Tensor], labels: Tensor,
            index: Tensor) -> FusionDataset:
    return FusionDataset([x[index] for x in columns], [m[index] for m in masks], labels[index])


#: Either kind of dataset (what a :class:`~fl_i2moe_layer.experiments.Split` holds).
SplitData = FusionDataset | StreamedFusionDataset
