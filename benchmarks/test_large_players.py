"""64-256 players, where exact SII by enumeration is out of reach.

* Polynomial games (main effects, planted pairwise and three-way terms): the exact SII is known
  in closed form, so the error is exact; precision@10 asks how many of the estimate's 10
  largest |SII| pairs are pairs the game planted a term on.
* Trained fusion Transformers (32+32, 64+64, 128+128 tokens) on the planted task
  label = (text 0 AND image 0) OR c: error against a long-run reference (this project's default
  at ``REFERENCE_ROWS`` rows, whose own standard error is recorded) and hit@k of the planted
  synergy pair (text 0, image 0) among the top-k cross pairs by SII.

shapiq approximators run where they finish in about a minute: their cost grows with
budget x n(n+1)/2 (the regression ones build that design matrix; SVARMIQ and SHAPIQ update
every interaction per coalition in Python), so each has a cap on that product
(``benchmarks.common.MAX_WORK``, from timings on this suite's CPU); skipped runs and errors
shapiq raises are recorded, not hidden. ``ours, quadratic CV`` forces the quadratic surrogate
that ``"auto"`` uses up to 32 players, where its n(n-1)/2 coefficients are still affordable
(64 players).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from benchmarks.cases import Case, estimate, fusion_case, polynomial_case
from benchmarks.common import (
    SHAPIQ_NAMES,
    relative_l2,
    shapiq_skip_reason,
    upper_pairs,
)
from captum_interactions.testing.toy_models import planted_synergy_data

SIZES = {
    "budget": ((1024, 4096, 16384), (256,)),
    "game_players": ((64, 128, 256), (40,)),
    "model_players": ((64, 128, 256), (16,)),
}
OURS = {"ours (default)": {}, "ours, quadratic CV": {"control_variate": "quadratic"}}
ESTIMATORS = (*OURS, *(f"shapiq {name}" for name in SHAPIQ_NAMES))
REFERENCE_ROWS = {True: 4096, False: 131072}  # by quick
QUADRATIC_MAX = 64


def feasible(estimator: str, n: int, budget: int, quick: bool) -> str:
    """Why this run is skipped ('' when it runs); the smoke run allows 1/20 of the work."""
    if estimator == "ours, quadratic CV" and n > QUADRATIC_MAX:
        return f"skipped: {n * (n - 1) // 2} surrogate coefficients"
    if estimator in OURS:
        return ""
    return shapiq_skip_reason(estimator.removeprefix("shapiq "), n, budget,
                              scale=1 / 20 if quick else 1.0)


def run_estimator(case: Case, estimator: str, budget: int, seeds: range):
    """Estimates per seed, or the error message shapiq raised."""
    try:
        return [estimate(case, estimator, budget, seed, OURS) for seed in seeds], ""
    except (IndexError, ValueError, MemoryError, RuntimeError) as exc:
        if estimator in OURS:
            raise
        return [], f"{type(exc).__name__}: {exc}"[:200]


def timed_runs(benchmark: Any, case: Case, estimator: str, budget: int,
               quick: bool) -> dict[str, Any]:
    """Run (or skip) one estimator on one case with seed 0 under the benchmark fixture:
    ``runs`` (estimates per seed), ``error`` ('' or why not) and the record's common
    ``figures``."""
    reason = feasible(estimator, case.n_players, budget, quick)
    seeds = range(1)
    out: dict[str, Any] = {}

    def run() -> None:
        start = time.perf_counter()
        out["runs"], out["error"] = ([], reason) if reason else run_estimator(
            case, estimator, budget, seeds)
        out["seconds"] = (time.perf_counter() - start) / len(seeds)

    benchmark.pedantic(run, rounds=1, iterations=1)
    out["figures"] = {"section": "large", "case": case.name, "case_note": case.note,
                      "estimator": estimator, "budget": budget, "players": case.n_players,
                      "seconds_per_call": out["seconds"]}
    return out


@pytest.fixture(scope="module")
def games(device: torch.device) -> Callable[[int], Case]:
    """players -> planted polynomial game (closed-form SII), built once per module."""

    @functools.cache
    def build(n: int) -> Case:
        case = polynomial_case(n, device, n_pairs=n // 4, n_triples=n // 8, seed=n)
        case.name = f"(d) polynomial game, {n} players"
        return case

    return build


@pytest.fixture(scope="module")
def models(device: torch.device, quick: bool) -> Callable[[int], Case]:
    """players -> trained fusion Transformer whose ``exact`` is the long-run reference."""

    @functools.cache
    def build(n: int) -> Case:
        case = fusion_case(n // 2, n // 2, device, examples=1 if quick else 2,
                           steps=60 if quick else 400)
        text, image, labels = planted_synergy_data(512, n // 2, n // 2, seed=999)
        with torch.no_grad():
            logits = case.model(text.double().to(device), image.double().to(device))
        accuracy = float((logits.argmax(1).cpu() == labels).double().mean())
        reference, stderr = case.attribute(REFERENCE_ROWS[quick], 12345, return_stderr=True,
                                           perturbations_per_eval=1024)
        case.exact = reference.double()
        pairs = upper_pairs(case.pair_mask)
        rel_se = float(stderr[..., pairs[:, 0], pairs[:, 1]].norm()
                       / reference[..., pairs[:, 0], pairs[:, 1]].norm())
        case.note = (f"test accuracy {accuracy:.3f}; reference: ours at "
                     f"{REFERENCE_ROWS[quick]} rows, relative stderr {rel_se:.4f}")
        return case

    return build


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_polynomial_game(benchmark, record, games, quick, game_players, estimator, budget):
    case = games(game_players)
    benchmark.group = f"large: {case.name}"
    planted = {k for k, v in case.model.terms.items() if len(k) == 2 and v != 0}
    pairs = upper_pairs(case.pair_mask).cpu()
    out = timed_runs(benchmark, case, estimator, budget, quick)
    figures = {**out["figures"], "planted_pairs": len(planted)}
    if out["error"]:
        record(**figures, error=out["error"])
        return
    errors, precision = [], []
    k = min(10, len(planted))
    for run_estimates in out["runs"]:
        est = run_estimates[0]
        errors.append(relative_l2(est, case.exact[0].cpu(), pairs))
        scores = est[pairs[:, 0], pairs[:, 1]].abs()
        top = torch.topk(scores, k).indices
        hits = sum((int(i), int(j)) in planted for i, j in pairs[top].tolist())
        # A constant estimate (e.g. all zeros) ranks nothing: its top-k is arbitrary.
        precision.append(hits / k if scores.max() > scores.min() else 0.0)
    assert all(torch.isfinite(torch.tensor(errors)))
    record(**figures, rel_l2=float(torch.tensor(errors).mean()),
           precision_at_10=float(torch.tensor(precision).mean()), n_seeds=len(out["runs"]))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_trained_transformer(benchmark, record, models, quick, model_players, estimator, budget):
    case = models(model_players)
    benchmark.group = f"large: {case.name}"
    pairs = upper_pairs(case.pair_mask).cpu()
    text_i, image_j = case.planted
    planted_index = int(((pairs[:, 0] == text_i) & (pairs[:, 1] == image_j)).nonzero()[0, 0])
    out = timed_runs(benchmark, case, estimator, budget, quick)
    figures = out["figures"]
    if out["error"]:
        record(**figures, error=out["error"])
        return
    errors, hit1, hit5 = [], [], []
    for run_estimates in out["runs"]:
        for b, est in enumerate(run_estimates):
            errors.append(relative_l2(est, case.exact[b].cpu(), pairs))
            scores = est[pairs[:, 0], pairs[:, 1]]
            # Ties count against the planted pair: an all-zero estimate ranks it last.
            rank = int((scores >= scores[planted_index]).sum())
            hit1.append(float(rank <= 1))
            hit5.append(float(rank <= 5))
    assert all(torch.isfinite(torch.tensor(errors)))
    record(**figures, rel_l2_to_reference=float(torch.tensor(errors).mean()),
           hit_at_1=float(torch.tensor(hit1).mean()), hit_at_5=float(torch.tensor(hit5).mean()),
           n_seeds=len(out["runs"]), n_examples=case.inputs[0].shape[0])
