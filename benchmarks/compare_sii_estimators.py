"""Error of SII estimators against exact SII at equal budgets (docs/estimators.md).

Compares this project's stratified estimator with each control variate against shapiq's SII
approximators, on (a) a polynomial game with pairwise and three-way Möbius terms and (b) a tiny
trained fusion Transformer with 16 players (exact SII by enumeration of 2^16 coalitions).
Error = relative L2 over the evaluated pairs (all pairs for the game, cross-modal pairs for the
model), averaged over seeds (and examples).

    python benchmarks/compare_sii_estimators.py [--quick] [--out docs/estimators_table.md]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.players import resolve_players
from captum_interactions.removal import BaselineRemoval
from captum_interactions.testing import random_polynomial_game, train_tiny_fusion

OURS = {  # label: (control_variate, paired)
    "ours: paired + tied quadratic CV (default, F<=32)": ("quadratic", True),
    "ours: quadratic CV": ("quadratic", False),
    "ours: paired + linear CV": ("linear", True),
    "ours: linear CV (default, F>32)": ("linear", False),
    "ours: no CV (stratified HT, SHAP-IQ-like)": ("none", False),
}


def shapiq_approximators() -> dict[str, Callable[..., object]]:
    try:
        from shapiq.approximator import (
            SHAPIQ,
            SVARMIQ,
            InconsistentKernelSHAPIQ,
            KernelSHAPIQ,
            PermutationSamplingSII,
        )
    except ImportError:  # shapiq is an optional (bench) extra
        return {}
    return {
        "shapiq KernelSHAPIQ": KernelSHAPIQ,
        "shapiq InconsistentKernelSHAPIQ": InconsistentKernelSHAPIQ,
        "shapiq SVARMIQ": SVARMIQ,
        "shapiq SHAPIQ": SHAPIQ,
        "shapiq PermutationSamplingSII": PermutationSamplingSII,
    }


def coalition_game(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], target: int | None):
    """v(coalitions) for one example, as the numpy callable shapiq expects."""
    players = resolve_players(inputs, None)
    removal = BaselineRemoval(None)
    removal.prepare(inputs, players)

    def value(coalitions: np.ndarray) -> np.ndarray:
        present = torch.as_tensor(np.asarray(coalitions, dtype=bool)).reshape(-1, 1,
                                                                             players.n_players)
        batch, _ = removal.perturb(inputs, players, present)
        with torch.no_grad():
            out = model(*batch)
        out = out if target is None else out[:, target]
        return out.double().reshape(-1).numpy()

    return value


def relative_error(estimate: torch.Tensor, exact: torch.Tensor, mask: torch.Tensor) -> float:
    diff = (estimate - exact)[mask]
    return float(diff.norm() / exact[mask].norm())


def run_case(name, model, inputs, target, pairs, mask, budgets, seeds, rows, approximators):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    sii = ShapleyInteractionIndex(model)
    exact = sii.attribute(inputs, target=target, pairs=pairs, method="exact",
                          perturbations_per_eval=4096).double()
    n = exact.shape[-1]
    errors: dict[tuple[str, int], list[float]] = defaultdict(list)
    for budget in budgets:
        for seed in seeds:
            for label, (cv, paired) in OURS.items():
                est = sii.attribute(inputs, target=target, pairs=pairs, n_samples=budget,
                                    seed=seed, control_variate=cv, paired=paired,
                                    perturbations_per_eval=1024)
                for b in range(exact.shape[0]):
                    errors[label, budget].append(relative_error(est[b].double(), exact[b], mask))
            for label, cls in approximators.items():
                for b in range(exact.shape[0]):
                    example = tuple(x[b : b + 1] for x in inputs)
                    game = coalition_game(model, example, target)
                    approx = cls(n=n, max_order=2, index="SII", random_state=seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        values = approx.approximate(budget=budget, game=game)
                    est = torch.zeros(n, n, dtype=torch.float64)
                    for i, j in torch.nonzero(torch.triu(mask, 1)).tolist():
                        est[i, j] = est[j, i] = float(values[(i, j)])
                    errors[label, budget].append(relative_error(est, exact[b], mask))
    for label in list(OURS) + list(approximators):
        rows.append((name, label, [float(np.mean(errors[label, b])) for b in budgets]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer budgets and seeds")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args()
    budgets = [256, 1024, 4096] if args.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    seeds = range(2 if args.quick else 5)
    approximators = shapiq_approximators()
    rows: list[tuple[str, str, list[float]]] = []
    start = time.time()

    game = random_polynomial_game(16, n_pairs=20, n_triples=10, seed=0)
    run_case("(a) polynomial game, n=16", game, torch.ones(1, 16, 1, dtype=torch.float64),
             None, "all", ~torch.eye(16, dtype=torch.bool), budgets, seeds, rows, approximators)

    model, text, image = train_tiny_fusion(seed=0)
    model = model.double()
    inputs = (text[:2].double(), image[:2].double())
    cross = torch.zeros(16, 16, dtype=torch.bool)
    cross[:8, 8:] = cross[8:, :8] = True
    run_case("(b) trained fusion Transformer, 8+8 players", model, inputs, 1, "cross", cross,
             budgets, seeds, rows, approximators)

    header = "| case | estimator | " + " | ".join(str(b) for b in budgets) + " |"
    lines = [header, "|" + "---|" * (len(budgets) + 2)]
    for case, label, errs in rows:
        lines.append(f"| {case} | {label} | " + " | ".join(f"{e:.4f}" for e in errs) + " |")
    table = "\n".join(lines)
    print(table)
    print(f"\n(wall time {time.time() - start:.0f} s, seeds={len(seeds)})")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
