"""Shared front end of the pair attribution methods: Captum-style argument handling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor

from captum_interactions.perturbation.engine import CoalitionEvaluator
from captum_interactions.perturbation.target import TargetSelector, TargetType
from captum_interactions.players import PairsType, Players, pair_matrix, resolve_players
from captum_interactions.removal import BaselineInput, RemovalOperator, make_removal


def format_inputs(inputs: Tensor | tuple[Tensor, ...]) -> tuple[bool, tuple[Tensor, ...]]:
    """Captum's tensor-or-tuple convention, validated: returns (was_tuple, tuple)."""
    is_tuple = isinstance(inputs, tuple)
    formatted = inputs if is_tuple else (inputs,)
    if not formatted:
        raise ValueError("inputs is an empty tuple; pass at least one tensor.")
    for m, inp in enumerate(formatted):
        if not isinstance(inp, Tensor):
            raise TypeError(f"inputs[{m}] must be a torch.Tensor, got {type(inp).__name__}.")
        if inp.dim() == 0:
            raise ValueError(f"inputs[{m}] is a scalar; inputs need a batch dimension.")
    batch_sizes = [inp.shape[0] for inp in formatted]
    if len(set(batch_sizes)) > 1:
        raise ValueError(
            f"inputs have different batch sizes {batch_sizes}: every input tensor must share "
            "the batch dimension (dim 0)."
        )
    if batch_sizes[0] == 0:
        raise ValueError("inputs have batch size 0.")
    devices = {inp.device for inp in formatted}
    if len(devices) > 1:
        raise ValueError(f"inputs live on several devices {sorted(map(str, devices))}.")
    return is_tuple, formatted


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return value


class PairAttribution(PerturbationAttribution):
    """Base of :class:`ShapleyInteractionIndex` and :class:`RedundancyGap`."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        if not callable(forward_func):
            raise TypeError("forward_func must be callable (a model or a function).")
        PerturbationAttribution.__init__(self, forward_func)

    def _setup(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        *,
        baselines: BaselineInput,
        target: TargetType,
        additional_forward_args: Any,
        feature_mask: Tensor | tuple[Tensor, ...] | None,
        pairs: PairsType,
        removal: str | RemovalOperator,
        perturbations_per_eval: int,
        show_progress: bool,
        total: int | None,
        desc: str,
    ) -> tuple[tuple[Tensor, ...], Players, Tensor, CoalitionEvaluator]:
        _, formatted = format_inputs(inputs)
        check_positive_int("perturbations_per_eval", perturbations_per_eval)
        players = resolve_players(formatted, feature_mask)
        requested = pair_matrix(players, pairs).to(formatted[0].device)
        operator = make_removal(removal, baselines)
        operator.prepare(formatted, players)
        selector = TargetSelector(target, formatted[0].shape[0])
        evaluator = CoalitionEvaluator(
            self.forward_func, formatted, players, operator, selector, additional_forward_args,
            perturbations_per_eval, show_progress=show_progress, total=total, desc=desc,
        )
        return formatted, players, requested, evaluator


def symmetric_output(values: Tensor, requested: Tensor, dtype: torch.dtype) -> Tensor:
    """Zero the diagonal and the pairs not requested, symmetrise, cast."""
    sym = 0.5 * (values + values.transpose(1, 2))
    return torch.where(requested.unsqueeze(0), sym, torch.zeros_like(sym)).to(dtype)


def scatter_pairs(per_pair: Tensor, pairs: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """(B, P) values of per-example pairs (B, P, 2) -> symmetric (B, n, n)."""
    batch = per_pair.shape[0]
    out = torch.zeros(batch, n * n, dtype=per_pair.dtype, device=per_pair.device)
    flat_ij = pairs[..., 0] * n + pairs[..., 1]
    flat_ji = pairs[..., 1] * n + pairs[..., 0]
    out.scatter_(1, flat_ij, per_pair)
    out.scatter_(1, flat_ji, per_pair)
    return out.view(batch, n, n).to(dtype)
