"""Time the SII estimator's own bookkeeping per evaluated row, with a near-free model, or
against the forward time of a real one.

    python benchmarks/estimator_overhead.py [--budget 4096] [--threads 1]
    python benchmarks/estimator_overhead.py --fusion --budget 8192 32768

``--fusion``: an untrained TinyFusionTransformer with hidden 256 and 32 text + 49 image
tokens (81 players, float32); the forward calls are timed inside the call, and the
estimator's own time is the rest.
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.estimators.sii_sampling import resolve_control_variate
from captum_interactions.testing import TinyFusionTransformer


def cheap_model(x: torch.Tensor) -> torch.Tensor:
    """(rows, F, 1) -> (rows,): a sum plus one interaction; costs almost nothing."""
    return x[..., 0].sum(1) + x[:, 0, 0] * x[:, 1, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, nargs="+", default=[4096])
    parser.add_argument("--fusion", action="store_true",
                        help="own time against the forward time of an 81-player Transformer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--players", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fusion:
        fusion_overhead(args.budget)
        return
    for budget in args.budget:
        overhead(args.players, budget)


def fusion_overhead(budgets: list[int]) -> None:
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=256, max_len=96).eval()
    text, image = torch.randn(1, 32, 256), torch.randn(1, 49, 256)
    spent = [0.0]

    def timed(*args: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        with torch.no_grad():
            out = model(*args)
        spent[0] += time.perf_counter() - start
        return out

    for budget in budgets:
        spent[0] = 0.0
        start = time.perf_counter()
        ShapleyInteractionIndex(timed).attribute((text, image), target=1, n_samples=budget,
                                                 perturbations_per_eval=1024)
        total = time.perf_counter() - start
        print(f"81 players, hidden 256, {budget} rows: total {total:.1f} s, forward "
              f"{spent[0]:.1f} s, estimator's own {total - spent[0]:.1f} s")


def overhead(players: list[int], budget: int) -> None:
    for n in players:
        x = torch.ones(1, n, 1)
        sii = ShapleyInteractionIndex(cheap_model)
        times = []
        for _ in range(4):  # the first run warms up
            start = time.perf_counter()
            sii.attribute(x, pairs="all", n_samples=budget, perturbations_per_eval=1024)
            times.append(time.perf_counter() - start)
        best = min(times[1:])
        print(f"F={n:4d} ({resolve_control_variate('auto', n)} CV): {best * 1e3:7.1f} ms, "
              f"{best / budget * 1e6:6.1f} us per row ({budget} rows)")


if __name__ == "__main__":
    main()
