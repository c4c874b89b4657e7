"""The M replaced-modality variants of a batch, laid out along the batch dimension.

Row block 0 is the full input and block k + 1 the input with modality k replaced, so that one
expert call over (M + 1)·B rows yields the anchor and every variant the interaction losses
compare (docs/design.md §5).
"""

from __future__ import annotations

import torch
from torch import Tensor


def replacement_values(x: Tensor, keep: Tensor, mode: str,
                       generator: torch.Generator | None) -> Tensor:
    """What replaces modality tokens x (B, T, H): N(0, 1) noise, the batch's mean present token,
    or zeros. The batch mean (not the example's own mean) is used so that a replaced modality
    carries no information about its example."""
    if mode == "noise":
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if mode == "mean":
        w = keep.to(x.dtype).unsqueeze(-1)
        mean = (x * w).sum((0, 1)) / w.sum().clamp_min(1.0)
        return mean.expand_as(x)
    if mode == "zero":
        return torch.zeros_like(x)
    raise ValueError(f"replacement must be 'noise', 'mean' or 'zero', got {mode!r}.")


def stack_variants(inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...], mode: str,
                   generator: torch.Generator | None = None
                   ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Return per-modality tokens ((M+1)·B, T_m, H) and keep masks ((M+1)·B, T_m).

    Padding and presence masks are unchanged in a variant: a replaced modality keeps its
    token count, only the token values change.
    """
    m = len(inputs)
    block = torch.arange(m + 1, device=inputs[0].device)
    tokens, masks = [], []
    for k, (x, kp) in enumerate(zip(inputs, keep, strict=True)):
        replaced = (block == k + 1).view(m + 1, 1, 1, 1)
        values = replacement_values(x, kp, mode, generator)
        tokens.append(torch.where(replaced, values.unsqueeze(0), x.unsqueeze(0))
                      .reshape((m + 1) * x.shape[0], *x.shape[1:]))
        masks.append(kp.repeat(m + 1, 1))
    return tuple(tokens), tuple(masks)


def stack_removals(inputs: tuple[Tensor, ...], keep: tuple[Tensor, ...]
                   ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The variants of ``objective="specialised"``: block k + 1 is the input with modality k
    *removed* through its keep mask (every token absent, as with presence masks), block 0
    the full input. Returns per-modality tokens ((M+1)·B, T_m, H) (the values repeated) and
    keep masks ((M+1)·B, T_m)."""
    m = len(inputs)
    block = torch.arange(m + 1, device=inputs[0].device)
    tokens, masks = [], []
    for k, (x, kp) in enumerate(zip(inputs, keep, strict=True)):
        tokens.append(x.repeat(m + 1, 1, 1))
        kept = (block != k + 1).view(m + 1, 1, 1) & kp.unsqueeze(0)
        masks.append(kept.reshape((m + 1) * kp.shape[0], kp.shape[1]))
    return tuple(tokens), tuple(masks)
