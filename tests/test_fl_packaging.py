"""The extras install what the code imports, and the install hints in messages name extras that
exist."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"captum_interactions", "fl_i2moe_layer"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(package: str) -> dict[str, str]:
    """Top-level third-party module -> a file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_fl_and_weights_extras_cover_every_import_of_fl_i2moe_layer():
    extras = PROJECT["optional-dependencies"]
    provided = {_name(r) for r in [*PROJECT["dependencies"], *extras["fl"], *extras["weights"]]}
    distributions = packages_distributions()
    missing = {}
    for module, where in _imports("fl_i2moe_layer").items():
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & provided:
            missing[module] = (where, sorted(names))
    assert not missing, f"imported by fl_i2moe_layer but in no extra: {missing}"
    assert "scikit-learn" in {_name(r) for r in extras["fl"]}  # the planted data's photos


def test_install_hints_name_existing_extras():
    extras = set(PROJECT["optional-dependencies"])
    for package in sorted(FIRST_PARTY):
        for path in sorted((ROOT / package).rglob("*.py")):
            for extra in re.findall(r"captum-interactions\[([\w,]+)\]", path.read_text()):
                assert set(extra.split(",")) <= extras, (path, extra)
