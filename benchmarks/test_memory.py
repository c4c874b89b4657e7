"""Peak memory of one attribution call, ours against Captum's ShapleyValueSampling.

Two sweeps on the same float32 TinyFusionTransformer and inputs (target logit 1, one player
per token, ids consecutive across text and image, as ours' default):

- against the budget (model rows per example) at a fixed ``perturbations_per_eval``: the
  target is flat memory, since coalitions are evaluated chunk by chunk;
- against ``perturbations_per_eval`` at a fixed budget: the forward batch holds
  ``perturbations_per_eval * B`` rows, so memory is expected to grow with it.

Ours is ``ShapleyInteractionIndex.attribute(pairs="cross")`` with ``n_samples = budget``.
Captum's ``n_samples`` counts permutations of F players, each costing F rows per example, so it
gets ``round(budget / F)`` permutations. Both sides run the model through a counter, and every
record carries the rows per example actually evaluated (``rows``) and the largest forward batch
per example (``forward_rows``): Captum never batches across permutations, so its forward batch
is capped at F rows per example whatever ``perturbations_per_eval`` asks.

How the peak is measured (see ``benchmarks/memory_probe.py``):

- CPU (``measure="rss-subprocess"``): torch has no peak counter on CPU, so each configuration
  runs in a fresh process, one torch thread, which builds the model and inputs, runs one
  warm-up forward, resets the kernel's resident-set high-water mark and reads the RSS, runs the
  attribution, then reads the high-water mark again. ``peak_mib`` = peak RSS - RSS before.
  It counts what the allocator kept resident, not only live tensors; the probe runs with
  ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB (glibc otherwise raises it as blocks are freed
  and keeps later tensors in a fragmenting heap), so that every tensor larger than that is its
  own mapping, returned to the system when freed, and the peak follows live tensors.
- CUDA (``measure="cuda-allocator"``): in-process, ``max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus ``memory_allocated`` before the call (live tensors only;
  the caching allocator's reserve is not counted).

The tests assert no figure (flatness is a measurement, reported in ``docs/benchmarks.md``),
only that the probe returned one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.memory_probe import Spec, measure_cuda

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "memory_probe.py"

# hidden 128 and one layer keep the full module within ~3 min on a 2-core CPU (~1 ms a row
# on one thread); the memory of a forward batch scales with tokens x hidden, not with depth.
FULL_MODEL = {"hidden": 128, "n_layers": 1, "n_heads": 4, "n_text": 32, "n_image": 32,
              "batch": 2}
QUICK_MODEL = {"hidden": 16, "n_layers": 1, "n_heads": 2, "n_text": 4, "n_image": 4,
               "batch": 2}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
METHODS = {
    "ours": "ours (ShapleyInteractionIndex, cross pairs)",
    "captum": "Captum ShapleyValueSampling",
}


@dataclass(frozen=True)
class Point:
    """One configuration, and the sweeps ("budget", "perturbations_per_eval") it belongs to."""

    budget: int
    perturbations_per_eval: int
    sweeps: tuple[str, ...]


def sweep_points(budgets: Iterable[int], fixed_ppe: int, ppes: Iterable[int],
                 fixed_budget: int) -> tuple[Any, ...]:
    """The points of both sweeps as pytest params; a point shared by both runs once."""
    sweeps: dict[tuple[int, int], list[str]] = {}
    for budget in budgets:
        sweeps.setdefault((budget, fixed_ppe), []).append("budget")
    for ppe in ppes:
        sweeps.setdefault((fixed_budget, ppe), []).append("perturbations_per_eval")
    return tuple(pytest.param(Point(budget, ppe, tuple(names)), id=f"budget{budget}-ppe{ppe}")
                 for (budget, ppe), names in sweeps.items())


SIZES = {"point": (sweep_points((1024, 4096, 16384), 256, (16, 64, 256, 1024), 4096),
                   sweep_points((64,), 16, (16,), 64))}


def run_probe(spec: Spec) -> dict[str, Any]:
    """``memory_probe.py`` on ``spec`` in a fresh process: its peak is this call's alone."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(PROBE), json.dumps(spec)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": path, **MALLOC_ENV},
                          capture_output=True,
                          text=True, check=False, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"memory probe failed on {spec}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(spec: Spec, device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return measure_cuda(spec, device)
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("the CPU peak needs Linux's /proc/self/clear_refs and VmHWM")
    return run_probe(spec)


def model_label(model: dict[str, int]) -> str:
    return (f"TinyFusionTransformer float32, hidden {model['hidden']}, {model['n_layers']} "
            f"layer(s), {model['n_text']}+{model['n_image']} tokens, batch {model['batch']}")


@pytest.mark.parametrize("method", list(METHODS))
def test_peak_memory(benchmark: Any, record: Any, device: torch.device, quick: bool,
                     method: str, point: Point) -> None:
    model = QUICK_MODEL if quick else FULL_MODEL
    spec: Spec = {"method": method, "budget": point.budget,
                  "perturbations_per_eval": point.perturbations_per_eval, **model}
    benchmark.group = f"memory {METHODS[method]}"
    out: dict[str, Any] = {}
    benchmark.pedantic(lambda: out.update(measure(spec, device)), rounds=1, iterations=1)
    # 0 is possible on CPU for tiny sizes: the call may fit in memory the allocator kept.
    assert math.isfinite(out["peak_mib"]) and out["peak_mib"] >= 0, out
    assert out["rows"] > 0, out
    record(section="memory", method=METHODS[method], budget=point.budget,
           n_samples=out["n_samples"], rows=out["rows"],
           perturbations_per_eval=point.perturbations_per_eval,
           forward_rows=out["forward_rows"], peak_mib=out["peak_mib"],
           before_mib=out["before_mib"], seconds_per_call=out["seconds"],
           measure=out["measure"], sweeps=list(point.sweeps), model=model_label(model),
           n_players=model["n_text"] + model["n_image"], n_examples=model["batch"],
           probe_threads=1 if device.type == "cpu" else None)
