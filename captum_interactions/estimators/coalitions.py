"""Coalition designs: deterministic row streams of boolean coalition masks on a device.

A design is an ordered list of rows; ``rows(start, stop)`` rebuilds any slice on demand, so
estimators can make a second pass without storing the masks, and the rows never depend on how
the caller chunks them (results are the same for any ``perturbations_per_eval``).
Random rows are drawn in fixed blocks, each from a generator seeded by (seed, block index).
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_interactions.estimators.size_plan import SizePlan

BLOCK_ROWS = 512


def block_generator(seed: int, block: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + block * 7_919 + 104_729) % (2**63 - 1))
    return gen


def random_subsets(sizes: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Uniform random subsets of {0..n-1} with the given sizes: (rows,) -> (rows, n) bool."""
    keys = torch.rand(sizes.shape[0], n, generator=generator, device=sizes.device)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return ranks < sizes.unsqueeze(1)


def subsets_of_size(n: int, size: int, device: torch.device) -> Tensor:
    """All C(n, size) subsets of size ``size``: (C(n, size), n) bool."""
    small = min(size, n - size)
    if small == 0:
        rows = torch.zeros(1, n, dtype=torch.bool, device=device)
    else:
        combos = torch.combinations(torch.arange(n, device=device), r=small)
        if combos.dim() == 1:
            combos = combos.unsqueeze(1)
        rows = torch.zeros(combos.shape[0], n, dtype=torch.bool, device=device)
        rows.scatter_(1, combos, True)
    return rows if small == size else ~rows


def all_subsets(n: int, start: int, stop: int, device: torch.device) -> Tensor:
    """Rows start..stop-1 of the 2^n coalitions, coalition index = bitmask: (rows, n) bool."""
    codes = torch.arange(start, stop, device=device, dtype=torch.long)
    bits = torch.arange(n, device=device, dtype=torch.long)
    return ((codes.unsqueeze(1) >> bits) & 1).bool()


class StratifiedDesign:
    """The rows of a :class:`~.size_plan.SizePlan`: its enumerated sizes first, then its
    sampled units grouped by replicate, then by size.

    A unit is one random coalition of its size, or with ``plan.paired`` the coalition followed
    by its complement (two consecutive rows).

    Args:
        plan: the sizes and unit counts.
        replicate_counts: (R, S) units of each sampled size in each replicate (summing over R
            gives ``plan.counts``).
        seed: seed of the random rows.
        device: where masks are built.
    """

    def __init__(
        self, plan: SizePlan, replicate_counts: Tensor, seed: int, device: torch.device
    ) -> None:
        n = plan.n_players
        self.n = n
        self.device = device
        self.seed = seed
        self.rows_per_unit = plan.rows_per_unit
        self._enumerated = {t: subsets_of_size(n, t, device) for t in plan.enumerated}
        n_rep = replicate_counts.shape[0]
        flat_counts = replicate_counts.reshape(-1)
        sizes = plan.sampled.repeat(n_rep)
        reps = torch.arange(n_rep).repeat_interleave(plan.sampled.shape[0])
        self.unit_size = torch.repeat_interleave(sizes, flat_counts).to(device)
        self.unit_replicate = torch.repeat_interleave(reps, flat_counts).to(device)
        self.n_units = int(flat_counts.sum())

    def enumerated_rows(self) -> Tensor:
        return torch.cat(list(self._enumerated.values()), dim=0)

    def units(self, start: int, stop: int) -> Tensor:
        """The first coalition of units start..stop-1: (units, n) bool."""
        first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS
        blocks = []
        for block in range(first, last + 1):
            lo = block * BLOCK_ROWS
            hi = min(lo + BLOCK_ROWS, self.n_units)
            gen = block_generator(self.seed, block, self.device)
            blocks.append(random_subsets(self.unit_size[lo:hi], self.n, gen))
        rows = torch.cat(blocks, dim=0)
        offset = first * BLOCK_ROWS
        return rows[start - offset : stop - offset]

    def coalitions(self, start: int, stop: int) -> Tensor:
        """Every row of units start..stop-1, a unit's rows together:
        (units * rows_per_unit, n) bool."""
        first = self.units(start, stop)
        if self.rows_per_unit == 1:
            return first
        return torch.stack([first, ~first], dim=1).flatten(0, 1)
