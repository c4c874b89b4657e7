"""The README's metrics example runs as printed and returns what it promises."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_metrics_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    metrics = [block for block in blocks if "captum_interactions.metrics" in block]
    assert len(metrics) == 1, "the README has one metrics example"
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(metrics[0], str(README), "exec"), namespace)
    table = out.getvalue().splitlines()
    assert "8 examples, 48 requested pairs" in table[0]
    # a header, a column line, one line per budget, and the signed-target note exactly when
    # the ranked removals raise the score on average
    shown: Any = namespace["res"]
    raised = float(shown.ranked_drop.mean()) < 0 and float(shown.gap.mean()) < 0
    assert len(table) == 2 + 3 + raised and (table[-1].startswith("note:") == raised)
    res, top, conc = namespace["res"], namespace["top"], namespace["conc"]
    assert res.ranked_drop.shape == (8, 3) and res.random_drop.shape == (8, 3, 10)
    assert top.comprehensiveness.shape == (8, 2) and top.counts.tolist() == [[1, 1], [2, 2]]
    assert conc.n.tolist() == [48] * 8 and bool(((conc.entropy > 0) & (conc.entropy < 1)).all())
    assert torch.isfinite(res.p_value).all()
