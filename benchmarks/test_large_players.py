"""64-1024 players, where exact SII by enumeration is out of reach (issue 11: a sparse-surrogate
estimator against SPEX and ProxySPEX at real player counts).

* Planted polynomial games at 64, 81, 256 and 1024 players, in two flavours: ``dense`` (every
  player has a main effect, as ``random_polynomial_game`` draws by default) and ``sparse``
  (only n // 16 players have one); n // 4 planted pairwise and n // 8 three-way terms. The exact
  SII is known in closed form, so the error is exact. precision@k asks how many of the
  estimate's k largest-|SII| pairs are pairs with a non-zero exact SII (a planted pairwise term
  or two players of a planted three-way term), k = min(k, number of such pairs).
* Trained fusion Transformers (float32; 32+32 tokens hidden 16, 32+49 tokens hidden 256 -- the
  issue's forward-time yardstick -- and 128+128 tokens hidden 16) on the planted task
  label = (text 0 AND image 0) OR c: error against a long-run reference (this project's default
  at ``REFERENCE_ROWS`` rows, whose relative standard error is recorded: the report says whether
  it is at most a third of every error compared), precision@k of the reference's k
  largest-|SII| cross pairs, and hit@k of the planted synergy pair (text 0, image 0).

Every record also splits the call's wall time (``seconds_per_call``) into the model's forwards
(``forward_seconds``, the same wrapper for every estimator) and the estimator's own work
(``own_seconds``). For this project's estimator, own = wall - forwards, so it is charged with its
masking and chunking; shapiq's own = wall - time inside its game callable (``game_seconds``: our
perturbation engine and the model), so shapiq is not. ``peak_rss_mib`` is the call's peak extra
resident memory, read in-process from the kernel's high-water mark (VmHWM, reset through
``/proc/self/clear_refs`` after ``malloc_trim``, as in ``benchmarks/memory_probe.py``): a lower
bound where the call reuses memory the process freed before it. One seed, one thread (``make
compare-large``).

shapiq approximators run where one run finishes in a few minutes: ``benchmarks.common``'s caps
(``MAX_WORK`` on budget x n(n+1)/2, ``MAX_PLAYER_ROWS`` on budget x players, ``MAX_BUDGET``),
from timings on this suite's CPU; ``BENCH_CAP_SCALE`` scales them. Skipped runs and errors
shapiq raises are recorded, not hidden. ``ours, quadratic CV`` forces the quadratic surrogate
(64 players only: n(n-1)/2 coefficients); ``ours, sparse CV`` is the sparse surrogate of issue
11, recorded as an error while this project's estimator does not offer it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from benchmarks.cases import Case, Timing, estimate, fusion_case, polynomial_case
from benchmarks.common import (
    LARGE_SHAPIQ_NAMES,
    SPARSE_NAMES,
    relative_l2,
    shapiq_skip_reason,
    upper_pairs,
    warm_up_shapiq,
)
from benchmarks.memory_probe import current_rss_mib, peak_rss_mib, reset_peak_rss
from captum_interactions.estimators.size_plan import min_sampling_budget
from captum_interactions.testing.toy_models import planted_synergy_data

SIZES = {
    "budget": ((2048, 8192, 32768), (256,)),
    "game_players": ((64, 81, 256, 1024), (40,)),
    "main_effects": (("dense", "sparse"), ("sparse",)),
    "model_players": ((64, 81, 256), (16,)),
}
SIZE_IDS = {"budget": "b", "game_players": "n", "model_players": "n"}
#: players -> (text tokens, image tokens, hidden, examples explained in the full run, Adam's
#: learning rate: None = train_tiny_fusion's 3e-3, which does not train the hidden-256 model)
MODELS: dict[int, tuple[int, int, int, int, float | None]] = {
    16: (8, 8, 16, 1, None), 64: (32, 32, 16, 2, None), 81: (32, 49, 256, 1, 1e-3),
    256: (128, 128, 16, 1, None)}
OURS: dict[str, dict[str, Any]] = {
    "ours (default)": {},
    "ours, linear CV": {"control_variate": "linear"},
    "ours, sparse CV": {"control_variate": "sparse"},
    "ours, quadratic CV": {"control_variate": "quadratic"},
}
#: Options still being added to this project's estimator: an error is recorded, not raised.
EXPERIMENTAL = {"ours, sparse CV"}
ESTIMATORS = (*OURS, *(f"shapiq {name}" for name in LARGE_SHAPIQ_NAMES))
#: Rows of the Transformers' reference (by quick); ``BENCH_REFERENCE_ROWS`` overrides the full
#: run's. Its relative stderr must stay at most a third of the errors compared (the report
#: checks): 262144 rows is 8x the largest budget, so about 1/2.8 of this project's own
#: error at 32768 rows when the reference uses the same estimator.
REFERENCE_ROWS = {True: 4096, False: 262144}
QUADRATIC_MAX = 64
SCHEMA = 2  # records of this layout; the report drops older large-player records beside them


def reference_rows(quick: bool) -> int:
    if quick:
        return REFERENCE_ROWS[True]
    return int(os.environ.get("BENCH_REFERENCE_ROWS", REFERENCE_ROWS[False]))


def feasible(estimator: str, n: int, budget: int, quick: bool) -> str:
    """Why this run is skipped ('' when it runs); the smoke run allows 1/20 of the work."""
    if estimator == "ours, quadratic CV" and n > QUADRATIC_MAX:
        return f"skipped: {n * (n - 1) // 2} surrogate coefficients"
    if estimator in OURS:
        low = min_sampling_budget(n)
        return f"skipped: the sampler needs at least 3F = {low} rows" if budget < low else ""
    return shapiq_skip_reason(estimator.removeprefix("shapiq "), n, budget,
                              scale=1 / 20 if quick else 1.0)


def run_estimator(case: Case, estimator: str, budget: int, seed: int,
                  timing: Timing) -> tuple[list[Tensor], str]:
    """The estimates (one per example), or the error message shapiq (or an experimental option
    of ours) raised."""
    try:
        return estimate(case, estimator, budget, seed, OURS, timing), ""
    except Exception as exc:
        expected = (IndexError, ValueError, MemoryError, RuntimeError, ImportError)
        if estimator in EXPERIMENTAL or (estimator not in OURS and isinstance(exc, expected)):
            return [], f"{type(exc).__name__}: {exc}"[:200]
        raise


def _malloc_trim() -> None:
    """Hand freed heap memory back to the kernel (glibc), so that reusing it counts again."""
    name = ctypes.util.find_library("c")
    if name:
        with_trim = ctypes.CDLL(name)
        if hasattr(with_trim, "malloc_trim"):
            with_trim.malloc_trim(0)


def measured(call: Callable[[], Any], device: torch.device) -> dict[str, float]:
    """Run ``call`` once: its wall ``seconds`` and peak extra memory (``peak_rss_mib``: host,
    in-process high-water mark; ``peak_cuda_mib`` on CUDA)."""
    gc.collect()
    _malloc_trim()
    figures: dict[str, float] = {}
    try:
        reset_peak_rss()
        before = current_rss_mib()
    except OSError:  # no /proc/self/clear_refs (not Linux, or not allowed)
        before = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        cuda_before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    figures["seconds"] = time.perf_counter() - start
    if before is not None:
        figures["peak_rss_mib"] = peak_rss_mib() - before
    if device.type == "cuda":
        figures["peak_cuda_mib"] = (torch.cuda.max_memory_allocated(device) - cuda_before) / 2**20
    return figures


def timed_run(benchmark: Any, case: Case, estimator: str, budget: int,
              quick: bool) -> dict[str, Any]:
    """Run (or skip) one estimator on one case with seed 0 under the benchmark fixture:
    ``estimates`` (one per example), ``error`` ('' or why not) and the record's common
    ``figures`` (times, rows, memory)."""
    reason = feasible(estimator, case.n_players, budget, quick)
    device = case.inputs[0].device
    figures: dict[str, Any] = {
        "section": "large", "schema": SCHEMA, "case": case.name, "case_note": case.note,
        "estimator": estimator, "budget": budget, "players": case.n_players}
    name = estimator.removeprefix("shapiq ")
    if not reason and name in SPARSE_NAMES:  # one-off compilation / imports, untimed
        figures["warm_up_seconds"] = warm_up_shapiq(name, case.n_players)
    timing = Timing()
    out: dict[str, Any] = {"estimates": [], "error": reason}

    def run() -> None:
        if reason:
            return

        def call() -> None:
            out["estimates"], out["error"] = run_estimator(case, estimator, budget, 0, timing)

        out["measured"] = measured(call, device)

    benchmark.pedantic(run, rounds=1, iterations=1)
    if "measured" in out:
        wall = out["measured"]["seconds"]
        examples = case.inputs[0].shape[0]
        inside = timing.model_seconds if estimator in OURS else timing.game_seconds
        figures.update(
            seconds_per_call=wall, forward_seconds=timing.model_seconds,
            own_seconds=wall - inside, rows=timing.model_rows // examples,
            **{k: v for k, v in out["measured"].items() if k != "seconds"})
        if estimator not in OURS:
            figures["game_seconds"] = timing.game_seconds
    out["figures"] = figures
    return out


def precision_at(scores: Tensor, truth: set[int], k: int) -> float | None:
    """Share of the k largest scores' indices in ``truth`` (k = min(k, |truth|)); a constant
    estimate (e.g. all zeros) ranks nothing and scores 0."""
    k = min(k, len(truth))
    if k == 0:
        return None
    if not scores.max() > scores.min():
        return 0.0
    top = torch.topk(scores, k).indices.tolist()
    return sum(i in truth for i in top) / k


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


@pytest.fixture(scope="module")
def games(device: torch.device) -> Callable[[int, str], Case]:
    """(players, "dense" | "sparse") -> planted polynomial game (closed-form SII), built once
    per module."""

    @functools.cache
    def build(n: int, main_effects: str) -> Case:
        n_main = None if main_effects == "dense" else max(1, n // 16)
        case = polynomial_case(n, device, n_pairs=n // 4, n_triples=n // 8, seed=n,
                               n_main=n_main)
        case.name = f"(d) polynomial game, {n} players, {main_effects} main effects"
        return case

    return build


@pytest.fixture(scope="module")
def models(device: torch.device, quick: bool) -> Callable[[int], tuple[Case, dict[str, Any]]]:
    """players -> (trained fusion Transformer whose ``exact`` is the long-run reference, the
    reference's figures)."""

    @functools.cache
    def build(n: int) -> tuple[Case, dict[str, Any]]:
        n_text, n_image, hidden, examples, lr = MODELS[n]
        examples = 1 if quick else examples
        start = time.perf_counter()
        case = fusion_case(n_text, n_image, device, examples=examples,
                           steps=60 if quick else 400, hidden=hidden, dtype=torch.float32,
                           lr=lr)
        train_seconds = time.perf_counter() - start
        case.name = (f"(d) trained fusion Transformer, {n} players ({n_text}+{n_image}), "
                     f"hidden {hidden}")
        text, image, labels = planted_synergy_data(512, n_text, n_image, hidden=hidden,
                                                   seed=999)
        with torch.no_grad():
            logits = case.model(text.to(device), image.to(device))
        accuracy = float((logits.argmax(1).cpu() == labels).double().mean())
        rows = reference_rows(quick)
        start = time.perf_counter()
        reference, stderr = case.attribute(rows, 12345, return_stderr=True,
                                           perturbations_per_eval=1024)
        reference_seconds = time.perf_counter() - start
        case.exact = reference.double()
        pairs = upper_pairs(case.pair_mask)
        rel_se = float(stderr[..., pairs[:, 0], pairs[:, 1]].norm()
                       / reference[..., pairs[:, 0], pairs[:, 1]].norm())
        case.note = (f"float32, {examples} held-out example(s), target logit 1, cross pairs; "
                     f"test accuracy {accuracy:.3f}; reference: ours (default) at {rows} rows "
                     f"({reference_seconds:.0f} s), relative stderr {rel_se:.4f}")
        info = {"reference_rows": rows, "reference_rel_stderr": rel_se,
                "reference_seconds": reference_seconds, "train_seconds": train_seconds,
                "hidden": hidden, "test_accuracy": accuracy}
        return case, info

    return build


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_polynomial_game(benchmark, record, games, quick, game_players, main_effects, estimator,
                         budget):
    case = games(game_players, main_effects)
    benchmark.group = f"large: {case.name}"
    pairs = upper_pairs(case.pair_mask).cpu()
    exact = case.exact[0].cpu()
    truth = set(torch.nonzero(exact[pairs[:, 0], pairs[:, 1]] != 0).flatten().tolist())
    out = timed_run(benchmark, case, estimator, budget, quick)
    figures = {**out["figures"], "truth_pairs": len(truth), "main_effects": main_effects}
    if out["error"]:
        record(**figures, error=out["error"])
        return
    est = out["estimates"][0]
    error = relative_l2(est, exact, pairs)
    assert torch.isfinite(torch.tensor(error))
    scores = est[pairs[:, 0], pairs[:, 1]].abs()
    record(**figures, rel_l2=error, precision_at_10=precision_at(scores, truth, 10),
           precision_at_20=precision_at(scores, truth, 20), n_seeds=1)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_trained_transformer(benchmark, record, models, quick, model_players, estimator, budget):
    case, info = models(model_players)
    benchmark.group = f"large: {case.name}"
    pairs = upper_pairs(case.pair_mask).cpu()
    text_i, image_j = case.planted
    planted_index = int(((pairs[:, 0] == text_i) & (pairs[:, 1] == image_j)).nonzero()[0, 0])
    out = timed_run(benchmark, case, estimator, budget, quick)
    figures = {**out["figures"], **info}
    if out["error"]:
        record(**figures, error=out["error"])
        return
    errors, hit1, hit5, p10, p20 = [], [], [], [], []
    for b, est in enumerate(out["estimates"]):
        errors.append(relative_l2(est, case.exact[b].cpu(), pairs))
        scores = est[pairs[:, 0], pairs[:, 1]]
        # Ties count against the planted pair: an all-zero estimate ranks it last.
        rank = int((scores >= scores[planted_index]).sum())
        hit1.append(float(rank <= 1))
        hit5.append(float(rank <= 5))
        reference = case.exact[b].cpu()[pairs[:, 0], pairs[:, 1]].abs()
        for k, into in ((10, p10), (20, p20)):
            top = set(torch.topk(reference, min(k, len(reference))).indices.tolist())
            into.append(precision_at(scores.abs(), top, k))
    assert all(torch.isfinite(torch.tensor(errors)))
    record(**figures, rel_l2_to_reference=sum(errors) / len(errors),
           precision_at_10=mean(p10), precision_at_20=mean(p20),
           hit_at_1=sum(hit1) / len(hit1), hit_at_5=sum(hit5) / len(hit5),
           n_seeds=1, n_examples=case.inputs[0].shape[0])
