"""Shared front end of the masking metrics: argument checks and one CoalitionEvaluator.

The metrics reuse the attribution core unchanged: players from ``feature_mask``, a removal
operator, Captum target selection and the chunked :class:`CoalitionEvaluator`. What they add is
``max_rows_per_eval``, a bound on the rows of one forward call (the engine's chunk is counted
in coalitions per example, so it is ``max_rows_per_eval // B``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_interactions.attr._pair_attribution import check_positive_int, format_inputs
from captum_interactions.perturbation.engine import CoalitionEvaluator
from captum_interactions.perturbation.target import TargetSelector, TargetType
from captum_interactions.players import Players, resolve_players
from captum_interactions.removal import BaselineInput, RemovalOperator, make_removal

DEFAULT_MAX_ROWS = 4096


def resolve_inputs(
    inputs: Tensor | tuple[Tensor, ...],
    feature_mask: Tensor | tuple[Tensor, ...] | None,
    max_rows_per_eval: int,
) -> tuple[tuple[Tensor, ...], Players, int]:
    """Validate inputs, players and the row bound; returns (inputs, players, coalitions/call)."""
    _, formatted = format_inputs(inputs)
    batch = formatted[0].shape[0]
    max_rows = check_positive_int("max_rows_per_eval", max_rows_per_eval)
    if max_rows < batch:
        raise ValueError(
            f"max_rows_per_eval={max_rows} is smaller than the batch size {batch}: one forward "
            "call evaluates a coalition for every example. Raise max_rows_per_eval or pass "
            "fewer examples."
        )
    players = resolve_players(formatted, feature_mask)
    return formatted, players, max_rows // batch


def make_evaluator(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    players: Players,
    *,
    baselines: BaselineInput,
    target: TargetType,
    additional_forward_args: Any,
    removal: str | RemovalOperator,
    coalitions_per_call: int,
    show_progress: bool,
    desc: str,
) -> CoalitionEvaluator:
    """Removal operator and target checked, then the engine (no forward call yet)."""
    operator = make_removal(removal, baselines)
    operator.prepare(inputs, players)
    selector = TargetSelector(target, inputs[0].shape[0])
    return CoalitionEvaluator(
        forward_func, inputs, players, operator, selector, additional_forward_args,
        coalitions_per_call, show_progress=show_progress, desc=desc,
    )


def run(evaluator: CoalitionEvaluator, present: Tensor) -> Tensor:
    """v of every stacked coalition (R, B, F) -> (R, B) float64, in ceil(R / chunk) calls."""
    evaluator.expect(present.shape[0])
    try:
        return evaluator.evaluate(present)
    finally:
        evaluator.close()


def check_callable(forward_func: Any) -> None:
    if not callable(forward_func):
        raise TypeError("forward_func must be callable (a model or a function).")


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}.")
    return value


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}.")
    return seed


def check_finite(name: str, value: Tensor) -> None:
    bad = ~torch.isfinite(value)
    if bad.any():
        where = torch.nonzero(bad)[0].tolist()
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or Inf value(s), e.g. at index {where}; "
            f"{name} must be finite."
        )


def as_number_list(name: str, values: Any) -> list[float | int]:
    """A non-empty sequence of real numbers (a single number is accepted too)."""
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}.")
    if len(values) == 0:
        raise ValueError(f"{name} is empty; pass at least one value.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must hold numbers, got {value!r}.")
    return list(values)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on the inputs' device: runs are reproducible on the same device."""
    return torch.Generator(device=device).manual_seed(seed)
