"""Estimator accuracy at equal budget: error against exact SII, this project vs shapiq.

For each case, estimator and budget: relative L2 error over the scored pairs and top-5
recovery, averaged over seeds and examples. Every side spends the same number of model
evaluations per example and evaluates them through the same perturbation engine.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import pytest
import torch

from benchmarks.cases import (
    Case,
    estimate,
    exact_sii,
    fl_i2moe_case,
    fusion_case,
    polynomial_case,
)
from benchmarks.common import (
    SHAPIQ_NAMES,
    relative_l2,
    top_k_recovery,
    upper_pairs,
)

SIZES = {"budget": ((256, 512, 1024, 2048, 4096, 8192, 16384), (256,))}
OURS = {  # label: attribute() options
    "ours (default)": {},
    "ours, linear CV": {"control_variate": "linear"},
    "ours, no CV": {"control_variate": "none"},
}
SHAPIQ = tuple(f"shapiq {name}" for name in SHAPIQ_NAMES)
# (c) costs ~0.5 ms per row (12 Transformer passes per row): only the default is compared there.
CASE_ESTIMATORS = [(c, e) for c in ("a", "b") for e in (*OURS, *SHAPIQ)]
CASE_ESTIMATORS += [("c", e) for e in ("ours (default)", *SHAPIQ)]


@pytest.fixture(scope="module")
def cases(device: torch.device, quick: bool) -> Callable[[str], Case]:
    """case key -> Case with its exact SII, each built once per module on first use."""

    @functools.cache
    def build(key: str) -> Case:
        if key == "a":
            case = polynomial_case(16, device)
        elif key == "b":
            case = fusion_case(8, 8, device, examples=1 if quick else 2,
                               steps=60 if quick else 400)
        else:
            case = fl_i2moe_case(device, quick=quick, groups=4 if quick else 8)
        if case.exact is None:
            case.exact = exact_sii(case)
        return case

    return build


@pytest.mark.parametrize(("case_key", "estimator"), CASE_ESTIMATORS)
def test_accuracy_vs_exact(benchmark, record, cases, quick, case_key, estimator, budget):
    case = cases(case_key)
    benchmark.group = f"accuracy {case.name}"
    seeds = range(1 if quick else (2 if case_key == "c" else 3))
    pairs = upper_pairs(case.pair_mask).cpu()
    errors, recovery, seconds = [], [], []

    def run_all() -> None:
        for seed in seeds:
            start = time.perf_counter()
            estimates = estimate(case, estimator, budget, seed, OURS)
            seconds.append(time.perf_counter() - start)
            for b, est in enumerate(estimates):
                exact = case.exact[b].cpu()
                errors.append(relative_l2(est.cpu(), exact, pairs))
                recovery.append(top_k_recovery(est.cpu(), exact, pairs, k=5))

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    assert all(torch.isfinite(torch.tensor(errors))), "an estimator returned NaN/Inf"
    record(section="accuracy", case=case.name, case_note=case.note, estimator=estimator,
           budget=budget, n_seeds=len(seeds), n_examples=case.inputs[0].shape[0],
           rel_l2=float(torch.tensor(errors).mean()),
           rel_l2_sd=float(torch.tensor(errors).std()) if len(errors) > 1 else 0.0,
           top5=float(torch.tensor(recovery).mean()),
           seconds_per_call=float(torch.tensor(seconds).mean()))
