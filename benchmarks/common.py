"""Shared pieces of the benchmark suite: timing, shapiq games, error measures."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_interactions.perturbation.engine import CoalitionEvaluator
from captum_interactions.perturbation.target import TargetSelector
from captum_interactions.players import resolve_players
from captum_interactions.removal import make_removal

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


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def coalition_game(model: Callable[..., Tensor], inputs: tuple[Tensor, ...], *,
                   target: Any = None, feature_mask: Any = None,
                   additional_forward_args: Any = None, removal: str = "baseline",
                   chunk: int = 1024) -> tuple[Callable[[np.ndarray], np.ndarray],
                                               CoalitionEvaluator]:
    """v(coalitions) of ONE example as the numpy callable shapiq expects, evaluated by this
    project's perturbation engine with the same removal, target and chunk size as ours."""
    players = resolve_players(inputs, feature_mask)
    operator = make_removal(removal, None)
    operator.prepare(inputs, players)
    evaluator = CoalitionEvaluator(model, inputs, players, operator,
                                   TargetSelector(target, inputs[0].shape[0]),
                                   additional_forward_args, chunk)
    device = inputs[0].device

    def value(coalitions: np.ndarray) -> np.ndarray:
        present = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=device)
        values = evaluator.evaluate(present.reshape(-1, 1, players.n_players))
        return values.reshape(-1).cpu().numpy()

    return value, evaluator


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
