"""Small synthetic fusion tasks for tests, examples and smoke runs.

:func:`synthetic_cue_data` is a token-level miniature of the planted dataset (its rules and
cue cases without encoders). :func:`synthetic_fusion_data`:

Each modality m carries one bit b_m, planted as a shift of +-``signal`` on feature 0 of its
real tokens (padding is random noise that a correct model must ignore). Labels need every
modality: multiclass ``sum_m b_m 2^m`` (2^M classes), multilabel ``[b_0, ..., b_{M-1},
AND of all]``, binary ``AND of all``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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


@dataclass(frozen=True)
class SyntheticCueData:
    """A token-level miniature of the planted dataset (:mod:`fl_i2moe_layer.data.planted`),
    without encoders: see :func:`synthetic_cue_data`.

    Attributes:
        dataset: ([text, image], [masks], labels) with binary 0/1 float labels.
        rule: (N,) index into :data:`~fl_i2moe_layer.data.planted.RULES`.
        labels: (N,) 0/1 floats.
        cue_token / cue_patch: (N, 3) position of the planted text / image cue of the
            text-or-image, synergy and redundancy cue (``-1`` if absent), as in
            :class:`~fl_i2moe_layer.data.planted.PlantedSpec`.
    """

    dataset: FusionDataset
    rule: Tensor
    labels: Tensor
    cue_token: Tensor
    cue_patch: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: Tensor | list[int] | slice) -> SyntheticCueData:
        """The examples ``index``, in that order (the same vocabulary: a train / test split
        of one call, unlike two calls with different seeds)."""
        d = self.dataset
        return SyntheticCueData(
            FusionDataset([x[index] for x in d.inputs], [m[index] for m in d.masks],
                          d.labels[index]),
            self.rule[index], self.labels[index], self.cue_token[index], self.cue_patch[index])


def synthetic_cue_data(n: int, *, text_tokens: int = 6, image_tokens: int = 8,
                       hidden_dim: int = 16, vocabulary: int = 16, noise: float = 0.1,
                       seed: int = 0) -> SyntheticCueData:
    """``n`` examples of the planted rules on random tokens (fast enough for unit tests).

    Like the planted words and tiles, every token is an entry of a small per-modality
    vocabulary (``vocabulary`` distractors and 3 cues, N(0, 1) vectors drawn once) plus
    N(0, ``noise``²) noise. The rules and cues follow
    :func:`~fl_i2moe_layer.data.planted.generate_planted`: ``y = T or I or (S_w and S_t) or R_w
    or R_t``; each example is drawn for one rule (balanced), positive or negative with
    probability 1/2; text / image: the cue or nothing; synergy: both cues (positive) or exactly
    one (negative); redundancy: both cues (half the positives), the word only or the tile only
    (a quarter each); negative: none. A cue replaces one distractor token.

    Examples::

        >>> data = synthetic_cue_data(256, seed=0)
        >>> data.dataset.inputs[0].shape, data.dataset.inputs[1].shape
        (torch.Size([256, 6, 16]), torch.Size([256, 8, 16]))
    """
    gen = torch.Generator().manual_seed(seed)
    rule = torch.randperm(n, generator=gen) % 4
    positive = torch.rand(n, generator=gen) < 0.5
    u, v = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    word = torch.zeros(n, 3, dtype=torch.bool)
    tile = torch.zeros(n, 3, dtype=torch.bool)
    word[:, 0] = (rule == 0) & positive
    tile[:, 0] = (rule == 1) & positive
    word[:, 1] = (rule == 2) & (positive | (v < 0.5))
    tile[:, 1] = (rule == 2) & (positive | (v >= 0.5))
    word[:, 2] = (rule == 3) & positive & (u < 0.75)
    tile[:, 2] = (rule == 3) & positive & ((u < 0.5) | (u >= 0.75))
    inputs, slots = [], []
    for length, present in ((text_tokens, word), (image_tokens, tile)):
        table = torch.randn(vocabulary + 3, hidden_dim, generator=gen)
        ids = torch.randint(0, vocabulary, (n, length), generator=gen)
        slot = torch.randint(0, length, (n,), generator=gen)
        has = present.any(1)
        ids[has, slot[has]] = vocabulary + present[has].float().argmax(1)
        inputs.append(table[ids] + noise * torch.randn(n, length, hidden_dim, generator=gen))
        slots.append(torch.where(present, slot.unsqueeze(1), -1))
    masks = [torch.ones(n, t, dtype=torch.bool) for t in (text_tokens, image_tokens)]
    labels = positive.float()
    return SyntheticCueData(FusionDataset(inputs, masks, labels), rule, labels, slots[0],
                            slots[1])
