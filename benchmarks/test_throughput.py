"""Throughput: attribution wall time over the bare model forwards it cannot avoid.

The floor of any perturbation method is running the model on its rows. Each test times, in one
process and interleaved (bare, attribution, bare, attribution, ...):

* **bare**: the model on ``rows / chunk`` pre-built batches of ``chunk`` rows (no coalition
  sampling, no input construction, no bookkeeping);
* **ours**: ``ShapleyInteractionIndex.attribute(..., n_samples=rows,
  perturbations_per_eval=chunk)`` on the same model and example, which evaluates exactly
  ``rows`` rows in the same chunks (counted by a wrapper);
* **shapiq**: each shapiq SII approximator on the same model through the same perturbation
  engine and chunk size (its game callable), at the same budget;
* **naive Captum**: the route a user has today: FeatureAblation for the single-feature
  effects, then a Python loop over the cross-modal pairs, one forward call per pair, for the
  full-context interaction v(N) - v(N\\i) - v(N\\j) + v(N\\ij) (a cheaper quantity than SII).

``overhead = attribution time / bare time - 1``; the issue's target is at most 10% at 2048+ rows.
The model is a :class:`TinyFusionTransformer` (float32, one encoder layer, hidden/64 heads) with
``players / 2`` text and image tokens and one player per token.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import FeatureAblation
from torch import Tensor, nn

from benchmarks.cases import cross_mask
from benchmarks.common import (
    SHAPIQ_NAMES,
    CountingModel,
    interleaved_times,
    median,
    random_fusion,
    run_shapiq,
    shapiq_skip_reason,
    timed_comparison,
    token_mask,
    upper_pairs,
)
from captum_interactions import ShapleyInteractionIndex
from captum_interactions.perturbation import model_game

TARGET_OVERHEAD = 0.10
CHUNK = 256
# (players, hidden, rows per example, examples): the CPU grid stops where one side takes over a
# minute; the CUDA grid is the full range. One example is the worst case for the
# estimator's fixed costs (the surrogate fit is shared by the examples of a batch).
CPU_GRID = ((32, 256, 2048, 1), (32, 256, 8192, 1), (32, 256, 2048, 8), (128, 256, 2048, 1),
            (512, 256, 2048, 1), (32, 512, 2048, 1), (32, 768, 2048, 1))
CUDA_GRID = tuple((f, h, r, b) for f in (32, 128, 512) for h in (256, 512, 768)
                  for r in (2048, 8192) for b in (1, 8))
QUICK_GRID = ((8, 32, 256, 1),)
SIZES = {
    "config": (CPU_GRID, QUICK_GRID, CUDA_GRID),
    "shapiq_config": (((32, 256, 2048, 1), (128, 256, 2048, 1)), QUICK_GRID,
                      ((32, 256, 2048, 1), (128, 256, 2048, 1), (128, 768, 8192, 1))),
    "naive_config": (((32, 256, 2048, 1), (128, 256, 2048, 1)), QUICK_GRID,
                     ((32, 256, 2048, 1), (128, 256, 2048, 1), (512, 256, 2048, 1))),
}


def build(players: int, hidden: int, device: torch.device,
          examples: int = 1) -> tuple[CountingModel, tuple[Tensor, Tensor]]:
    return random_fusion(players // 2, players // 2, hidden, device, examples=examples)


def bare_forwards(model: nn.Module, inputs: tuple[Tensor, ...], rows: int, chunk: int):
    """``rows`` coalitions per example in chunks of ``chunk`` (chunk x B model rows a call)."""
    batch = tuple(x.repeat(chunk, *([1] * (x.dim() - 1))) for x in inputs)
    tail = rows % chunk
    last = tuple(x[: tail * inputs[0].shape[0]] for x in batch)

    def run() -> None:
        with torch.no_grad():
            for _ in range(rows // chunk):
                model(*batch)
            if tail:
                model(*last)

    return run


def test_overhead_vs_bare_forwards(benchmark, record, device, quick, config):
    players, hidden, rows, examples = config
    benchmark.group = "throughput: ours vs bare forwards"
    model, inputs = build(players, hidden, device, examples)
    sii = ShapleyInteractionIndex(model)
    bare = bare_forwards(model, inputs, rows, CHUNK)

    in_model: list[float] = []

    def ours() -> None:
        before = model.seconds
        sii.attribute(inputs, target=1, n_samples=rows, perturbations_per_eval=CHUNK)
        in_model.append(model.seconds - before)

    model.reset()
    ours()
    ours_rows = model.rows
    model.reset()
    bare()
    expected = rows * examples
    assert model.rows == expected and ours_rows == expected, (ours_rows, model.rows, expected)
    times: dict[str, list[float]] = {}

    def run() -> None:
        # 1 to 5 rounds: one when a pair of runs takes a minute.
        times.update(timed_comparison({"bare": bare, "ours": ours}, device, quick, seconds=60,
                                      min_rounds=1, max_rounds=5, warmup=0))

    benchmark.pedantic(run, rounds=1, iterations=1)
    t_bare, t_ours = median(times["bare"]), median(times["ours"])
    # Two more views, less exposed to run-to-run noise of a shared machine: each side's fastest
    # round (disturbances only ever add time), and within each attribution call its total time
    # over the time spent inside the model's forwards (same run, same machine state).
    forwards = in_model[-len(times["ours"]):]
    in_run = [total / inside - 1 for total, inside in zip(times["ours"], forwards, strict=True)]
    record(overhead_min=min(times["ours"]) / min(times["bare"]) - 1,
           overhead_in_run=median(in_run), forward_s_in_ours=median(forwards),
           section="throughput", comparison="ours vs bare", players=players, hidden=hidden,
           rows=rows, examples=examples, chunk=CHUNK, pairs=(players // 2) ** 2, bare_s=t_bare,
           ours_s=t_ours,
           overhead=t_ours / t_bare - 1, target_overhead=TARGET_OVERHEAD,
           rounds=len(times["bare"]), us_per_row_bare=t_bare / expected * 1e6,
           us_per_row_overhead=(t_ours - t_bare) / expected * 1e6)


@pytest.mark.parametrize("approximator", SHAPIQ_NAMES)
def test_shapiq_overhead(benchmark, record, device, quick, approximator, shapiq_config):
    players, hidden, rows, _ = shapiq_config
    benchmark.group = "throughput: shapiq vs bare forwards"
    skipped = shapiq_skip_reason(approximator, players, rows)
    if skipped:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        record(section="throughput", comparison="shapiq vs bare", approximator=approximator,
               players=players, hidden=hidden, rows=rows, chunk=CHUNK, error=skipped)
        return
    model, inputs = build(players, hidden, device)
    bare = bare_forwards(model, inputs, rows, CHUNK)
    game = model_game(model, inputs, target=1, perturbations_per_eval=CHUNK).as_shapiq_game()
    pairs = upper_pairs(cross_mask(players // 2, players // 2)).cpu()
    times: dict[str, list[float]] = {}
    error = ""

    def shapiq_run() -> None:
        run_shapiq(approximator, game, players, rows, 0, pairs)

    def run() -> None:
        times.update(interleaved_times({"bare": bare, "shapiq": shapiq_run},
                                       rounds=1 if quick else 2, warmup=0, device=device))

    model.reset()
    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    except (IndexError, ValueError, MemoryError) as exc:  # shapiq fails on some sizes
        error = f"{type(exc).__name__}: {exc}"[:200]
    if error:
        record(section="throughput", comparison="shapiq vs bare", approximator=approximator,
               players=players, hidden=hidden, rows=rows, chunk=CHUNK, error=error)
        return
    t_bare, t_shapiq = median(times["bare"]), median(times["shapiq"])
    shapiq_rows = (model.rows - rows * len(times["bare"])) // len(times["shapiq"])
    record(section="throughput", comparison="shapiq vs bare", approximator=approximator,
           players=players, hidden=hidden, rows=rows, chunk=CHUNK, shapiq_rows=shapiq_rows,
           bare_s=t_bare, shapiq_s=t_shapiq, overhead=t_shapiq / t_bare - 1,
           rounds=len(times["bare"]))


def naive_captum_pairs(model: nn.Module, inputs: tuple[Tensor, Tensor]) -> Tensor:
    """The per-pair route with plain Captum: FeatureAblation for v(N) - v(N\\i), then one forward
    per cross pair for v(N\\ij). Returns the (T, P) full-context interactions."""
    t, p = inputs[0].shape[1], inputs[1].shape[1]
    single = FeatureAblation(model).attribute(inputs, target=1, feature_mask=token_mask(inputs))
    drop_text, drop_image = single[0][0, :, 0], single[1][0, :, 0]
    with torch.no_grad():
        full = model(*inputs)[0, 1]
        out = torch.empty(t, p, device=inputs[0].device)
        for i in range(t):
            for j in range(p):
                text, image = inputs[0].clone(), inputs[1].clone()
                text[:, i] = 0
                image[:, j] = 0
                out[i, j] = full - model(text, image)[0, 1]
    return out - drop_text[:, None] - drop_image[None, :]


def test_naive_captum_route(benchmark, record, device, quick, naive_config):
    players, hidden, rows, _ = naive_config
    benchmark.group = "throughput: naive Captum per-pair loop"
    model, inputs = build(players, hidden, device)
    sii = ShapleyInteractionIndex(model)
    bare = bare_forwards(model, inputs, rows, CHUNK)
    times: dict[str, list[float]] = {}

    def naive() -> None:
        naive_captum_pairs(model, inputs)

    def ours() -> None:
        sii.attribute(inputs, target=1, n_samples=rows, perturbations_per_eval=CHUNK)

    model.reset()
    naive()
    naive_rows = model.rows

    def run() -> None:
        times.update(interleaved_times({"bare": bare, "ours": ours, "naive": naive},
                                       rounds=1 if quick else 2, warmup=0, device=device))

    benchmark.pedantic(run, rounds=1, iterations=1)
    t_bare, t_ours, t_naive = (median(times[k]) for k in ("bare", "ours", "naive"))
    record(section="throughput", comparison="naive captum", players=players, hidden=hidden,
           rows=rows, chunk=CHUNK, pairs=(players // 2) ** 2, naive_rows=naive_rows,
           naive_s=t_naive, ours_s=t_ours, bare_s=t_bare,
           naive_us_per_row=t_naive / naive_rows * 1e6, ours_us_per_row=t_ours / rows * 1e6,
           bare_us_per_row=t_bare / rows * 1e6,
           naive_over_ours_per_row=(t_naive / naive_rows) / (t_ours / rows),
           naive_s_per_pair=t_naive / (players // 2) ** 2,
           rounds=len(times["bare"]))
