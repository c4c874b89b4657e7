"""False-positive rate of PairMaskingFaithfulness's paired tests under an uninformative ranking
(docs/metrics.md).

Random scores make the ranked selection one more uniformly random selection, so a valid test
rejects at most 5% of the runs at alpha = 0.05. Two analytic models over 4 tokens x 4 patches
(16 cross pairs), 20 examples per run, budgets (1, 2, 4, 8), 10 random repeats:

  * "saturating": three planted disjoint products; removing a few random pairs often kills all
    three, so drops pile up at the maximum and ranked - mean(random) is skewed;
  * "dense": every cross pair interacts, with random coefficients.

    python benchmarks/pair_masking_calibration.py [--runs 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_interactions.metrics import PairMaskingFaithfulness

BUDGETS = (1, 2, 4, 8)


def product_model(coef: torch.Tensor):
    def forward(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,ij,bj->b", text[..., 0], coef, image[..., 0])

    return forward


def rejection_rates(kind: str, test: str, runs: int) -> list[float]:
    rejected = torch.zeros(len(BUDGETS))
    for run in range(runs):
        gen = torch.Generator().manual_seed(run)
        text = torch.rand(20, 4, 1, generator=gen, dtype=torch.float64) + 0.5
        image = torch.rand(20, 4, 1, generator=gen, dtype=torch.float64) + 0.5
        if kind == "saturating":
            coef = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
        else:
            coef = torch.rand(4, 4, generator=gen, dtype=torch.float64)
        scores = torch.rand(20, 8, 8, generator=gen, dtype=torch.float64)
        res = PairMaskingFaithfulness(product_model(coef)).evaluate(
            (text, image), scores, budgets=BUDGETS, n_random=10, seed=run, test=test
        )
        rejected += (res.p_value < 0.05).float().cpu()
    return (rejected / runs).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(f"rejection rate at alpha = 0.05 over {args.runs} runs with random scores "
          f"(budgets {BUDGETS})\n")
    print(f"| model | test | {' | '.join(f'b = {b}' for b in BUDGETS)} |")
    print(f"|---|---|{'---|' * len(BUDGETS)}")
    for kind in ("saturating", "dense"):
        for test in ("exchange", "wilcoxon"):
            start = time.perf_counter()
            rates = rejection_rates(kind, test, args.runs)
            cells = " | ".join(f"{r:.3f}" for r in rates)
            print(f"| {kind} | {test} | {cells} |  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
