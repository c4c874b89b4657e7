"""Players: Captum ``feature_mask`` semantics, the per-position default, and pair selection.

A *player* is an integer id of a Captum feature mask. The same id in two input tensors is one
player. Without a mask, every position along dim 1 of every input (a token, a patch) is one
player, with ids consecutive across inputs. The *modality* of a player is the input tensor it
lives in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_interactions.modes import PairsMode
from captum_interactions.validation import check_allocation, check_int, check_positive_int

PairsType = PairsMode | Tensor


@dataclass(frozen=True)
class Players:
    """The players of a batch of inputs.

    Attributes:
        masks: one integer id tensor per input, broadcastable to that input and kept in its
            own (small) shape so that gathers stay cheap.
        n_players: F, the number of player ids (``max id + 1``).
        modality: (F,) long tensor: the input index of each player, or -1 for a player that
            spans several inputs, or -2 for an id that appears nowhere.
    """

    masks: tuple[Tensor, ...]
    n_players: int
    modality: Tensor


def default_feature_mask(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One player per position along dim 1 of each input, ids consecutive across inputs.

    Args:
        inputs: tuple of tensors shaped (B, T_m, ...).

    Returns:
        tuple of long tensors shaped (1, T_m, 1, ..., 1), broadcastable to each input.
    """
    masks = []
    offset = 0
    for m, inp in enumerate(inputs):
        if inp.dim() < 2:
            raise ValueError(
                f"inputs[{m}] has shape {tuple(inp.shape)}: the default players are the positions "
                "along dim 1, so each input needs shape (B, T, ...). Pass `feature_mask` "
                "(see captum_interactions.patch_grid_mask / group_mask) for other inputs."
            )
        length = inp.shape[1]
        shape = (1, length) + (1,) * (inp.dim() - 2)
        masks.append(torch.arange(offset, offset + length, device=inp.device).view(shape))
        offset += length
    return tuple(masks)


def resolve_players(
    inputs: tuple[Tensor, ...], feature_mask: Tensor | tuple[Tensor, ...] | None
) -> Players:
    """Validate a Captum-style feature mask (or build the default) and describe the players."""
    if feature_mask is None:
        masks = default_feature_mask(inputs)
    else:
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        if len(masks) != len(inputs):
            raise ValueError(
                f"feature_mask has {len(masks)} tensor(s) but inputs has {len(inputs)}: "
                "pass one mask per input tensor."
            )
        checked = []
        for m, (mask, inp) in enumerate(zip(masks, inputs, strict=False)):
            if not isinstance(mask, Tensor):
                raise TypeError(f"feature_mask[{m}] must be a torch.Tensor, got {type(mask)}.")
            if mask.dtype.is_floating_point or mask.dtype.is_complex or mask.dtype == torch.bool:
                raise TypeError(
                    f"feature_mask[{m}] must hold integer player ids, got dtype {mask.dtype}."
                )
            if mask.dim() > inp.dim() or not broadcastable(mask.shape, inp.shape):
                raise ValueError(
                    f"feature_mask[{m}] has shape {tuple(mask.shape)}, which does not broadcast "
                    f"to inputs[{m}] of shape {tuple(inp.shape)}."
                )
            if mask.dim() == inp.dim() and mask.shape[0] not in (1, inp.shape[0]):
                raise ValueError(
                    f"feature_mask[{m}] has batch size {mask.shape[0]}; expected 1 or "
                    f"{inp.shape[0]} (the batch size of inputs[{m}])."
                )
            if mask.numel() and int(mask.min()) < 0:
                raise ValueError(f"feature_mask[{m}] holds negative ids; ids must be >= 0.")
            # Left-pad to the input's rank so that dim 0 is always the batch dim.
            mask = mask.reshape((1,) * (inp.dim() - mask.dim()) + tuple(mask.shape))
            checked.append(mask.to(device=inp.device, dtype=torch.long))
        masks = tuple(checked)

    n_players = max(int(mask.max()) + 1 for mask in masks if mask.numel()) if masks else 0
    if n_players < 2:
        raise ValueError(f"Interactions need at least 2 players; the inputs define {n_players}.")
    modality = torch.full((n_players,), -2, dtype=torch.long)
    for m, mask in enumerate(masks):
        ids = torch.unique(mask).cpu()
        seen = modality[ids]
        modality[ids] = torch.where(seen == -2, torch.full_like(seen, m), torch.full_like(seen, -1))
        modality[ids[(seen >= 0) & (seen != m)]] = -1
    return Players(masks=masks, n_players=n_players, modality=modality)


def broadcastable(small: torch.Size, big: torch.Size) -> bool:
    return all(a in (1, b) for a, b in zip(reversed(small), reversed(big), strict=False))


def require_single_modality(players: Players, option: str, alternative: str) -> None:
    """Raise if a player id appears in several inputs, which ``option`` cannot handle."""
    spanning = torch.nonzero(players.modality == -1).flatten().tolist()
    if spanning:
        raise ValueError(
            f"{option} needs every player inside one input, but player id(s) {spanning[:10]} "
            f"appear in several input tensors of feature_mask. Give them separate ids or "
            f"{alternative}."
        )


