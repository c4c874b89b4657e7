"""Faithfulness report: are SII and RG rankings causally faithful on two small models?

For each model, 16 examples are explained with ShapleyInteractionIndex and RedundancyGap over
the cross-modal pairs, and PairMaskingFaithfulness removes the top-b pairs of each ranking
(b = 1, 2, 4, 8) against b random pairs (20 repeats):

  * "SII"  - most synergistic first (descending SII);
  * "-SII" - most negative SII first (substitution / redundancy);
  * "RG"   - largest Redundancy Gap first;
  * "noise" - uniformly random scores: the control, whose gap should be near 0.

Models:
  1. TinyFusionTransformer trained for a few seconds on planted rules (label = (a AND b) OR c:
     a synergy between text token 0 and image patch 0, and a redundancy between text token 1
     and image patch 1), target = the predicted class, zero baseline (the data is N(0, 1)).
     Also with removal="presence" (the model drops absent tokens from attention).
  2. The quickstart's CueModel (soft cue detectors: 3·(A AND B) + 2·(C OR D)), cues planted at
     random positions per example, target = the "score" logit, zero baseline. (Not the mean
     token here: every example carries the four cues, so the mean token is close enough to
     them to keep the detectors firing, and removal would not remove the cues.)

    python examples/faithfulness_report.py          # about a minute on a laptop CPU
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.metrics import PairMaskingFaithfulness
from captum_interactions.testing import train_tiny_fusion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quickstart import CueModel

BUDGETS = (1, 2, 4, 8)
N_RANDOM = 20


def report(model, inputs, target, sii, rg, **options) -> None:
    """Print one pair-masking table per ranking."""
    pmf = PairMaskingFaithfulness(model)
    noise = torch.rand(sii.shape, generator=torch.Generator().manual_seed(123))
    rankings = [
        ("SII (descending)", sii, True),
        ("-SII (most negative SII first)", sii, False),
        ("RG (descending)", rg, True),
        ("noise (uninformative control)", noise.to(sii.dtype), True),
    ]
    for name, scores, descending in rankings:
        res = pmf.evaluate(inputs, scores, budgets=BUDGETS, n_random=N_RANDOM, target=target,
                           descending=descending, seed=0, **options)
        print(res.summary(title=f"-- ranking: {name}"))
        print()


def tiny_fusion() -> None:
    start = time.perf_counter()
    model, text, image = train_tiny_fusion(seed=0, steps=400)  # 8 tokens + 8 patches
    with torch.no_grad():
        target = model(text, image).argmax(1)
    print(f"== TinyFusionTransformer (trained in {time.perf_counter() - start:.1f} s): "
          f"{text.shape[0]} examples, {text.shape[1]} tokens x {image.shape[1]} patches, "
          f"target = predicted class")
    for removal in ("baseline", "presence"):
        start = time.perf_counter()
        common = dict(target=target, removal=removal, seed=0)
        sii = ShapleyInteractionIndex(model).attribute((text, image), n_samples=4096, **common)
        rg = RedundancyGap(model).attribute((text, image), n_samples=8192, **common)
        print(f"removal={removal!r}: SII (4096 rows/example) and RG (all 64 pairs, 8192 "
              f"rows/example) in {time.perf_counter() - start:.1f} s\n")
        report(model, (text, image), target, sii, rg, removal=removal)


def cue_model() -> None:
    model = CueModel().eval()
    gen = torch.Generator().manual_seed(1)
    batch, n_text, n_image = 16, 12, 16
    text = torch.randn(batch, n_text, 64, generator=gen)
    image = torch.randn(batch, n_image, 64, generator=gen)
    rows = torch.arange(batch)
    # Two distinct random positions per example and modality for the planted cues.
    t_pos = torch.rand(batch, n_text, generator=gen).argsort(1)[:, :2]
    i_pos = torch.rand(batch, n_image, generator=gen).argsort(1)[:, :2]
    text[rows, t_pos[:, 0]], image[rows, i_pos[:, 0]] = model.cues[0], model.cues[1]  # A AND B
    text[rows, t_pos[:, 1]], image[rows, i_pos[:, 1]] = model.cues[2], model.cues[3]  # C OR D
    start = time.perf_counter()
    common = dict(target=1, seed=0)
    sii = ShapleyInteractionIndex(model).attribute((text, image), n_samples=2048, **common)
    rg = RedundancyGap(model).attribute((text, image), n_samples=4096, candidates=16, **common)
    print(f"== CueModel: {batch} examples, {n_text} tokens x {n_image} patches "
          f"({n_text * n_image} cross pairs), cues at random positions, target = score logit, "
          f"zero baseline; SII (2048 rows) and RG (16 candidates by -SII, 4096 rows) "
          f"in {time.perf_counter() - start:.1f} s\n")
    report(model, (text, image), 1, sii, rg)


def main() -> None:
    torch.manual_seed(0)
    tiny_fusion()
    cue_model()


if __name__ == "__main__":
    main()
