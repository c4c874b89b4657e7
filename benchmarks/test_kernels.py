"""Training and evaluation kernels: vectorised code against the loop a user would write.

Three comparisons, each on the same inputs and parameters, timed interleaved (a, b, a, b, ...)
and reported as medians with ``speedup = loop / batched`` (the issue's target is ≥ 5×; the tests
only measure, they never assert speed). Each test first checks that both sides compute the same
numbers, so that the times compare the same work.

* **Training step** (``kernel="training step"``): one FL-I2MoE step (forward, loss, backward) of
  the vectorised layer, where all (M + 1)(M + 2) (variant, expert) passes travel in a few
  batched kernels, against ``fl_i2moe_layer/model/reference.py``, one expert pass at a time.
  Check: equal losses. The step functions are shared with ``benchmarks/train_step.py``.
* **Top-K% masking** (``kernel="top-K% masking"``): :func:`topk_masking`, which stacks the
  unperturbed input, every K and every random repeat (comprehensiveness and sufficiency) into one
  coalition tensor and evaluates it in ``ceil(rows / max_rows_per_eval)`` forward calls, against
  a per-K, per-repeat loop: build the masked batch for one K (or one random draw) and call the
  model once for it. Check: equal original scores, comprehensiveness and sufficiency of the
  ranked selection (the random control draws different players on each side by design).
* **Pair masking** (``kernel="pair masking"``): :meth:`PairMaskingFaithfulness.evaluate` against
  a per-budget, per-repeat loop removing the players of the top-b (or b random) pairs, one
  forward call each; both sides then run the same exchange test on their drops. Check: equal
  original scores and ranked drops.

The masking model is :class:`TinyFusionTransformer` (untrained: the timing and the equality
checks do not depend on its weights) with 32 text + 32 image tokens, 8 examples, one player per
token and baseline (zero) removal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import median, timed_comparison
from benchmarks.train_step import StepConfig, training_steps
from captum_interactions.metrics import PairMaskingFaithfulness, topk_masking
from captum_interactions.metrics.pair_masking import N_NULL_DRAWS
from captum_interactions.metrics.paired_test import exchange_test, zero_tolerance
from captum_interactions.perturbation.game import DEFAULT_MAX_ROWS_PER_EVAL
from captum_interactions.testing import TinyFusionTransformer

TRAIN_CASES = {
    "M=2 default": StepConfig(modalities=2, batch=32, tokens=32, hidden=128, layers=2, heads=4),
    "M=2 small": StepConfig(modalities=2, batch=8, tokens=8, hidden=32, layers=2, heads=2),
    "M=3": StepConfig(modalities=3, batch=16, tokens=16, hidden=64, layers=2, heads=4),
    "tiny": StepConfig(modalities=2, batch=4, tokens=4, hidden=16, layers=1, heads=2),
}


@dataclass(frozen=True)
class MaskingCase:
    """A masking workload: B examples of T text + P image tokens of width H."""

    batch: int
    tokens: int  # per modality (T = P)
    hidden: int
    layers: int
    heads: int
    ks: tuple[float, ...]  # top-K% masking
    budgets: tuple[int, ...]  # pair masking
    n_random: int

    def label(self) -> str:
        return (f"TinyFusionTransformer H={self.hidden}, {self.layers} layers; B={self.batch}, "
                f"T=P={self.tokens}; n_random={self.n_random}")


MASK_CASES = {
    "fusion": MaskingCase(batch=8, tokens=32, hidden=64, layers=2, heads=4,
                          ks=(5, 10, 15, 20, 25), budgets=(1, 2, 4, 8, 16), n_random=10),
    "tiny": MaskingCase(batch=4, tokens=8, hidden=16, layers=1, heads=2,
                        ks=(10, 25), budgets=(1, 4), n_random=2),
}

SIZES = {
    "train_case": (("M=2 small", "M=2 default", "M=3"), ("tiny",)),
    "mask_case": (("fusion",), ("tiny",)),
}
TARGET_SPEEDUP = 5.0  # the goal, recorded next to the measured ratio


def figures(times: dict[str, list[float]], batched: str, loop: str) -> dict[str, Any]:
    """Medians in ms and the speedup loop / batched, for ``record``."""
    b, s = median(times[batched]), median(times[loop])
    return {"batched_ms": b * 1e3, "loop_ms": s * 1e3, "speedup": s / b,
            "batched_min_ms": min(times[batched]) * 1e3, "loop_min_ms": min(times[loop]) * 1e3,
            "rounds": len(times[batched]), "target_speedup": TARGET_SPEEDUP}


# --------------------------------------------------------------------------- training step


def test_training_step(benchmark: Any, record: Callable[..., None], device: torch.device,
                       quick: bool, train_case: str) -> None:
    config = TRAIN_CASES[train_case]
    benchmark.group = "kernels: training step"
    steps = training_steps(config, device)
    # Correctness, not speed: both paths compute one function on one batch.
    torch.testing.assert_close(steps.loss_vectorised, steps.loss_sequential,
                               rtol=1e-4, atol=1e-5)
    out: dict[str, dict[str, list[float]]] = {}

    def run() -> None:
        out["times"] = timed_comparison(
            {"vectorised": steps.vectorised, "sequential": steps.sequential}, device, quick,
            seconds=20.0,
        )

    benchmark.pedantic(run, rounds=1, iterations=1)
    numbers = figures(out["times"], "vectorised", "sequential")
    record(section="kernels", kernel="training step", config=config.label(),
           vectorised_ms=numbers["batched_ms"], sequential_ms=numbers["loop_ms"],
           expert_passes=(config.modalities + 1) * (config.modalities + 2), **numbers)


# --------------------------------------------------------------------------- masking setup


@dataclass
class MaskingSetup:
    model: nn.Module
    inputs: tuple[Tensor, Tensor]
    target: Tensor  # (B,) class explained per example
    case: MaskingCase


def masking_setup(case: MaskingCase, device: torch.device) -> MaskingSetup:
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=case.hidden, n_layers=case.layers, n_heads=case.heads,
                                  max_len=2 * case.tokens).to(device).eval()
    shape = (case.batch, case.tokens, case.hidden)
    inputs = (torch.randn(shape, device=device), torch.randn(shape, device=device))
    with torch.no_grad():
        target = model(*inputs).argmax(1)
    return MaskingSetup(model, inputs, target, case)


def score_of(model: nn.Module, inputs: Sequence[Tensor], keep: Tensor, target: Tensor) -> Tensor:
    """(B,) float64 target score with the tokens where ``keep`` (B, T + P) is False set to the
    baseline 0: the removal ``topk_masking`` and ``PairMaskingFaithfulness`` use by default."""
    masked, start = [], 0
    for x in inputs:
        part = keep[:, start : start + x.shape[1], None]
        masked.append(torch.where(part, x, torch.zeros((), dtype=x.dtype, device=x.device)))
        start += x.shape[1]
    with torch.no_grad():
        return model(*masked).gather(1, target[:, None])[:, 0].double()


def forward_calls(coalitions: int, batch: int) -> int:
    """Forward calls of the batched metrics: max_rows_per_eval // B coalitions per call."""
    return math.ceil(coalitions / (DEFAULT_MAX_ROWS_PER_EVAL // batch))


def count_of(k: float, n: int) -> int:
    """Players in the top K% of n: round half up, at least 1, at most n (topk_masking's rule)."""
    return min(n, max(1, math.floor(k / 100 * n + 0.5)))


# --------------------------------------------------------------------------- top-K% masking


def topk_loop(model: nn.Module, inputs: Sequence[Tensor], scores: Tensor, target: Tensor,
              ks: Sequence[float], n_random: int) -> dict[str, Tensor]:
    """Top-K% masking per modality as a user writes it: for every K, select the top K% tokens
    of each modality and call the model with them removed (comprehensiveness) and with only
    them kept (sufficiency); then the same for ``n_random`` random selections per K. One forward
    call of B rows per (K, repeat, side)."""
    batch, n_players = scores.shape
    lengths = [x.shape[1] for x in inputs]
    starts = [sum(lengths[:m]) for m in range(len(lengths))]
    all_kept = torch.ones(batch, n_players, dtype=torch.bool, device=scores.device)
    original = score_of(model, inputs, all_kept, target)
    comp, suff, rcomp, rsuff = [], [], [], []
    for k in ks:
        top = torch.zeros_like(all_kept)
        for start, n in zip(starts, lengths, strict=True):
            best = scores[:, start : start + n].topk(count_of(k, n), dim=1).indices
            top.scatter_(1, start + best, True)
        comp.append(original - score_of(model, inputs, ~top, target))
        suff.append(original - score_of(model, inputs, top, target))
        rc, rs = [], []
        for _ in range(n_random):
            pick = torch.zeros_like(all_kept)
            for start, n in zip(starts, lengths, strict=True):
                order = torch.rand(batch, n, device=scores.device).argsort(dim=1)
                pick.scatter_(1, start + order[:, : count_of(k, n)], True)
            rc.append(original - score_of(model, inputs, ~pick, target))
            rs.append(original - score_of(model, inputs, pick, target))
        rcomp.append(torch.stack(rc, 1))
        rsuff.append(torch.stack(rs, 1))
    comp_t, suff_t = torch.stack(comp, 1), torch.stack(suff, 1)
    rcomp_t, rsuff_t = torch.stack(rcomp, 1), torch.stack(rsuff, 1)  # (B, n_k, n_random)
    return {"original": original, "comprehensiveness": comp_t, "sufficiency": suff_t,
            "aopc_comprehensiveness": comp_t.mean(1), "aopc_sufficiency": suff_t.mean(1),
            "random_comprehensiveness": rcomp_t, "random_sufficiency": rsuff_t}


def test_topk_masking(benchmark: Any, record: Callable[..., None], device: torch.device,
                      quick: bool, mask_case: str) -> None:
    setup = masking_setup(MASK_CASES[mask_case], device)
    case, model, inputs, target = setup.case, setup.model, setup.inputs, setup.target
    benchmark.group = "kernels: top-K% masking"
    # Continuous random scores: no ties, so both sides select the same top players.
    scores = torch.randn(case.batch, 2 * case.tokens, device=device)

    def batched() -> Any:
        return topk_masking(model, inputs, scores, ks=case.ks, target=target,
                            n_random=case.n_random)

    def loop() -> dict[str, Tensor]:
        return topk_loop(model, inputs, scores, target, case.ks, case.n_random)

    ours, ref = batched(), loop()
    # Same numbers on the deterministic parts (ranked removal). They were bitwise equal on CPU;
    # the tight tolerance leaves room for kernels whose rounding depends on the batch size.
    tol = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(ours.original, ref["original"], **tol)
    torch.testing.assert_close(ours.comprehensiveness, ref["comprehensiveness"], **tol)
    torch.testing.assert_close(ours.sufficiency, ref["sufficiency"], **tol)
    assert ours.random_comprehensiveness.shape == ref["random_comprehensiveness"].shape
    out: dict[str, dict[str, list[float]]] = {}

    def run() -> None:
        out["times"] = timed_comparison({"batched": batched, "loop": loop}, device, quick,
                                        seconds=15.0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    coalitions = 1 + 2 * len(case.ks) * (1 + case.n_random)
    record(section="kernels", kernel="top-K% masking", config=case.label(),
           ks=list(case.ks), n_random=case.n_random,
           batched_calls=forward_calls(coalitions, case.batch), loop_calls=coalitions,
           rows=coalitions * case.batch, **figures(out["times"], "batched", "loop"))


# --------------------------------------------------------------------------- pair masking


def pair_loop(model: nn.Module, inputs: Sequence[Tensor], scores: Tensor, target: Tensor,
              budgets: Sequence[int], n_random: int, seed: int = 0) -> dict[str, Tensor]:
    """Pair masking as a user writes it: rank the cross-modal pairs, and for every budget b
    remove the players of the top-b pairs (then of b random pairs, ``n_random`` times) with one
    forward call each; then the same paired exchange test as the batched code."""
    batch, n_players = scores.shape[:2]
    n_text = inputs[0].shape[1]
    text, image = torch.arange(n_text), torch.arange(n_text, n_players)
    pairs = torch.cartesian_prod(text, image).to(scores.device)  # (P, 2): every text-image pair
    pair_scores = 0.5 * (scores[:, pairs[:, 0], pairs[:, 1]] + scores[:, pairs[:, 1], pairs[:, 0]])
    all_kept = torch.ones(batch, n_players, dtype=torch.bool, device=scores.device)
    original = score_of(model, inputs, all_kept, target)
    ranked, random_drop = [], []
    for b in budgets:
        top = pair_scores.topk(b, dim=1).indices  # (B, b)
        removed = torch.zeros_like(all_kept).scatter_(1, pairs[top].flatten(1), True)
        ranked.append(original - score_of(model, inputs, ~removed, target))
        drops = []
        for _ in range(n_random):
            pick = torch.rand(batch, pairs.shape[0], device=scores.device).argsort(dim=1)[:, :b]
            removed = torch.zeros_like(all_kept).scatter_(1, pairs[pick].flatten(1), True)
            drops.append(original - score_of(model, inputs, ~removed, target))
        random_drop.append(torch.stack(drops, 1))
    ranked_t, random_t = torch.stack(ranked, 1), torch.stack(random_drop, 1)
    tol = zero_tolerance(original, torch.float32)
    p_value = exchange_test(ranked_t, random_t, tol, "greater", n_draws=N_NULL_DRAWS, seed=seed)
    return {"original": original, "ranked_drop": ranked_t, "random_drop": random_t,
            "gap": (ranked_t - random_t.mean(-1)).mean(0), "p_value": p_value}


def test_pair_masking(benchmark: Any, record: Callable[..., None], device: torch.device,
                      quick: bool, mask_case: str) -> None:
    setup = masking_setup(MASK_CASES[mask_case], device)
    case, model, inputs, target = setup.case, setup.model, setup.inputs, setup.target
    benchmark.group = "kernels: pair masking"
    n_players = 2 * case.tokens
    scores = torch.randn(case.batch, n_players, n_players, device=device)
    metric = PairMaskingFaithfulness(model)

    def batched() -> Any:
        return metric.evaluate(inputs, scores, budgets=case.budgets, n_random=case.n_random,
                               target=target)

    def loop() -> dict[str, Tensor]:
        return pair_loop(model, inputs, scores, target, case.budgets, case.n_random)

    ours, ref = batched(), loop()
    tol = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(ours.original, ref["original"], **tol)
    torch.testing.assert_close(ours.ranked_drop, ref["ranked_drop"], **tol)
    assert ours.random_drop.shape == ref["random_drop"].shape
    out: dict[str, dict[str, list[float]]] = {}

    def run() -> None:
        out["times"] = timed_comparison({"batched": batched, "loop": loop}, device, quick,
                                        seconds=15.0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    coalitions = 1 + len(case.budgets) * (1 + case.n_random)
    record(section="kernels", kernel="pair masking", config=case.label(),
           budgets=list(case.budgets), n_random=case.n_random, n_pairs=case.tokens ** 2,
           batched_calls=forward_calls(coalitions, case.batch), loop_calls=coalitions,
           rows=coalitions * case.batch,
           **figures(out["times"], "batched", "loop"))
