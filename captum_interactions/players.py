"""Players: Captum ``feature_mask`` semantics, the per-position default, and pair selection.

A *player* is an integer id of a Captum feature mask. The same id in two input tensors is one
player. Without a mask, every position along dim 1 of every input (a token, a patch) is one
player, with ids consecutive across inputs. The *modality* of a player is the input tensor it
lives in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
            own (small) shape so that gathers stay cheap. Positions that are not players
            (id -1 in the user's mask) hold the id F: they are present in every coalition.
        n_players: F, the number of player ids (``max id + 1``; -1 is not counted).
        modality: (F,) long tensor: the input index of each player, or -1 for a player that
            spans several inputs, or -2 for an id that appears nowhere.
        fixed: whether some positions are not players (id F in ``masks``).
    """

    masks: tuple[Tensor, ...]
    n_players: int
    modality: Tensor
    fixed: bool = False

    def with_fixed(self, present: Tensor) -> Tensor:
        """Coalitions (R, B, F) extended by the always-present id F when some positions are
        not players, so that ``masks`` can index them directly: (R, B, F or F + 1)."""
        if not self.fixed:
            return present
        return torch.cat([present, present.new_ones(present.shape[:-1] + (1,))], dim=-1)


def default_feature_mask(
    inputs: Tensor | Sequence[Tensor], *, overrides: dict[int, Tensor] | None = None
) -> tuple[Tensor, ...]:
    """One player per position along dim 1 of each input, ids consecutive across inputs, or
    the mask given in ``overrides`` for some inputs (its ids shifted to follow the previous
    inputs' players; -1 stays "not a player").

    Inputs with 4 or more dims (images (B, C, H, W)) have no default: one player per position
    along dim 1 would make each colour channel a player. Give them a mask in ``overrides``
    (e.g. :func:`patch_grid_mask`).

    Args:
        inputs: tensors shaped (B, T_m, ...).
        overrides: input index -> feature mask for that input, ids from 0.

    Returns:
        tuple of long tensors, broadcastable to each input: (1, T_m, 1, ..., 1) by default.

    Examples::

        >>> masks = default_feature_mask((text_ids, pixels), overrides={1: patch_grid_mask(
        ...     224, 224, 16)})  # text tokens 0..T-1, then 196 patches T..T+195
    """
    inputs = tuple(inputs) if not isinstance(inputs, Tensor) else (inputs,)
    overrides = dict(overrides or {})
    for m in overrides:
        if not isinstance(m, int) or not 0 <= m < len(inputs):
            raise ValueError(
                f"overrides has key {m!r}; keys are input indices 0..{len(inputs) - 1}.")
    masks = []
    offset = 0
    for m, inp in enumerate(inputs):
        if m in overrides:
            mask = overrides[m]
            if not isinstance(mask, Tensor) or mask.dtype.is_floating_point or mask.dtype in (
                    torch.bool, torch.complex64, torch.complex128):
                raise TypeError(f"overrides[{m}] must be an integer id tensor, got {mask!r}.")
            mask = mask.to(device=inp.device, dtype=torch.long)
            masks.append(torch.where(mask >= 0, mask + offset, mask))
            offset += int(mask.max()) + 1 if bool((mask >= 0).any()) else 0
            continue
        if inp.dim() < 2:
            raise ValueError(
                f"inputs[{m}] has shape {tuple(inp.shape)}: the default players are the positions "
                "along dim 1, so each input needs shape (B, T, ...). Pass `feature_mask` "
                "(see captum_interactions.patch_grid_mask / group_mask) for other inputs."
            )
        if inp.dim() >= 4:
            raise ValueError(
                f"inputs[{m}] has shape {tuple(inp.shape)}, an image-like input: by default each "
                "position along dim 1 (each colour channel) would be a player. Give it players, "
                f"e.g. feature_mask=default_feature_mask(inputs, overrides={{{m}: "
                f"patch_grid_mask({inp.shape[-2]}, {inp.shape[-1]}, patch_size)}}) "
                "(patch_size may be a model config with a patch_size)."
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
        masks = tuple(feature_mask) if isinstance(feature_mask, tuple | list) else (
            feature_mask,)
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
            if mask.numel() and int(mask.min()) < -1:
                raise ValueError(
                    f"feature_mask[{m}] holds negative ids such as {int(mask.min())}; ids must "
                    "be >= 0, or -1 for positions that are not players (kept as in the input)."
                )
            # Left-pad to the input's rank so that dim 0 is always the batch dim.
            mask = mask.reshape((1,) * (inp.dim() - mask.dim()) + tuple(mask.shape))
            checked.append(mask.to(device=inp.device, dtype=torch.long))
        masks = tuple(checked)

    n_players = max(int(mask.max()) + 1 for mask in masks if mask.numel()) if masks else 0
    if n_players < 2:
        raise ValueError(f"Interactions need at least 2 players; the inputs define {n_players}.")
    fixed = any(bool((mask < 0).any()) for mask in masks)
    if fixed:  # -1 (not a player) becomes the virtual id F, present in every coalition
        masks = tuple(torch.where(mask < 0, torch.full_like(mask, n_players), mask)
                      for mask in masks)
    modality = torch.full((n_players,), -2, dtype=torch.long)
    for m, mask in enumerate(masks):
        ids = torch.unique(mask).cpu()
        ids = ids[ids < n_players]
        seen = modality[ids]
        modality[ids] = torch.where(seen == -2, torch.full_like(seen, m), torch.full_like(seen, -1))
        modality[ids[(seen >= 0) & (seen != m)]] = -1
    return Players(masks=masks, n_players=n_players, modality=modality, fixed=fixed)


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


def _patch_size_of(patch_size: Any) -> Any:
    """The patch size itself, or the one of a model config (``config.patch_size``, or
    ``config.vision_config.patch_size`` for vision-language models)."""
    for holder in (patch_size, getattr(patch_size, "vision_config", None)):
        value = getattr(holder, "patch_size", None)
        if value is not None:
            return tuple(value) if isinstance(value, list | tuple) else value
    return patch_size


def patch_grid_mask(
    height: int, width: int, patch_size: int | tuple[int, int] | Any, *, offset: int = 0
) -> Tensor:
    """A feature mask for images (B, C, H, W): one player per square patch, row-major.

    Args:
        height, width: image size in pixels; both must be divisible by the patch size.
        patch_size: patch side, (patch height, patch width), or a model config that has a
            ``patch_size`` (ViT) or a ``vision_config`` with one (CLIP, SigLIP): the players
            are then the model's own patches.
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
    patch_size = _patch_size_of(patch_size)
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
