"""The README's FL-I2MoE example runs as printed and writes its figure."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_fl_i2moe_example_runs(tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
              if "fl_i2moe_layer" in b]
    assert len(blocks) == 1, "the README should show one FL-I2MoE example"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(README), "exec"), {})
    assert out.getvalue().split("\n")[:2] == [
        "torch.Size([4, 5]) torch.Size([4, 4, 5]) torch.Size([4, 4])",
        "torch.Size([4, 17, 17])",
    ]
    assert (tmp_path / "synergy_sii.png").stat().st_size > 1000
