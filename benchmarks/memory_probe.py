"""Peak memory of ONE attribution call; run as a script, one configuration per fresh process.

``python benchmarks/memory_probe.py '<json spec>'`` (repository root on ``PYTHONPATH``) builds
the model and inputs of the spec, runs the attribution once and prints one JSON line: the peak
extra resident memory (MiB) during the call, the rows the model evaluated per example, the
largest forward batch per example and the call's wall time.

Why a fresh process: on CPU torch keeps no peak-memory counter, so the peak is read from the
kernel's resident-set high-water mark, which only a fresh process can attribute to one call.
The mark is read from ``/proc/self/status`` (``VmHWM``) after resetting it to the current RSS
(``/proc/self/clear_refs``): ``getrusage``'s ``ru_maxrss`` cannot be reset, and after a
fork + exec it also holds the parent's (pytest's) high-water mark.

On CUDA, :func:`measure_cuda` does the same in-process with the caching allocator's peak
counter (``max_memory_allocated``), which can be reset between calls.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import CountingModel, random_fusion, token_mask
from captum_interactions.attr.shapley_interaction_index import ShapleyInteractionIndex

MIB = 2**20
TARGET = 1

Spec = dict[str, Any]  # method, budget, perturbations_per_eval and the model's sizes


def build(spec: Spec, device: torch.device) -> tuple[CountingModel, tuple[Tensor, Tensor]]:
    """The spec's float32 TinyFusionTransformer (counting its rows) and random inputs."""
    return random_fusion(spec["n_text"], spec["n_image"], spec["hidden"], device,
                         n_layers=spec["n_layers"], n_heads=spec["n_heads"],
                         examples=spec["batch"])


def n_players(spec: Spec) -> int:
    return spec["n_text"] + spec["n_image"]


def captum_permutations(spec: Spec) -> int:
    """Captum's ``n_samples`` counts permutations, each costing F rows per example (one per
    feature added; the baseline row is evaluated once for all): the number of permutations
    closest to ``budget`` rows."""
    return max(1, round(spec["budget"] / n_players(spec)))


def attribution(spec: Spec, forward: CountingModel,
                inputs: tuple[Tensor, Tensor]) -> tuple[Callable[[], Tensor], int]:
    """The call to measure and the ``n_samples`` it passes."""
    ppe = spec["perturbations_per_eval"]
    if spec["method"] == "ours":
        explainer = ShapleyInteractionIndex(forward)
        n_samples = spec["budget"]
        return (lambda: explainer.attribute(inputs, target=TARGET, n_samples=n_samples,
                                            perturbations_per_eval=ppe, pairs="cross"),
                n_samples)
    from captum.attr import ShapleyValueSampling

    captum = ShapleyValueSampling(forward)
    mask = token_mask(inputs)
    n_samples = captum_permutations(spec)
    return (lambda: captum.attribute(inputs, target=TARGET, feature_mask=mask,
                                     n_samples=n_samples, perturbations_per_eval=ppe),
            n_samples)


def current_rss_mib() -> float:
    """Resident set size now (``/proc/self/statm``'s second field, in pages)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def reset_peak_rss() -> None:
    """Set the kernel's high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def figures(spec: Spec, forward: CountingModel, n_samples: int, peak: float, before: float,
            seconds: float, measure: str) -> dict[str, Any]:
    batch = spec["batch"]
    return {"n_samples": n_samples, "rows": forward.rows // batch,
            "forward_rows": forward.max_batch // batch, "peak_mib": peak,
            "before_mib": before, "seconds": seconds, "measure": measure}


def measure_cpu(spec: Spec) -> dict[str, Any]:
    """Peak RSS above the RSS before the call, in this (fresh) process."""
    torch.set_num_threads(1)  # memory does not depend on threads; one keeps the run light
    device = torch.device("cpu")
    forward, inputs = build(spec, device)
    call, n_samples = attribution(spec, forward, inputs)
    with torch.no_grad():  # warm-up: lazy initialisations are not the call's memory
        forward(*inputs)
    forward.reset()
    reset_peak_rss()
    before = current_rss_mib()
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    peak = peak_rss_mib() - before
    return figures(spec, forward, n_samples, peak, before, seconds, "rss-subprocess")


def measure_cuda(spec: Spec, device: torch.device) -> dict[str, Any]:
    """Peak allocated CUDA memory above what was allocated before the call, in-process."""
    forward, inputs = build(spec, device)
    call, n_samples = attribution(spec, forward, inputs)
    with torch.no_grad():
        forward(*inputs)
    forward.reset()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    result = call()
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - before) / MIB
    out = figures(spec, forward, n_samples, peak, before / MIB, seconds, "cuda-allocator")
    del result, forward, inputs  # free the device before the next in-process measurement
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: memory_probe.py '<json spec>'")
    out = measure_cpu(json.loads(argv[1]))
    if not all(math.isfinite(v) for v in out.values() if isinstance(v, float)):
        raise SystemExit(f"non-finite figure: {out}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
