"""Adaptive budgets (n_samples="auto"): rows used, reported stderr and actual error.

On planted polynomial games with known SII (main effects, pairwise, three-way and four-way
Möbius terms; exact SII from the closed form Σ_{T ⊇ ij} m(T) / (|T| - 1)), each target is run
over several seeds and the table reports, per (players, target): the rows used per example
(mean, min-max), the reported max stderr over all pairs at the stop, the actual max |error|
over all pairs, the fraction of runs that met the target and the fraction of pairs whose error
exceeds 3 reported stderr.

    python benchmarks/adaptive_budget.py --players 16,64 --targets 0.1,0.03,0.01 --seeds 5
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.testing import PolynomialGame


def planted_game(n: int, seed: int = 0) -> PolynomialGame:
    """Main effects N(0, 1) for every player; n pairs N(0, 1), n/2 triples N(0, 0.5) and n/4
    four-way terms N(0, 0.5) on random players."""
    gen = torch.Generator().manual_seed(seed)
    terms: dict[tuple[int, ...], float] = {
        (i,): float(torch.randn((), generator=gen)) for i in range(n)}
    for order, count, scale in ((2, n, 1.0), (3, n // 2, 0.5), (4, n // 4, 0.5)):
        for _ in range(count):
            key = tuple(sorted(torch.randperm(n, generator=gen)[:order].tolist()))
            terms[key] = terms.get(key, 0.0) + scale * float(torch.randn((), generator=gen))
    return PolynomialGame(n, terms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", default="16,64", help="player counts")
    parser.add_argument("--targets", default="0.1,0.03,0.01", help="absolute target_stderr")
    parser.add_argument("--relative", default="0.05", help="relative targets (may be empty)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per setting")
    parser.add_argument("--max-samples", type=int, default=2**16, help="max_samples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = [("absolute", float(t)) for t in args.targets.split(",") if t]
    settings += [("relative", float(t)) for t in args.relative.split(",") if t]
    print("| players | target | rows used: mean (min-max) | reported max stderr | "
          "actual max abs error | target met | pairs with error > 3 stderr | s per run |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(p) for p in args.players.split(",")):
        game = planted_game(n)
        truth = game.sii()
        x = torch.ones(1, n, 1, dtype=torch.float64)
        off = ~torch.eye(n, dtype=torch.bool)
        sii = ShapleyInteractionIndex(game)
        largest = float(truth[off].abs().max())
        for scale, target in settings:
            rows, stderrs, errors, met, beyond, seconds = [], [], [], [], [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    result = sii.explain(x, pairs="all", n_samples="auto", target_stderr=target,
                                         stderr_scale=scale, max_samples=args.max_samples,
                                         seed=seed)
                seconds.append(time.perf_counter() - start)
                err = (result.values[0] - truth).abs()[off]
                se = result.stderr[0][off]
                rows.append(result.settings["n_samples_used"][0])
                stderrs.append(float(se.max()))
                errors.append(float(err.max()))
                met.append(result.settings["target_met"][0])
                beyond.append(float((err > 3 * se).double().mean()))
            label = (f"{target:g}" if scale == "absolute"
                     else f"{target:g} x max abs SII ({target * largest:.3g})")
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            print(f"| {n} | {label} | {mean(rows):.0f} ({min(rows)}-{max(rows)}) | "
                  f"{mean(stderrs):.3g} | {mean(errors):.3g} | {sum(met)}/{len(met)} | "
                  f"{mean(beyond):.3f} | {mean(seconds):.2f} |")


if __name__ == "__main__":
    main()
