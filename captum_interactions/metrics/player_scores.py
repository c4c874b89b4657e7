"""From Captum attribution outputs to per-player scores, and the requested-pairs mask."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_interactions.players import PairsType, Players, pair_matrix, resolve_players
from captum_interactions.validation import check_finite, format_inputs

AttributionsType = Tensor | tuple[Tensor, ...]


def reduce_to_players(
    inputs: tuple[Tensor, ...], players: Players, attributions: AttributionsType
) -> Tensor:
    """(B, F) per-player scores from input-shaped attributions or a (B, F) tensor.

    A tensor (or tuple) with the shape of the inputs is read as Captum per-element attributions
    and summed over each player's elements (signed). Otherwise a single (B, F) tensor is taken
    as per-player scores. The result is float64 on the inputs' device.
    """
    batch, n_players = inputs[0].shape[0], players.n_players
    device = inputs[0].device
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    for m, part in enumerate(parts):
        if not isinstance(part, Tensor):
            raise TypeError(f"attributions[{m}] must be a torch.Tensor, got {type(part)}.")
        if part.dtype == torch.bool or part.dtype.is_complex:
            raise TypeError(f"attributions[{m}] must be real-valued, got dtype {part.dtype}.")
    input_shaped = len(parts) == len(inputs) and all(
        part.shape == inp.shape for part, inp in zip(parts, inputs, strict=True)
    )
    if input_shaped:
        for m, part in enumerate(parts):
            check_finite("attributions" if len(parts) == 1 else f"attributions[{m}]", part)
        # Column F collects the positions that are not players, and is dropped.
        out = torch.zeros(batch, n_players + 1, dtype=torch.float64, device=device)
        for part, mask in zip(parts, players.masks, strict=True):
            ids = mask.expand(part.shape).reshape(batch, -1)
            out.scatter_add_(1, ids, part.detach().to(device, torch.float64).reshape(batch, -1))
        return out[:, :n_players]
    if len(parts) == 1 and tuple(parts[0].shape) == (batch, n_players):
        check_finite("attributions", parts[0])
        return parts[0].detach().to(device, torch.float64)
    shapes = [tuple(part.shape) for part in parts]
    expected = [tuple(inp.shape) for inp in inputs]
    raise ValueError(
        f"attributions have shape(s) {shapes}; expected the shapes of the inputs {expected} "
        f"(Captum attributions, summed per player through feature_mask) or a (B, F) = "
        f"{(batch, n_players)} tensor of per-player scores."
    )


def player_attributions(
    inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
    attributions: AttributionsType,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
) -> Tensor:
    """Sum Captum attributions over each player's elements: one score per player.

    Args:
        inputs (Tensor or tuple[Tensor, ...]): the inputs that were explained.
        attributions (Tensor or tuple[Tensor, ...]): Captum attributions shaped like
            ``inputs``, or a (B, F) tensor (returned as is, checked).
        feature_mask (Tensor or tuple[Tensor, ...], optional): player ids, as in
            :meth:`ShapleyInteractionIndex.attribute`. Default: one player per position
            along dim 1 of each input.

    Returns:
        *Tensor* (B, F) float64: the signed sum of each player's attributions.

    Examples::

        >>> attr = IntegratedGradients(model).attribute((text, image), target=1)
        >>> player_attributions((text, image), attr).shape  # one score per token / patch
        torch.Size([4, 14])
    """
    formatted = format_inputs(inputs)
    players = resolve_players(formatted, feature_mask)
    return reduce_to_players(formatted, players, attributions)


def requested_pair_mask(
    inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
    pairs: PairsType = "cross",
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
) -> Tensor:
    """The (F, F) bool mask of requested pairs, e.g. for :func:`concentration`.

    Args:
        inputs, feature_mask: as in :meth:`ShapleyInteractionIndex.attribute`.
        pairs (str or Tensor, optional): ``"cross"``, ``"all"`` or a (P, 2) tensor.
            Default: ``"cross"``.

    Returns:
        *Tensor* (F, F) bool on the inputs' device, symmetric, zero diagonal.

    Examples::

        >>> requested_pair_mask((text, image)).sum() // 2  # T * P cross-modal pairs
        tensor(48)
    """
    formatted = format_inputs(inputs)
    players = resolve_players(formatted, feature_mask)
    return pair_matrix(players, pairs).to(formatted[0].device)
