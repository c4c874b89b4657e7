"""Options and fixtures of the benchmark suite (``make bench``; ``--quick`` is CI's smoke run).

Every test records its figures in ``benchmark.extra_info`` (written to the pytest-benchmark
JSON) and, as soon as the test ends, appends them to ``benchmarks/results/<device>.jsonl`` so
that an interrupted run keeps what it finished. ``benchmarks/report.py`` turns the records
into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pytest
import torch

RESULTS = Path(__file__).parent / "results"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("captum-interactions benchmarks")
    group.addoption("--quick", action="store_true", default=False,
                    help="smoke run: tiny sizes, one seed; checks that every benchmark runs")
    group.addoption("--device", default="auto",
                    help="'cpu', 'cuda' or 'auto' (CUDA when available). Default: auto")
    group.addoption("--threads", type=int, default=None,
                    help="torch intra-op threads on CPU. Default: torch's default")
    group.addoption("--records", default=None,
                    help="append every test's figures to this JSONL file. Default: "
                         "benchmarks/results/<device>.jsonl (none with --quick)")


def is_quick(config: pytest.Config) -> bool:
    return bool(config.getoption("--quick")) or os.environ.get("BENCH_QUICK") == "1"


def param_id(value: Any) -> str:
    """(32, 256, 2048) -> '32-256-2048' (readable ``-k`` selections)."""
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    return str(value)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module's ``SIZES = {"argname": (full values, quick values[, CUDA values])}``
    parametrises that argument with the set that fits the run (the optional third set replaces
    the full one on a GPU, where larger sizes take minutes rather than hours). A module's
    ``SIZE_IDS = {"argname": "prefix"}`` prefixes that argument's test ids (``n81``, ``b8192``:
    ``-k "n81 and b2048"`` selects without matching 8192)."""
    sizes = getattr(metafunc.module, "SIZES", {})
    prefixes = getattr(metafunc.module, "SIZE_IDS", {})
    quick_run = is_quick(metafunc.config)
    on_cuda = resolve_device(metafunc.config).type == "cuda"
    for name, values in sizes.items():
        if name in metafunc.fixturenames:
            full, small = values[0], values[1]
            if on_cuda and len(values) > 2:
                full = values[2]
            chosen = small if quick_run else full
            prefix = prefixes.get(name, "")
            metafunc.parametrize(name, chosen, ids=[prefix + param_id(v) for v in chosen])


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    return is_quick(request.config)


def resolve_device(config: pytest.Config) -> torch.device:
    name = config.getoption("--device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    resolved = resolve_device(request.config)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda asked for, but CUDA is not available")
    threads = request.config.getoption("--threads")
    if threads:
        torch.set_num_threads(threads)
    return resolved


@pytest.fixture(autouse=True)
def pinned_threads(request: pytest.FixtureRequest) -> None:
    """Re-apply ``--threads`` before every benchmark: a library imported by an earlier one
    (shapiq's SPEX dependencies) can reset torch's thread count."""
    threads = request.config.getoption("--threads")
    if threads:
        torch.set_num_threads(threads)


def device_label(device: torch.device) -> str:
    """'cpu: <model name>, N cores' or 'cuda: <GPU name>' for the tables."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"cpu: {name}, {os.cpu_count()} cores"


@pytest.fixture
def record(request: pytest.FixtureRequest, benchmark: Any, device: torch.device, quick: bool):
    """``record(section=..., **figures)``: keep a test's figures in the benchmark JSON and in
    the JSONL records file at once."""

    def _record(**figures: Any) -> None:
        figures = {"device": device_label(device), "threads": torch.get_num_threads(),
                   "quick": quick, "torch": torch.__version__, **figures}
        benchmark.extra_info.update(figures)
        path = request.config.getoption("--records")
        if path is None and quick:
            return
        path = Path(path) if path else RESULTS / f"{device.type}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"test": request.node.nodeid, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 **figures}
        with path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    return _record
