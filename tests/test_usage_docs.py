"""docs/usage.md: every top-level python example runs as printed (on a small fusion model
defined here, since the page's examples refer to "your model")."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from captum_interactions.testing import TinyFusionTransformer

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def test_usage_examples_run() -> None:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", USAGE.read_text(), flags=re.S)
              if not b.startswith(" ")]  # indented blocks are fragments of a class
    assert len(blocks) >= 3
    torch.manual_seed(0)
    text, image = torch.randn(2, 8, 16), torch.randn(2, 6, 16)
    namespace: dict[str, object] = {
        "torch": torch, "model": TinyFusionTransformer(hidden=16, n_classes=4).eval(),
        "text": text, "image": image, "text_tokens": text, "image_patches": image,
    }
    for block in blocks:
        exec(compile(block, str(USAGE), "exec"), namespace)
    rg, sii = namespace["rg"], namespace["sii"]
    assert isinstance(rg, torch.Tensor) and isinstance(sii, torch.Tensor)
    assert rg.shape == sii.shape == (2, 14, 14)
    assert int((rg[0] != 0).sum()) <= 2 * 16  # only the 16 candidates are scored
    v = namespace["v"]
    assert isinstance(v, torch.Tensor) and v.shape == (2, 1)
    values = namespace["values"]
    assert values.max_order == 2 and values.n_players == 14  # shapiq InteractionValues
    clip_sii, vilt_sii = namespace["clip_sii"], namespace["vilt_sii"]
    assert isinstance(clip_sii, torch.Tensor) and clip_sii.shape == (2, 7, 7)
    assert isinstance(vilt_sii, torch.Tensor) and vilt_sii.shape == (2, 7, 7)
    fusion_sii = namespace["fusion_sii"]
    assert isinstance(fusion_sii, torch.Tensor) and fusion_sii.shape == (2, 7, 7)
    assert float(fusion_sii.abs().max()) > 0
    strongest = namespace["strongest"]
    assert isinstance(strongest, list) and len(strongest) == 3
    assert all(row["count"] == 10 for row in strongest)
    explained, again = namespace["explained"], namespace["again"]
    torch.testing.assert_close(again.values, explained.values, check_dtype=False)
    torch.testing.assert_close(namespace["shap_like"].sum(-1), explained.main_effects)
    by_mask = namespace["vilt_by_mask"]
    assert isinstance(by_mask, torch.Tensor) and by_mask.shape == (2, 7, 7)
    assert not torch.equal(by_mask, vilt_sii)  # another removal, another game
    result, check = namespace["result"], namespace["check"]
    torch.testing.assert_close(result.as_tensor(), clip_sii)  # same game, same values
    assert check.direction == "absolute" and check.ranked_drop.shape == (2, 2)
    emb_sii = namespace["emb_sii"]
    assert isinstance(emb_sii, torch.Tensor)
    torch.testing.assert_close(emb_sii, clip_sii, rtol=1e-5, atol=1e-6)
