"""Shared pieces of the benchmark suite: timing, a counting model wrapper, random fusion
models, shapiq games, error measures."""

from __future__ import annotations

import functools
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_interactions.testing import TinyFusionTransformer

SHAPIQ_NAMES = (
    "PermutationSamplingSII",
    "SHAPIQ",
    "SVARMIQ",
    "KernelSHAPIQ",
    "InconsistentKernelSHAPIQ",
)
#: shapiq's sparse (Fourier / Möbius) approximators: they return only the interactions they
#: detect; a pair missing from their output is read as 0. ProxySPEX needs ``lightgbm``.
SPARSE_NAMES = ("SPEX", "ProxySPEX")
#: The approximators of the 64-1024 player benchmark (the sparse ones first).
LARGE_SHAPIQ_NAMES = (*SPARSE_NAMES, "KernelSHAPIQ", "InconsistentKernelSHAPIQ",
                      "PermutationSamplingSII", "SHAPIQ", "SVARMIQ")


# Cap on budget x n(n+1)/2 (interactions up to order 2) per shapiq approximator, so that one run
# stays near a minute on a CPU. Timings on this suite's CPU, one thread: at 64 players and 1024
# rows SVARMIQ took ~170 s (a Python update of every interaction per coalition),
# PermutationSamplingSII 4 s, SHAPIQ 1 s, KernelSHAPIQ 1.2 s; at 128 players KernelSHAPIQ 17 s and
# InconsistentKernelSHAPIQ 31 s (their least-squares solves grow faster than the product).
MAX_WORK = {"SVARMIQ": 1.2e6, "SHAPIQ": 3.5e7, "PermutationSamplingSII": 5e7,
            "KernelSHAPIQ": 9e6, "InconsistentKernelSHAPIQ": 9e6}
# The sparse approximators build no n(n+1)/2 design; their costs, on the same CPU (one thread,
# shared with another job), planted polynomial games:
# * ProxySPEX (a 5-fold grid search over 8 LightGBM settings on the budget's coalitions, then a
#   ridge refit) grows with budget x players, sublinearly: 64 players 25 s at 2048 rows and 53 s
#   at 8192, 256 players 49 s at 2048 -> cap 8.4e6 = 256 x 32768 (about 4 min). At 1024 players
#   shapiq's coalition sampler overflows (binomial weights) and raises at once.
# * SPEX (BCH-coded Fourier subsampling, soft chase decoding in galois) grows with the rows, and
#   hardly with the players: at 2048 rows 64 players ~110 s, 256 players 21 s (1104 rows used),
#   1024 players 93-109 s (1344 rows used); 64 and 256 players at 8192 rows did not finish within
#   3 min -> budget cap 2048. The first decode of each code length also compiles galois' numba
#   kernels (25-60 s), done untimed by :func:`warm_up_shapiq`.
MAX_PLAYER_ROWS = {"ProxySPEX": 8.4e6}
MAX_BUDGET = {"SPEX": 2048}
#: ``BENCH_CAP_SCALE=4`` multiplies every cap by 4 (an idle machine, a longer run).
CAP_SCALE_ENV = "BENCH_CAP_SCALE"


def shapiq_skip_reason(name: str, n_players: int, budget: int, *, scale: float = 1.0) -> str:
    """Why shapiq's ``name`` is not run at this size ('' when it is); ``scale`` shrinks the
    caps (smoke runs); the environment's ``BENCH_CAP_SCALE`` multiplies them."""
    scale *= float(os.environ.get(CAP_SCALE_ENV, "1"))
    work = budget * n_players * (n_players + 1) / 2
    cap = MAX_WORK.get(name, float("inf")) * scale
    if work > cap:
        return f"skipped: budget x interactions = {work:.2g} > {cap:.2g} (minutes per run)"
    work = budget * n_players
    cap = MAX_PLAYER_ROWS.get(name, float("inf")) * scale
    if work > cap:
        return f"skipped: budget x players = {work:.2g} > {cap:.2g} (minutes per run)"
    cap = MAX_BUDGET.get(name, float("inf")) * scale
    if budget > cap:
        return f"skipped: budget {budget} > {cap:.0f} (minutes per run)"
    return ""


@functools.cache
def warm_up_shapiq(name: str, n_players: int) -> float:
    """One-off work of ``name``'s first run at this many players, done outside the timed call
    (seconds it took): SPEX compiles galois' numba kernels for the BCH code of its length on the
    first decode (25-60 s per code length on this suite's CPU)."""
    start = time.perf_counter()
    if name == "SPEX":
        from sparse_transform.qsft.codes.BCH import BCH

        code = BCH(n_players, 5)  # SPEX's default degree parameter t = 5
        parity = np.random.default_rng(0).standard_normal(code.n - code.k)
        code.parity_decode_2chase_t2_max_likelihood(list(parity))
    elif name == "ProxySPEX":
        import lightgbm  # noqa: F401
    return time.perf_counter() - start


