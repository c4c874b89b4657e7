"""Do two revisions compute the same numbers? Run a fixed set of calls (SII with every control
variate, exact and unpaired, RG in every context, pair masking, top-K masking) and save or
compare their results.

    python benchmarks/same_results.py save after.pt
    (cd /path/to/old/tree && PYTHONPATH=. python /path/to/benchmarks/same_results.py save before.pt)
    python benchmarks/same_results.py compare before.pt after.pt

A worktree of an older commit (``git worktree add /tmp/before REV``) gives the old tree.
"""

from __future__ import annotations

import argparse

import torch

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.metrics import PairMaskingFaithfulness, topk_masking
from captum_interactions.testing import TinyFusionTransformer, random_polynomial_game


def results() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=16, n_classes=4).eval()
    text, image = torch.randn(3, 8, 16), torch.randn(3, 6, 16)
    x = (text, image)
    sii = ShapleyInteractionIndex(model)
    for cv in ("auto", "linear", "none", "size"):
        v, e = sii.attribute(x, target=2, n_samples=512, seed=3, control_variate=cv,
                             return_stderr=True, perturbations_per_eval=37)
        out[f"sii_{cv}"] = torch.cat([v.flatten(), e.flatten()])
    out["sii_exact"] = ShapleyInteractionIndex(model).attribute(
        (text[:, :5], image[:, :5]), target=1, method="exact")
    out["sii_unpaired"] = sii.attribute(x, target=2, n_samples=300, seed=1, paired=False,
                                        pairs="all")
    game = random_polynomial_game(40, seed=2)
    out["sii_40_players"] = ShapleyInteractionIndex(game).attribute(
        torch.ones(2, 40, 1), pairs="all", n_samples=3000, seed=0)
    rg = RedundancyGap(model)
    for context in ("sampled", "full"):
        v, e = rg.attribute(x, target=2, n_samples=2048, context=context, seed=4,
                            return_stderr=True)
        out[f"rg_{context}"] = torch.cat([v.flatten(), e.flatten()])
    out["rg_candidates"] = rg.attribute(x, target=2, n_samples=1024, candidates=5, seed=2)
    out["rg_exact"] = rg.attribute((text[:, :4], image[:, :4]), target=2, method="exact")
    scores = sii.attribute(x, target=2, n_samples=512)
    res = PairMaskingFaithfulness(model).evaluate(x, scores, budgets=(1, 3), n_random=4,
                                                  target=2, seed=1, max_rows_per_eval=20)
    out["pair_masking"] = torch.cat([res.ranked_drop.flatten(), res.random_drop.flatten(),
                                     res.p_value.flatten()])
    attr = torch.randn(3, 14, generator=torch.Generator().manual_seed(5))
    top = topk_masking(model, x, attr, target=2, ks=(10, 50), n_random=3, seed=0)
    out["topk_masking"] = torch.cat([top.comprehensiveness.flatten(), top.sufficiency.flatten(),
                                     top.random_comprehensiveness.flatten()])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save").add_argument("path")
    compare = sub.add_parser("compare")
    compare.add_argument("before")
    compare.add_argument("after")
    args = parser.parse_args()
    if args.command == "save":
        torch.save(results(), args.path)
        return
    before, after = torch.load(args.before), torch.load(args.after)
    for name, old in before.items():
        new = after[name]
        diff = (old.double() - new.double()).abs().max().item()
        print(f"{name:16s} identical={torch.equal(old, new)!s:5s} max |before - after| = "
              f"{diff:.3g} (scale {old.abs().max().item():.3g})")


if __name__ == "__main__":
    main()
