"""Removal operators: how an absent player is taken out of the model's input.

Two operators are shipped (docs/design.md §2):

* :class:`BaselineRemoval` (default) replaces absent features by Captum-style ``baselines``.
* :class:`PresenceMaskRemoval` passes the inputs unchanged and hands the model, per perturbed
  row, one boolean *presence* tensor per input, shaped (rows, T_m), ``True`` where the token is
  present. A model opts in by accepting the keyword argument (default name ``presence``) and
  dropping absent tokens itself, e.g. as an attention key-padding mask. It must also cope with
  rows where every token of a modality is absent.

Both receive the coalitions as a boolean tensor ``present`` of shape (R, B, F): R coalitions
for each of the B examples over F players, and lay the perturbed batch out as (R, B) flattened,
the layout Captum uses for ``perturbations_per_eval`` (so additional forward args and targets
are expanded by repetition).
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from captum_interactions.modes import RemovalMode
from captum_interactions.players import Players, broadcastable
from captum_interactions.validation import is_number

BaselineInput = (None | int | float | Tensor | tuple[int | float | Tensor, ...]
                 | list[int | float | Tensor])


def presence_of_input(mask: Tensor, present: Tensor) -> Tensor:
    """Expand coalitions (R, B, F') to one input's mask shape: (R, B, *mask.shape[1:]).

    ``present`` must cover every id of ``mask`` (see :meth:`Players.with_fixed`)."""
    n_rows, batch, _ = present.shape
    ids = mask.expand((batch,) + tuple(mask.shape[1:])).reshape(batch, -1)
    gathered = present.gather(2, ids.unsqueeze(0).expand(n_rows, -1, -1))
    return gathered.view((n_rows, batch) + tuple(mask.shape[1:]))


class RemovalOperator(Protocol):
    """Builds the perturbed forward batch for a set of coalitions."""

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        """Validate against the inputs once, before any forward call."""

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        """Return the (R*B, ...) inputs and extra keyword arguments for the forward call."""


class BaselineRemoval:
    """Replace absent features by baselines (Captum ``baselines`` semantics).

    Args:
        baselines: a scalar, a tensor broadcastable to the input (e.g. a per-modality mean
            token of shape (H,)), or a tuple with one such entry per input. ``None`` means 0.
    """

    def __init__(self, baselines: BaselineInput = None) -> None:
        self.baselines = baselines
        self._formatted: tuple[Tensor, ...] = ()

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        baselines = self.baselines
        if baselines is None:
            baselines = 0.0
        if isinstance(baselines, list):
            baselines = tuple(baselines)  # a list works like a tuple: one entry per input
        if not isinstance(baselines, tuple):
            baselines = (baselines,) * len(inputs)
        if len(baselines) != len(inputs):
            raise ValueError(
                f"baselines has {len(baselines)} entries but inputs has {len(inputs)}: "
                "pass one baseline per input tensor (or a single scalar)."
            )
        formatted = []
        for m, (base, inp) in enumerate(zip(baselines, inputs, strict=False)):
            formatted.append(_baseline_tensor(f"baselines[{m}]", base, inp, f"inputs[{m}]"))
        self._formatted = tuple(formatted)

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        n_rows = present.shape[0]
        present = players.with_fixed(present)
        out = []
        for inp, mask, base in zip(inputs, players.masks, self._formatted, strict=False):
            keep = presence_of_input(mask, present)
            mixed = torch.where(keep, inp.unsqueeze(0), base)
            out.append(mixed.reshape((n_rows * inp.shape[0],) + tuple(inp.shape[1:])))
        return tuple(out), {}


def _baseline_tensor(name: str, base: Any, inp: Tensor, input_name: str) -> Tensor:
    """A baseline as a tensor in the input's dtype and device, checked: a real number, a numpy
    value or a tensor, broadcastable to the input, finite, and exactly representable in the
    input's dtype (a float baseline on integer ids would be silently truncated)."""
    if isinstance(base, np.ndarray | np.generic):
        base = torch.as_tensor(np.asarray(base))
    elif is_number(base):
        base = torch.tensor(int(base) if isinstance(base, numbers.Integral) else float(base))
    if not isinstance(base, Tensor) or base.dtype == torch.bool or base.dtype.is_complex:
        kind = type(base).__name__ if not isinstance(base, Tensor) else f"{base.dtype} tensor"
        raise TypeError(f"{name} must be a real number or a real tensor, got {kind}.")
    if base.dim() > inp.dim() or not broadcastable(base.shape, inp.shape):
        raise ValueError(
            f"{name} has shape {tuple(base.shape)}, which does not broadcast to "
            f"{input_name} of shape {tuple(inp.shape)}."
        )
    if base.dtype.is_floating_point and not bool(torch.isfinite(base).all()):
        raise ValueError(f"{name} holds NaN or Inf; baselines must be finite.")
    cast = base.to(device=inp.device, dtype=inp.dtype)
    if not inp.dtype.is_floating_point and base.dtype.is_floating_point and not bool(
            (cast.to(base.dtype) == base.to(inp.device)).all()):
        raise ValueError(
            f"{name} holds non-integer values but {input_name} has dtype {inp.dtype} (e.g. "
            "token ids): they would be truncated. Pass an integer baseline (such as a [PAD] or "
            "[MASK] id), or explain float embeddings instead."
        )
    return cast


class PresenceMaskRemoval:
    """Pass a boolean presence tensor per input; the model drops absent tokens itself.

    Every player must be a set of positions along dim 1 (the feature mask is constant along
    the other non-batch dims), so that presence can be given per token.

    Args:
        keyword: name of the forward keyword argument that receives the tuple of presence
            tensors, each (rows, T_m) with ``True`` for present tokens.
    """

    def __init__(self, keyword: str = "presence") -> None:
        self.keyword = keyword
        self._token_masks: tuple[Tensor, ...] = ()

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        token_masks = []
        for m, (mask, inp) in enumerate(zip(players.masks, inputs, strict=False)):
            if inp.dim() < 2:
                raise ValueError(
                    f"removal='presence' needs token inputs shaped (B, T, ...); inputs[{m}] has "
                    f"shape {tuple(inp.shape)}."
                )
            token = mask
            for dim in range(2, mask.dim()):
                first = token.narrow(dim, 0, 1)
                if not bool((token == first).all()):
                    raise ValueError(
                        f"removal='presence' gives presence per token, but feature_mask[{m}] "
                        f"varies along dim {dim}; players must be whole positions along dim 1."
                    )
                token = first
            token = token.reshape(token.shape[0], -1)
            token_masks.append(token.expand(token.shape[0], inp.shape[1]))
        self._token_masks = tuple(token_masks)

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        n_rows, batch, _ = present.shape
        repeated = tuple(
            inp.unsqueeze(0).expand((n_rows,) + tuple(inp.shape)).reshape(
                (n_rows * batch,) + tuple(inp.shape[1:])
            )
            for inp in inputs
        )
        present = players.with_fixed(present)
        presence = tuple(
            presence_of_input(mask, present).reshape(n_rows * batch, -1)
            for mask in self._token_masks
        )
        return repeated, {self.keyword: presence}


def make_removal(
    removal: RemovalMode | RemovalOperator, baselines: BaselineInput
) -> RemovalOperator:
    """Turn the ``removal`` argument of ``attribute`` into an operator."""
    if isinstance(removal, str):
        if removal == "baseline":
            return BaselineRemoval(baselines)
        if removal == "presence":
            if baselines is not None:
                raise ValueError(
                    "baselines are unused with removal='presence': the model drops absent "
                    "tokens itself. Pass baselines=None or removal='baseline'."
                )
            return PresenceMaskRemoval()
        raise ValueError(
            f"removal must be 'baseline', 'presence' or a removal operator, got {removal!r}."
        )
    if not (hasattr(removal, "prepare") and hasattr(removal, "perturb")):
        raise TypeError(
            "removal must be 'baseline', 'presence' or an object with prepare() and perturb()."
        )
    return removal
