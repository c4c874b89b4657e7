"""Analytic games written as PyTorch models, so they run through the real attribution path.

A game over n players takes inputs shaped (B, n, 1) (one position per player; the default
feature mask) and treats a position as present when it differs from the baseline 0. Games
count their calls and rows, like shapiq's test games.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class PolynomialGame(nn.Module):
    """v(S) = Σ_T m(T) Π_{k∈T} [k ∈ S]: a game given by its Möbius coefficients.

    Args:
        n_players: n.
        terms: mapping from a tuple of player ids to its Möbius coefficient m(T).

    Its exact SII is Σ_{T ⊇ {i,j}} m(T) / (|T| - 1) (:meth:`sii`).
    """

    index: Tensor
    valid: Tensor
    coef: Tensor

    def __init__(self, n_players: int, terms: dict[tuple[int, ...], float]) -> None:
        super().__init__()
        self.n_players = n_players
        self.terms = {tuple(sorted(k)): float(v) for k, v in terms.items()}
        order = max((len(k) for k in self.terms), default=1)
        index = torch.zeros(len(self.terms), order, dtype=torch.long)
        valid = torch.zeros(len(self.terms), order, dtype=torch.bool)
        for row, key in enumerate(self.terms):
            index[row, : len(key)] = torch.tensor(key, dtype=torch.long)
            valid[row, : len(key)] = True
        self.register_buffer("index", index)
        self.register_buffer("valid", valid)
        self.register_buffer(
            "coef", torch.tensor(list(self.terms.values()), dtype=torch.float64)
        )
        self.n_calls = 0
        self.n_rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.n_calls += 1
        self.n_rows += x.shape[0]
        present = x.reshape(x.shape[0], self.n_players, -1)[..., 0] != 0
        hit = present[:, self.index] | ~self.valid  # (B, terms, order)
        return hit.all(2).to(torch.float64) @ self.coef

    def sii(self) -> Tensor:
        """Exact SII (n, n) from the Möbius coefficients."""
        rows: list[int] = []
        cols: list[int] = []
        weights: list[float] = []
        for key, value in self.terms.items():  # O(terms · order²), not O(n²) Python work
            for i, j in itertools.combinations(key, 2):
                rows += [i, j]
                cols += [j, i]
                weights += [value / (len(key) - 1)] * 2
        out = torch.zeros(self.n_players, self.n_players, dtype=torch.float64)
        out.index_put_((torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)),
                       torch.tensor(weights, dtype=torch.float64), accumulate=True)
        return out


def random_polynomial_game(
    n_players: int,
    *,
    n_pairs: int = 15,
    n_triples: int = 6,
    main_scale: float = 2.0,
    seed: int = 0,
    n_main: int | None = None,
) -> PolynomialGame:
    """Main effects, plus random pairwise and three-way Möbius terms.

    Args:
        n_main: how many players have a main effect (chosen at random); None (default): every
            player, with the same draws as before this option existed.
    """
    gen = torch.Generator().manual_seed(seed)
    terms: dict[tuple[int, ...], float] = {}
    if n_main is None:
        main_players: list[int] = list(range(n_players))
    else:
        if not 0 <= n_main <= n_players:
            raise ValueError(f"n_main must be in [0, {n_players}], got {n_main}.")
        main_players = sorted(torch.randperm(n_players, generator=gen)[:n_main].tolist())
    for i in main_players:
        terms[(i,)] = main_scale * float(torch.randn((), generator=gen))
    for order, count in ((2, n_pairs), (3, n_triples)):
        for _ in range(count):
            key = tuple(sorted(torch.randperm(n_players, generator=gen)[:order].tolist()))
            terms[key] = terms.get(key, 0.0) + float(torch.randn((), generator=gen))
    return PolynomialGame(n_players, terms)


class TableGame(nn.Module):
    """A game given by its full value table over 2^n coalitions (bitmask order).

    Args:
        values: sequence of 2^n values; ``values[code]`` is v of the coalition whose bit k is
            set when player k is present.
    """

    table: Tensor
    powers: Tensor

    def __init__(self, values: Sequence[float]) -> None:
        super().__init__()
        table = torch.as_tensor(values, dtype=torch.float64)
        n = round(torch.log2(torch.tensor(float(table.numel()))).item())
        if 2**n != table.numel():
            raise ValueError(f"values must have 2^n entries, got {table.numel()}.")
        self.n_players = n
        self.register_buffer("table", table)
        self.register_buffer("powers", 2 ** torch.arange(n))

    def forward(self, x: Tensor) -> Tensor:
        present = x.reshape(x.shape[0], self.n_players, -1)[..., 0] != 0
        return self.table[(present.long() * self.powers).sum(1)]
