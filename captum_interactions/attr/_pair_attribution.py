"""Shared front end of the pair attribution methods: the game they explain and the Captum-style
layout of their results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor

from captum_interactions.modes import RemovalMode
from captum_interactions.perturbation.game import ModelGame, OutputSelector, model_game
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType
from captum_interactions.removal import BaselineInput, RemovalOperator
from captum_interactions.validation import check_callable


class PairAttribution(PerturbationAttribution):
    """Base of :class:`ShapleyInteractionIndex` and :class:`RedundancyGap`."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        PerturbationAttribution.__init__(self, forward_func)

    def _game(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        *,
        baselines: BaselineInput,
        target: TargetType,
        additional_forward_args: Any,
        feature_mask: Tensor | tuple[Tensor, ...] | None,
        pairs: PairsType,
        removal: RemovalMode | RemovalOperator,
        perturbations_per_eval: int,
        show_progress: bool,
        output: OutputSelector,
    ) -> ModelGame:
        """The game of ``forward_func`` on ``inputs`` (every argument validated)."""
        return model_game(
            self.forward_func, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
            pairs=pairs, removal=removal, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress, output=output,
        )


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