def pair_matrix(players: Players, pairs: PairsType) -> Tensor:
    """The (F, F) boolean symmetric matrix of requested pairs (zero diagonal).

    Args:
        players: from :func:`resolve_players`.
        pairs: ``"cross"`` (players in different inputs), ``"all"``, or a (P, 2) integer
            tensor of player ids.
    """
    n = players.n_players
    modality = players.modality
    # Pair values are (F, F) per example: refuse an F whose bookkeeping alone is too large
    # (often a stray large id in feature_mask) before anything of that size exists.
    check_allocation(
        f"Pairs of F = {n} players (feature_mask's largest id is {n - 1}): one (F, F) float64 "
        "matrix per example", 8 * n**2,
        "Player ids are indices 0..F-1: number the players consecutively, or group features "
        "into fewer players (feature_mask).")
    if isinstance(pairs, str):
        if pairs == "all":
            requested = ~torch.eye(n, dtype=torch.bool)
        elif pairs == "cross":
            require_single_modality(players, "pairs='cross'",
                                    "pass pairs='all' or an explicit (P, 2) tensor")
            requested = (modality[:, None] != modality[None, :]) & (modality[:, None] >= 0)
            requested &= modality[None, :] >= 0
            if not requested.any():
                raise ValueError(
                    "pairs='cross' found no cross-modal pair: all players live in one input. "
                    "Pass pairs='all' for within-modality pairs."
                )
        else:
            raise ValueError(f"pairs must be 'cross', 'all' or a (P, 2) tensor, got {pairs!r}.")
    elif isinstance(pairs, Tensor):
        if pairs.dtype.is_floating_point or pairs.dtype == torch.bool:
            raise TypeError(f"pairs must be an integer tensor of player ids, got {pairs.dtype}.")
        if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
            raise ValueError(f"pairs must have shape (P, 2) with P >= 1, got {tuple(pairs.shape)}.")
        pairs = pairs.detach().cpu().long()
        bad = (pairs < 0) | (pairs >= n)
        if bad.any():
            row = int(torch.nonzero(bad.any(1))[0])
            raise ValueError(
                f"pairs[{row}] = {pairs[row].tolist()} names an unknown player: ids must lie in "
                f"[0, {n - 1}] (the feature mask defines {n} players)."
            )
        self_pairs = pairs[:, 0] == pairs[:, 1]
        if self_pairs.any():
            row = int(torch.nonzero(self_pairs)[0])
            raise ValueError(
                f"pairs[{row}] = {pairs[row].tolist()} pairs a player with itself; "
                "an interaction needs two distinct players."
            )
        requested = torch.zeros(n, n, dtype=torch.bool)
        requested[pairs[:, 0], pairs[:, 1]] = True
        requested[pairs[:, 1], pairs[:, 0]] = True
    else:
        raise TypeError(f"pairs must be 'cross', 'all' or a (P, 2) tensor, got {type(pairs)}.")
    return requested


def group_mask(group_sizes: Sequence[int] | Tensor, *, offset: int = 0) -> Tensor:
    """A feature mask for a flat vector input (B, D): consecutive groups of features.

    Args:
        group_sizes: sizes of consecutive groups; they must add up to D.
        offset: first player id (use it to keep ids distinct across inputs).

    Returns:
        (1, D) long tensor of player ids.

    Examples::

        >>> group_mask([2, 3], offset=4)
        tensor([[4, 4, 5, 5, 5]])
    """
    given: object = group_sizes  # checked at run time whatever the annotation says
    if isinstance(given, str) or not isinstance(given, Sequence | Tensor):
        raise TypeError(f"group_sizes must be a sequence of ints, got {type(given)}.")
    sizes = [check_positive_int(f"group_sizes[{k}]", s) for k, s in enumerate(
        given.tolist() if isinstance(given, Tensor) else given)]
    if not sizes:
        raise ValueError("group_sizes is empty; pass the size of every group.")
    offset = check_int("offset", offset, minimum=0)
    ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return (ids + offset).unsqueeze(0)


def patch_grid_mask(
    height: int, width: int, patch_size: int | tuple[int, int], *, offset: int = 0
) -> Tensor:
    """A feature mask for images (B, C, H, W): one player per square patch, row-major.

    Args:
        height, width: image size in pixels; both must be divisible by the patch size.
        patch_size: patch side, or (patch height, patch width).
        offset: first player id.

    Returns:
        (1, 1, H, W) long tensor of player ids, broadcast over channels.

    Examples::

        >>> patch_grid_mask(4, 4, 2)[0, 0]
        tensor([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [2, 2, 3, 3],
                [2, 2, 3, 3]])
    """
    height, width = check_positive_int("height", height), check_positive_int("width", width)
    if isinstance(patch_size, tuple) and len(patch_size) == 2:
        ph = check_positive_int("patch_size[0]", patch_size[0])
        pw = check_positive_int("patch_size[1]", patch_size[1])
    else:
        ph = pw = check_positive_int("patch_size", patch_size)
    offset = check_int("offset", offset, minimum=0)
    if height % ph or width % pw:
        raise ValueError(
            f"patch_size {patch_size} must be positive and divide the image size "
            f"({height}, {width})."
        )
    rows = torch.arange(height) // ph
    cols = torch.arange(width) // pw
    ids = rows[:, None] * (width // pw) + cols[None, :]
    return (ids + offset).view(1, 1, height, width)
