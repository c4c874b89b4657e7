"""The README's usage example runs as printed and gives the shapes it promises."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(README), "exec"), namespace)
    assert out.getvalue().strip() == "torch.Size([2, 14, 14]) torch.Size([2, 14, 14])"
    values, rg = namespace["values"], namespace["rg"]
    assert (values[:, :8, :8] == 0).all() and (rg >= 0).all()