def shapiq_class(name: str) -> Any:
    """shapiq's approximator class ``name`` (shapiq is in the ``bench`` extra)."""
    import shapiq.approximator

    return getattr(shapiq.approximator, name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(steps: dict[str, Callable[[], Any]], *, rounds: int, warmup: int,
                      device: torch.device) -> dict[str, list[float]]:
    """Wall time of each step, ``rounds`` times, interleaved (a, b, a, b, ...) so that a change
    of machine load during the run affects every side alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def timed_comparison(steps: dict[str, Callable[[], Any]], device: torch.device, quick: bool,
                     seconds: float, *, min_rounds: int = 3, max_rounds: int = 30,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Interleaved times of the steps, with as many rounds as fit in about ``seconds``
    (``min_rounds`` to ``max_rounds``) so that slow configurations finish in a bounded time
    and fast ones get enough rounds for a stable median. Quick mode only checks that the
    comparison runs: one round, no warm-up."""
    if quick:
        return interleaved_times(steps, rounds=1, warmup=0, device=device)
    sync(device)
    start = time.perf_counter()
    for step in steps.values():  # the first call of each is also a warm-up
        step()
    sync(device)
    per_round = time.perf_counter() - start
    rounds = min(max_rounds, max(min_rounds, int(seconds / max(per_round, 1e-6))))
    return interleaved_times(steps, rounds=rounds, warmup=warmup, device=device)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


class CountingModel(nn.Module):
    """Wraps a model: counts the rows it evaluates, the largest forward batch, and the time
    spent inside it (to check that compared sides run the same rows, and to split an
    attribution call into forwards and everything else)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.rows = 0
        self.max_batch = 0
        self.seconds = 0.0

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        self.rows += args[0].shape[0]
        self.max_batch = max(self.max_batch, args[0].shape[0])
        sync(self.device)
        start = time.perf_counter()
        out = self.model(*args, **kwargs)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        return out


def random_fusion(n_text: int, n_image: int, hidden: int, device: torch.device, *,
                  n_layers: int = 1, n_heads: int | None = None,
                  examples: int = 1) -> tuple[CountingModel, tuple[Tensor, Tensor]]:
    """A float32 TinyFusionTransformer with random weights (cost and memory do not depend on
    them), wrapped in :class:`CountingModel`, and ``examples`` random text and image inputs."""
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=hidden, n_layers=n_layers,
                                  n_heads=n_heads or max(1, hidden // 64),
                                  max_len=n_text + n_image).to(device).eval()
    gen = torch.Generator().manual_seed(1)
    inputs = (torch.randn(examples, n_text, hidden, generator=gen).to(device),
              torch.randn(examples, n_image, hidden, generator=gen).to(device))
    return CountingModel(model, device), inputs


def token_mask(inputs: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """One player per token, ids consecutive across inputs (this project's default), as
    Captum feature masks broadcastable to the inputs: (1, T, 1) and (1, P, 1)."""
    n_text, n_image = inputs[0].shape[1], inputs[1].shape[1]
    device = inputs[0].device
    return (torch.arange(n_text, device=device).view(1, n_text, 1),
            torch.arange(n_text, n_text + n_image, device=device).view(1, n_image, 1))


def run_shapiq(name: str, game: Callable[[np.ndarray], np.ndarray], n_players: int,
               budget: int, seed: int, pairs: Tensor) -> Tensor:
    """shapiq's SII estimate of ``pairs`` ((P, 2) long) as a (n, n) symmetric float64 matrix.

    The sparse approximators (SPEX, ProxySPEX) list only the interactions they detect (keys of
    numpy ints): a requested pair missing from ``interaction_lookup`` is 0."""
    approximator = shapiq_class(name)(n=n_players, max_order=2, index="SII", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = approximator.approximate(budget=budget, game=game)
    raw = np.asarray(values.values, dtype=np.float64)
    found = [(int(key[0]), int(key[1]), position)
             for key, position in values.interaction_lookup.items() if len(key) == 2]
    full = torch.zeros(n_players, n_players, dtype=torch.float64)
    if found:
        i, j, position = (list(column) for column in zip(*found, strict=True))
        v = torch.as_tensor(raw[position], dtype=torch.float64)
        full[i, j] = v
        full[j, i] = v
    estimate = torch.zeros(n_players, n_players, dtype=torch.float64)
    v = full[pairs[:, 0], pairs[:, 1]]
    estimate[pairs[:, 0], pairs[:, 1]] = v
    estimate[pairs[:, 1], pairs[:, 0]] = v
    return estimate


class TimedGame:
    """Wraps shapiq's game callable: the rows it evaluated and the seconds spent inside it (our
    perturbation engine and the model), to split a shapiq call into its own work and the
    game's."""

    def __init__(self, game: Callable[[np.ndarray], np.ndarray]) -> None:
        self.game = game
        self.rows = 0
        self.seconds = 0.0

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.game(coalitions)
        self.seconds += time.perf_counter() - start
        self.rows += len(coalitions)
        return out


def upper_pairs(mask: Tensor) -> Tensor:
    """(P, 2) pairs i < j of a symmetric (n, n) bool pair mask."""
    return torch.nonzero(torch.triu(mask, 1))


def relative_l2(estimate: Tensor, exact: Tensor, pairs: Tensor) -> float:
    e = estimate[..., pairs[:, 0], pairs[:, 1]].double().cpu()
    x = exact[..., pairs[:, 0], pairs[:, 1]].double().cpu()
    return float((e - x).norm() / x.norm())


def top_k_recovery(estimate: Tensor, exact: Tensor, pairs: Tensor, k: int = 5) -> float:
    """Share of the exact top-k pairs (largest SII: strongest synergy) among the estimate's
    top-k."""
    e = estimate[pairs[:, 0], pairs[:, 1]].double().cpu()
    x = exact[pairs[:, 0], pairs[:, 1]].double().cpu()
    top_e = set(torch.topk(e, k).indices.tolist())
    top_x = set(torch.topk(x, k).indices.tolist())
    return len(top_e & top_x) / k
