"""Captum ``TargetType`` selection, validated once and applied to perturbed batches in one op."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TargetType = None | int | tuple[int, ...] | Tensor | list[int] | list[tuple[int, ...]]


class TargetSelector:
    """Picks one scalar per row from a forward output, with Captum's target semantics.

    * ``None``: the output must already hold one value per example ((B,) or (B, 1)).
    * ``int`` / ``tuple``: the same index into dims 1.. for every example.
    * a tensor with one entry, or with B entries, or a list of B ints / tuples: per example.

    Perturbed batches are laid out as (R, B) flattened, so per-example targets repeat R times.
    """

    def __init__(self, target: TargetType, batch_size: int) -> None:
        self.batch_size = batch_size
        self.index: Tensor | None = None  # (B, k) long: per-example index into output dims 1..k
        if target is None:
            return
        if isinstance(target, bool):
            raise TypeError("target must be an int, a tuple, a tensor or a list, not a bool.")
        if isinstance(target, int):
            rows: Sequence[Sequence[int]] = [[target]] * batch_size
        elif isinstance(target, tuple):
            rows = [list(target)] * batch_size
        elif isinstance(target, Tensor):
            if target.dtype.is_floating_point or target.dtype == torch.bool:
                raise TypeError(f"target tensor must hold integer indices, got {target.dtype}.")
            flat = target.detach().cpu().reshape(-1).tolist()
            if len(flat) == 1:
                rows = [flat] * batch_size
            elif len(flat) == batch_size:
                rows = [[t] for t in flat]
            else:
                raise ValueError(
                    f"target tensor has {len(flat)} entries; expected 1 or the batch size "
                    f"{batch_size}."
                )
        elif isinstance(target, list):
            if len(target) != batch_size:
                raise ValueError(
                    f"target list has {len(target)} entries; expected the batch size {batch_size}."
                )
            rows = [list(t) if isinstance(t, tuple) else [t] for t in target]
            if len({len(r) for r in rows}) != 1:
                raise ValueError("target list entries must all have the same length.")
        else:
            raise TypeError(
                f"target must be None, an int, a tuple, a tensor or a list; got {type(target)}."
            )
        if not all(isinstance(i, int) and not isinstance(i, bool) for r in rows for i in r):
            raise TypeError(f"target entries must be integers, got {target!r}.")
        self.index = torch.tensor(rows, dtype=torch.long)

    def validate(self, output: Tensor) -> None:
        """Check an output of the B original examples against the target (clear errors)."""
        if self.index is None:
            if output.dim() > 1 and output[0].numel() != 1:
                raise ValueError(
                    f"The forward output has shape {tuple(output.shape)}: pass `target` to pick "
                    "one value per example (e.g. the class index)."
                )
            return
        k = self.index.shape[1]
        sizes = tuple(output.shape[1:])
        if len(sizes) < k:
            raise ValueError(
                f"target indexes {k} output dim(s) but the forward output has shape "
                f"{tuple(output.shape)}."
            )
        for d in range(k):
            col = self.index[:, d]
            if int(col.min()) < -sizes[d] or int(col.max()) >= sizes[d]:
                raise ValueError(
                    f"target {self.index[:, :].tolist() if self.batch_size > 1 else col.tolist()} "
                    f"is out of range for the forward output of shape {tuple(output.shape)} "
                    f"(dim {d + 1} has size {sizes[d]})."
                )
        rest = sizes[k:]
        if rest and torch.Size(rest).numel() != 1:
            raise ValueError(
                f"After selecting target, each example still has shape {rest}: the target must "
                "pick a single value per example."
            )

    def select(self, output: Tensor, n_rows: int) -> Tensor:
        """(n_rows * B, ...) output -> (n_rows * B,) selected values."""
        if self.index is None:
            return output.reshape(output.shape[0])
        index = self.index.to(output.device).repeat(n_rows, 1)
        key = (torch.arange(output.shape[0], device=output.device), *index.unbind(1))
        picked = output[key]
        return picked.reshape(output.shape[0])
