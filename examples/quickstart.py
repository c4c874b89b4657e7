"""Quickstart: find synergistic and redundant text-token x image-patch pairs.

A small PyTorch model reads 12 text tokens and 16 image patches (64-d embeddings) and scores a
class with two planted rules:
  * synergy: cue A in the text AND cue B in the image (needs both);
  * redundancy: cue C in the text OR cue D in the image (either suffices).
We plant A at token 2, B at patch 5, C at token 0 and D at patch 11, and ask
ShapleyInteractionIndex and RedundancyGap which cross-modal pairs matter.

    python examples/quickstart.py        # or: make demo
"""

from __future__ import annotations

import time

import torch
from torch import nn

from captum_interactions import RedundancyGap, ShapleyInteractionIndex


class CueModel(nn.Module):
    """Soft cue detectors (max over positions of a cosine match) combined by AND / OR."""

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.cues = nn.Parameter(torch.randn(4, dim, generator=gen), requires_grad=False)

    def detect(self, tokens: torch.Tensor, cue: torch.Tensor) -> torch.Tensor:
        match = nn.functional.cosine_similarity(tokens, cue.view(1, 1, -1), dim=-1)
        return torch.sigmoid(12 * (match - 0.5)).amax(dim=1)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        a, c = self.detect(text, self.cues[0]), self.detect(text, self.cues[2])
        b, d = self.detect(image, self.cues[1]), self.detect(image, self.cues[3])
        synergy = a * b
        redundancy = 1 - (1 - c) * (1 - d)
        score = 3 * synergy + 2 * redundancy
        return torch.stack([-score, score], dim=1)  # (B, 2) logits


def main() -> None:
    torch.manual_seed(0)
    model = CueModel().eval()
    text, image = torch.randn(2, 12, 64), torch.randn(2, 16, 64)
    text[:, 2], image[:, 5] = model.cues[0], model.cues[1]  # synergy pair
    text[:, 0], image[:, 11] = model.cues[2], model.cues[3]  # redundant pair
    n_text = text.shape[1]

    def name(player: int) -> str:
        return f"token {player}" if player < n_text else f"patch {player - n_text}"

    start = time.perf_counter()
    sii, sii_err = ShapleyInteractionIndex(model).attribute(
        (text, image), target=1, n_samples=2048, return_stderr=True, seed=0
    )
    rg = RedundancyGap(model).attribute((text, image), target=1, n_samples=2048, candidates=8)
    elapsed = time.perf_counter() - start

    print(f"{text.shape[0]} examples, {n_text} tokens x {image.shape[1]} patches "
          f"({n_text * image.shape[1]} cross-modal pairs), SII + RG in {elapsed:.2f} s\n")
    for b in range(text.shape[0]):
        upper = torch.triu(torch.ones_like(sii[b], dtype=torch.bool), 1)
        print(f"example {b}: most synergistic pairs (SII > 0)")
        for flat in sii[b].masked_fill(~upper, -torch.inf).flatten().topk(3).indices.tolist():
            i, j = divmod(flat, sii.shape[-1])
            print(f"  {name(i):>9} x {name(j):<9} SII = {sii[b, i, j]:+.3f} "
                  f"± {sii_err[b, i, j]:.3f}")
        print(f"example {b}: most redundant pairs (RG)")
        for flat in rg[b].masked_fill(~upper, -torch.inf).flatten().topk(3).indices.tolist():
            i, j = divmod(flat, rg.shape[-1])
            print(f"  {name(i):>9} x {name(j):<9} RG  = {rg[b, i, j]:.3f}   "
                  f"(SII = {sii[b, i, j]:+.3f})")
        print()
    print("Planted: synergy token 2 x patch 5, redundancy token 0 x patch 11.")


if __name__ == "__main__":
    main()
