"""Brute-force oracles written straight from the definitions (docs/design.md §3), independent of
the library's kernels. Only for a handful of players."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

Value = Callable[[frozenset[int]], float]


def value_of_model(model: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...],
                   example: int, target: int | None = None) -> Value:
    """v(S) for one example under zero-baseline removal with one player per position."""
    sizes = [x.shape[1] for x in inputs]
    offsets = [sum(sizes[:m]) for m in range(len(sizes))]

    def value(coalition: frozenset[int]) -> float:
        parts = []
        for x, off in zip(inputs, offsets, strict=True):
            keep = torch.tensor([off + t in coalition for t in range(x.shape[1])])
            shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
            parts.append(x[example : example + 1] * keep.view(shape).to(x.dtype))
        with torch.no_grad():
            out = model(*parts)
        return float(out.reshape(-1)[0] if target is None else out[0, target])

    return value


def brute_sii(value: Value, n: int, i: int, j: int) -> float:
    rest = [k for k in range(n) if k not in (i, j)]
    total = 0.0
    for size in range(len(rest) + 1):
        weight = math.factorial(size) * math.factorial(n - size - 2) / math.factorial(n - 1)
        for subset in itertools.combinations(rest, size):
            s = frozenset(subset)
            total += weight * (value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s))
    return total


def brute_rg(value: Value, n: int, i: int, j: int, context: str = "sampled") -> float:
    rest = [k for k in range(n) if k not in (i, j)]

    def term(s: frozenset[int]) -> float:
        d_i = value(s | {i}) - value(s)
        d_j = value(s | {j}) - value(s)
        d_ij = value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s)
        return min(max(-d_ij, 0.0), max(0.0, min(d_i, d_j)))

    if context == "full":
        return term(frozenset(rest))
    total = 0.0
    for size in range(len(rest) + 1):
        weight = math.factorial(size) * math.factorial(n - size - 2) / math.factorial(n - 1)
        for subset in itertools.combinations(rest, size):
            total += weight * term(frozenset(subset))
    return total
