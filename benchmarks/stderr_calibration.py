"""Are the SII standard errors honest? z-scores of sampled estimates against exact values.

For a small fusion Transformer (F = 2T players, exact SII by enumeration), every control
variate and budget is run over many seeds; z = (estimate - exact) / stderr over the cross
pairs. Honest standard errors from R = 16 replicates give an RMS z near 1.07 (a t distribution
with 15 degrees of freedom), |z| > 2 for about 6.4% and |z| > 3 for about 1% of entries;
larger values mean the standard errors are too small. ``--game N`` runs a planted polynomial
game with N players instead (closed-form SII, every pair scored).

    python benchmarks/stderr_calibration.py --tokens 6 --budgets 128,256,512,1024 --seeds 30
    python benchmarks/stderr_calibration.py --game 64 --budgets 256,1024,4096 --seeds 30
"""

from __future__ import annotations

import argparse

import torch

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.testing import TinyFusionTransformer, random_polynomial_game


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=6, help="tokens per modality (F = 2T)")
    parser.add_argument("--budgets", default="128,256,512,1024", help="n_samples values")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per setting")
    parser.add_argument("--modes", default="sparse,sparse/unbiased,quadratic/unbiased",
                        help="control variates; '/unbiased' turns shrinkage off")
    parser.add_argument("--game", type=int, default=0,
                        help="players of a planted polynomial game (0: the Transformer)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a reproducible figure
    torch.manual_seed(0)
    options: dict = {}
    if args.game:
        n = args.game
        game = random_polynomial_game(n, n_pairs=n // 4, n_triples=n // 8, seed=n)
        sii = ShapleyInteractionIndex(game)
        inputs: tuple = (torch.ones(1, n, 1, dtype=torch.float64),)
        exact = game.sii()
        cross = ~torch.eye(n, dtype=torch.bool)
        options["pairs"] = "all"
        label = f"planted polynomial game, F = {n} players (all pairs)"
    else:
        model = TinyFusionTransformer(hidden=8, n_classes=3).double().eval()
        t = args.tokens
        inputs = (torch.randn(1, t, 8, dtype=torch.float64),
                  torch.randn(1, t, 8, dtype=torch.float64))
        sii = ShapleyInteractionIndex(model)
        options["target"] = 1
        exact = sii.attribute(inputs, method="exact", **options)[0]
        cross = torch.zeros(2 * t, 2 * t, dtype=torch.bool)
        cross[:t, t:] = True
        label = f"TinyFusionTransformer, F = {2 * t} players (cross pairs)"
    scale = exact[cross].pow(2).mean().sqrt()
    print(f"{label}, RMS exact SII {scale:.3g}, {args.seeds} seeds")
    print(f"{'rows':>6} {'control variate':>18} {'rel. RMSE':>9} {'RMS z':>6} {'|z|>2':>6} "
          f"{'|z|>3':>6} {'max |z|':>7}")
    for budget in (int(b) for b in args.budgets.split(",")):
        for mode in args.modes.split(","):
            z, err = [], []
            for seed in range(args.seeds):
                name, _, flag = mode.partition("/")
                values, stderr = sii.attribute(inputs, n_samples=budget, seed=seed,
                                               control_variate=name, return_stderr=True,
                                               shrinkage=flag != "unbiased", **options)
                err.append((values[0] - exact)[cross])
                z.append(((values[0] - exact) / stderr[0].clamp_min(1e-300))[cross])
            zs, errs = torch.stack(z), torch.stack(err)
            print(f"{budget:>6} {mode:>18} {float(errs.pow(2).mean().sqrt() / scale):>9.3f} "
                  f"{float(zs.pow(2).mean().sqrt()):>6.2f} "
                  f"{float((zs.abs() > 2).double().mean()):>6.3f} "
                  f"{float((zs.abs() > 3).double().mean()):>6.3f} {float(zs.abs().max()):>7.1f}")


if __name__ == "__main__":
    main()
