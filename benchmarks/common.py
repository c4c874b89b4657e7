"""Shared pieces of the benchmark suite: timing, a counting model wrapper, random fusion
models, shapiq games, error measures."""

from __future__ import annotations

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


# Cap on budget x n(n+1)/2 (interactions up to order 2) per shapiq approximator, so that one run
# stays near a minute on a CPU. Timings on this suite's CPU, one thread: at 64 players and 1024
# rows SVARMIQ took ~170 s (a Python update of every interaction per coalition),
# PermutationSamplingSII 4 s, SHAPIQ 1 s, KernelSHAPIQ 1.2 s; at 128 players KernelSHAPIQ 17 s and
# InconsistentKernelSHAPIQ 31 s (their least-squares solves grow faster than the product).
MAX_WORK = {"SVARMIQ": 1.2e6, "SHAPIQ": 3.5e7, "PermutationSamplingSII": 5e7,
            "KernelSHAPIQ": 9e6, "InconsistentKernelSHAPIQ": 9e6}


def shapiq_skip_reason(name: str, n_players: int, budget: int, *, scale: float = 1.0) -> str:
    """Why shapiq's ``name`` is not run at this size ('' when it is); ``scale`` shrinks the
    caps (smoke runs)."""
    work = budget * n_players * (n_players + 1) / 2
    cap = MAX_WORK.get(name, float("inf")) * scale
    if work > cap:
        return f"skipped: budget x interactions = {work:.2g} > {cap:.2g} (minutes per run)"
    return ""


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
    """shapiq's SII estimate of ``pairs`` ((P, 2) long) as a (n, n) symmetric float64 matrix."""
    approximator = shapiq_class(name)(n=n_players, max_order=2, index="SII", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = approximator.approximate(budget=budget, game=game)
    estimate = torch.zeros(n_players, n_players, dtype=torch.float64)
    lookup = values.interaction_lookup
    raw = np.asarray(values.values, dtype=np.float64)
    flat = [raw[lookup[(i, j)]] if (i, j) in lookup else 0.0 for i, j in pairs.tolist()]
    v = torch.tensor(flat, dtype=torch.float64)
    estimate[pairs[:, 0], pairs[:, 1]] = v
    estimate[pairs[:, 1], pairs[:, 0]] = v
    return estimate


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
