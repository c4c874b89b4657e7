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
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    # Run as a script (the documented command): make the repository root importable so that
    # the shapiq game and error measures are shared with the benchmark suite.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import Case, cross_mask, estimate, exact_sii
from benchmarks.common import SHAPIQ_NAMES, relative_l2, upper_pairs
from captum_interactions.testing import random_polynomial_game, train_tiny_fusion

OURS = {  # label: attribute() options
    "ours: paired + sparse CV (default)": {"control_variate": "sparse"},
    "ours: paired + tied quadratic CV": {"control_variate": "quadratic"},
    "ours: quadratic CV": {"control_variate": "quadratic", "paired": False},
    "ours: paired + linear CV": {"control_variate": "linear"},
    "ours: linear CV": {"control_variate": "linear", "paired": False},
    "ours: no CV (stratified HT, SHAP-IQ-like)": {"control_variate": "none", "paired": False},
}


def shapiq_labels() -> list[str]:
    try:
        import shapiq  # noqa: F401  (an optional extra)
    except ImportError:
        return []
    return [f"shapiq {name}" for name in SHAPIQ_NAMES]


def run_case(case: Case, budgets, seeds, rows, only: str | None = None) -> None:
    exact = exact_sii(case)
    pairs = upper_pairs(case.pair_mask).cpu()
    errors: dict[tuple[str, int], list[float]] = defaultdict(list)
    labels = [label for label in list(OURS) + shapiq_labels()
              if only is None or any(part in label for part in only.split(","))]
    for budget in budgets:
        for seed in seeds:
            for label in labels:
                for b, est in enumerate(estimate(case, label, budget, seed, OURS)):
                    errors[label, budget].append(relative_l2(est, exact[b].cpu(), pairs))
    for label in labels:
        rows.append((case.name, label, [float(np.mean(errors[label, b])) for b in budgets]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer budgets and seeds")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument("--only", default=None,
                        help="comma-separated substrings: run only the matching estimators")
    args = parser.parse_args()
    budgets = [256, 1024, 4096] if args.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    seeds = range(2 if args.quick else 5)
    rows: list[tuple[str, str, list[float]]] = []
    start = time.time()

    game = random_polynomial_game(16, n_pairs=20, n_triples=10, seed=0)
    run_case(Case("(a) polynomial game, n=16", game,
                  (torch.ones(1, 16, 1, dtype=torch.float64),), 16, "all",
                  ~torch.eye(16, dtype=torch.bool)), budgets, seeds, rows, args.only)

    model, text, image = train_tiny_fusion(seed=0)
    run_case(Case("(b) trained fusion Transformer, 8+8 players", model.double(),
                  (text[:2].double(), image[:2].double()), 16, "cross", cross_mask(8, 8),
                  kwargs={"target": 1}), budgets, seeds, rows, args.only)

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
