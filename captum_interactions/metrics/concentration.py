"""Concentration of attribution vectors and interaction matrices: entropy, Gini, top-k% mass."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_interactions.metrics._ranking import round_count
from captum_interactions.validation import check_finite


@dataclass(frozen=True)
class ConcentrationResult:
    """How concentrated each example's absolute attribution mass is.

    Attributes:
        entropy: (B,) normalised entropy H(p) / log(n) of p = |x| / sum |x| over the n
            entries: 0 when one entry holds all the mass, 1 when the mass is uniform
            (0 by convention when n = 1).
        gini: (B,) Gini coefficient of |x|: 0 for uniform mass, (n - 1) / n when one entry
            holds all of it.
        top_mass: (B,) share of the mass in the top ``round_half_up(top_fraction * n)``
            entries (at least 1): k / n for uniform mass, 1 for a single entry.
        n: (B,) long: the number of entries n of each example.
        top_fraction: the fraction used for ``top_mass``.

    Rows whose entries are all zero have no distribution: their three values are NaN.
    """

    entropy: Tensor
    gini: Tensor
    top_mass: Tensor
    n: Tensor
    top_fraction: float


def concentration(
    values: Tensor, mask: Tensor | None = None, *, top_fraction: float = 0.1
) -> ConcentrationResult:
    r"""Normalised entropy, Gini coefficient and top-k% mass of absolute attributions.

    Args:
        values (Tensor): (B, F) per-player attributions (see :func:`player_attributions`
            to reduce Captum outputs) or (B, F, F) interaction matrices (SII, RG). A matrix
            contributes each pair once (its upper triangle, i < j).
        mask (Tensor, optional): bool, which entries count: (F,) or (B, F) for vectors,
            (F, F) or (B, F, F) for matrices, e.g. :func:`requested_pair_mask` for
            ``pairs="cross"`` outputs (whose other entries are zero and would otherwise count
            as pairs with no mass). Default: every entry (every pair i < j).
        top_fraction (float, optional): the fraction of entries for ``top_mass``, in (0, 1].
            Default: 0.1.

    Returns:
        *ConcentrationResult* with ``entropy``, ``gini``, ``top_mass`` (B,) float64 and
        ``n`` (B,).

    Examples::

        >>> sii = ShapleyInteractionIndex(model).attribute((text, image), target=1)
        >>> res = concentration(sii, requested_pair_mask((text, image)), top_fraction=0.05)
        >>> res.entropy.shape  # one value per example
        torch.Size([16])
    """
    flat, valid = _flatten(values, mask)
    if isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)):
        raise TypeError(f"top_fraction must be a float, got {type(top_fraction).__name__}.")
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}.")
    n = valid.sum(1)
    mass = torch.where(valid, flat.abs(), torch.zeros_like(flat))  # (B, N)
    total = mass.sum(1)

    p = mass / total[:, None]
    plogp = torch.where(p > 0, p * p.log(), torch.zeros_like(p))
    log_n = n.to(torch.float64).log()
    entropy = torch.where(
        n > 1, -plogp.sum(1) / log_n.clamp(min=math.log(2)), torch.zeros_like(total)
    )

    # Masked entries sort first (ascending, as -1), so valid entry i has 1-based rank
    # position - n_masked + 1 among the n valid ones.
    ascending = torch.where(valid, mass, torch.full_like(mass, -1.0)).sort(dim=1).values
    position = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=torch.float64)
    rank = position[None, :] - (flat.shape[1] - n)[:, None]
    weight = 2 * rank - n[:, None] - 1
    gini = (weight * ascending.clamp(min=0)).sum(1) / (n * total)

    k = round_count(torch.tensor(float(top_fraction), dtype=torch.float64), n)
    descending = ascending.flip(1).clamp(min=0).cumsum(1)
    top_mass = descending.gather(1, (k - 1).clamp(min=0)[:, None]).squeeze(1) / total

    undefined = total == 0
    nan = torch.full_like(total, torch.nan)
    return ConcentrationResult(
        entropy=torch.where(undefined, nan, entropy),
        gini=torch.where(undefined, nan, gini),
        top_mass=torch.where(undefined, nan, top_mass),
        n=n,
        top_fraction=float(top_fraction),
    )


def _flatten(values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(B, N) float64 entries and (B, N) bool validity, after the checks."""
    if not isinstance(values, Tensor):
        raise TypeError(f"values must be a torch.Tensor, got {type(values).__name__}.")
    if values.dtype == torch.bool or values.dtype.is_complex:
        raise TypeError(f"values must be real-valued, got dtype {values.dtype}.")
    if values.dim() not in (2, 3) or (values.dim() == 3 and values.shape[1] != values.shape[2]):
        raise ValueError(
            f"values has shape {tuple(values.shape)}; expected (B, F) attributions or (B, F, F) "
            "interaction matrices."
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"values has shape {tuple(values.shape)}: nothing to measure.")
    values = values.detach().to(torch.float64)
    batch, entry_shape = values.shape[0], tuple(values.shape[1:])
    valid = torch.ones((batch, *entry_shape), dtype=torch.bool, device=values.device)
    if values.dim() == 3:
        valid = valid & torch.ones(entry_shape, dtype=torch.bool, device=values.device).triu(1)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a bool tensor.")
        if tuple(mask.shape) not in (entry_shape, (batch, *entry_shape)):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}; expected {entry_shape} or "
                f"{(batch, *entry_shape)} to match values of shape {tuple(values.shape)}."
            )
        valid = valid & mask.to(values.device)
    check_finite("values", torch.where(valid, values, torch.zeros_like(values)))
    valid = valid.reshape(batch, -1)
    empty = torch.nonzero(valid.sum(1) == 0).flatten().tolist()
    if empty:
        raise ValueError(f"mask selects no entry for example(s) {empty[:10]}.")
    return values.reshape(batch, -1), valid
