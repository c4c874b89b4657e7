"""Time the SII estimator's own bookkeeping per evaluated row, with a near-free model.

    python benchmarks/estimator_overhead.py [--budget 4096] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.estimators.sii_sampling import resolve_control_variate


def cheap_model(x: torch.Tensor) -> torch.Tensor:
    """(rows, F, 1) -> (rows,): a sum plus one interaction; costs almost nothing."""
    return x[..., 0].sum(1) + x[:, 0, 0] * x[:, 1, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--players", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.players:
        x = torch.ones(1, n, 1)
        sii = ShapleyInteractionIndex(cheap_model)
        times = []
        for _ in range(4):  # the first run warms up
            start = time.perf_counter()
            sii.attribute(x, pairs="all", n_samples=args.budget, perturbations_per_eval=1024)
            times.append(time.perf_counter() - start)
        best = min(times[1:])
        print(f"F={n:4d} ({resolve_control_variate('auto', n)} CV): {best * 1e3:7.1f} ms, "
              f"{best / args.budget * 1e6:6.1f} us per row")


if __name__ == "__main__":
    main()
