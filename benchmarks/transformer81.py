"""SII of a trained 32 + 49 player fusion Transformer against a long-run reference, at equal
budgets: this project's estimator (unbiased default, and with shrinkage) and shapiq's SPEX.

The model is ``benchmarks.cases.fusion_case(32, 49)`` (TinyFusionTransformer, hidden 16,
float64, trained 400 steps on the planted task; 1 held-out example, target logit 1, the
1,568 cross pairs). The reference is the mean of two runs of the default estimator at
131,072 rows (seeds 101 and 202); its relative standard error is printed and should be at
most a third of the errors compared. One torch thread.

    python benchmarks/transformer81.py [--reference /tmp/ref81.pt] [--estimators ours,shrink,spex]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import fusion_case
from benchmarks.common import relative_l2, run_shapiq, upper_pairs
from captum_interactions.perturbation import model_game

REFERENCE_ROWS = 131072
BUDGETS = (2048, 8192, 32768)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=None,
                        help="cache file for the reference (built when missing)")
    parser.add_argument("--estimators", default="ours,shrink,spex")
    parser.add_argument("--seeds", type=int, default=2, help="seeds for ours (SPEX: 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = fusion_case(32, 49, torch.device("cpu"), examples=1, steps=400)
    pairs = upper_pairs(case.pair_mask)
    reference = _reference(case, pairs, args.reference)

    def top(est: torch.Tensor, k: int) -> set[int]:
        return set(torch.topk(est[pairs[:, 0], pairs[:, 1]].abs(), k).indices.tolist())

    print("| estimator | rows | rel. L2 | precision@10 | seconds per call |")
    print("|---|---|---|---|---|")
    for budget in BUDGETS:
        for name in args.estimators.split(","):
            errors, precision, seconds = [], [], []
            for seed in range(1 if name == "spex" else args.seeds):
                start = time.perf_counter()
                if name == "spex":
                    inputs, kwargs = case.example(0)
                    game = model_game(case.model, inputs, perturbations_per_eval=1024,
                                      **kwargs).as_shapiq_game()
                    est = run_shapiq("SPEX", game, case.n_players, budget, seed, pairs)
                else:
                    est = case.attribute(budget, seed, perturbations_per_eval=1024,
                                         shrinkage=name == "shrink")[0].double()
                seconds.append(time.perf_counter() - start)
                errors.append(relative_l2(est, reference, pairs))
                precision.append(len(top(est, 10) & top(reference, 10)) / 10)
            label = {"ours": "ours (default, unbiased)", "shrink": "ours, shrinkage=True",
                     "spex": "shapiq SPEX"}.get(name, name)
            print(f"| {label} | {budget} | {sum(errors) / len(errors):.4f} | "
                  f"{sum(precision) / len(precision):.2f} | "
                  f"{sum(seconds) / len(seconds):.1f} |", flush=True)


def _reference(case, pairs: torch.Tensor, path: str | None) -> torch.Tensor:
    if path is not None and Path(path).exists():
        return torch.load(path)
    start = time.perf_counter()
    a, sa = case.attribute(REFERENCE_ROWS, 101, return_stderr=True, perturbations_per_eval=4096)
    b, sb = case.attribute(REFERENCE_ROWS, 202, return_stderr=True, perturbations_per_eval=4096)
    reference = 0.5 * (a[0] + b[0]).double()
    stderr = (0.25 * (sa[0] ** 2 + sb[0] ** 2)).sqrt()
    i, j = pairs[:, 0], pairs[:, 1]
    print(f"reference: 2 x {REFERENCE_ROWS} rows in {time.perf_counter() - start:.0f} s; the "
          f"runs differ by {relative_l2(a[0], b[0], pairs):.4f} (relative L2); relative "
          f"stderr of their mean {float(stderr[i, j].norm() / reference[i, j].norm()):.4f}")
    if path is not None:
        torch.save(reference, path)
    return reference


if __name__ == "__main__":
    main()
