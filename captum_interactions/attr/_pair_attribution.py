"""Shared front end of the pair attribution methods: the game they explain and the Captum-style
layout of their results."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor

from captum_interactions.estimators.sii_adaptive import DEFAULT_MAX_SAMPLES
from captum_interactions.perturbation.game import ModelGame, OutputSelector, model_game
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType, pair_matrix, resolve_players
from captum_interactions.removal import BaselineInput, RemovalSpec
from captum_interactions.result import (
    CONTEXT_DEFAULTS,
    PairInteractions,
    PlayerNames,
    describe_players,
)
from captum_interactions.validation import check_callable, format_inputs

#: The arguments of ``attribute`` that are not part of a result's settings.
_NOT_SETTINGS = {"self", "inputs", "return_stderr", "sii", "show_progress",
                 "perturbations_per_eval"}
#: Arguments of an adaptive budget (``n_samples="auto"``): settings only when it is one.
_ADAPTIVE_SETTINGS = {"target_stderr", "stderr_scale", "max_samples", "stop_when", "top_k",
                      "initial_samples"}


class PairAttribution(PerturbationAttribution):
    """Base of :class:`ShapleyInteractionIndex` and :class:`RedundancyGap`."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        PerturbationAttribution.__init__(self, forward_func)

    #: What :meth:`explain` names its values.
    kind = "pairs"

    def explain(self, inputs: Tensor | tuple[Tensor, ...] | list[Tensor], *args: Any,
                player_names: PlayerNames = None, **kwargs: Any) -> PairInteractions:
        """:meth:`attribute` with standard errors, as a :class:`PairInteractions` that keeps
        the players' names and the context of the game (baselines, mask, target, removal,
        budget, seed): ``top_pairs(k)``, ``heatmap(...)``, ``as_tensor()``; the metrics take
        it and reuse its context.

        Args:
            inputs, *args, **kwargs: every argument of :meth:`attribute` except
                ``return_stderr``.
            player_names (optional): names of some players: a mapping id -> name (or a list
                of F names) for every example, or one per example (e.g. from
                :func:`captum_interactions.adapters.token_names`). Players without a name
                are described by position (``"in0[3]"``, ``"in1 patch (2, 4)"``).

        Returns:
            *PairInteractions*. With ``n_samples="auto"`` its ``settings`` also hold, per
            example, ``n_samples_used`` (rows evaluated; the same for every example, which
            share the rows), ``target_met`` and ``max_stderr`` (the largest standard error
            of the requested pairs), ``topk_separation`` with ``stop_when="topk"``, and
            ``checks`` (how many blocks were drawn).

        Examples::

            >>> result = ShapleyInteractionIndex(model).explain(
            ...     (text, image), target=3, n_samples=2048, player_names=words)
            >>> print(result.summary(5))
        """
        if "return_stderr" in kwargs:
            raise TypeError("explain() always computes standard errors; drop return_stderr.")
        bound = inspect.signature(self.attribute).bind(inputs, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        main = main_stderr = empty = None
        report: dict[str, Any] = {}
        estimate_all = getattr(self, "_estimate", None)
        if estimate_all is not None:  # SII: main effects from the same rows too
            estimate, requested, dtype = estimate_all(
                **{k: v for k, v in arguments.items() if k != "return_stderr"})
            values = symmetric_output(estimate.values, requested, dtype)
            stderr = symmetric_output(estimate.stderr, requested, dtype)
            if estimate.main is not None and estimate.main_stderr is not None:
                main, main_stderr = estimate.main.to(dtype), estimate.main_stderr.to(dtype)
            empty = None if estimate.empty is None else estimate.empty.to(dtype)
            if estimate.budget is not None:  # n_samples="auto": how the budget ended
                budget = estimate.budget
                cap = arguments.get("max_samples")
                report = {"n_samples_used": [budget.rows] * len(budget.target_met),
                          "target_met": budget.target_met, "max_stderr": budget.max_stderr,
                          "checks": budget.checks,
                          "max_samples": DEFAULT_MAX_SAMPLES if cap is None else cap}
                if budget.separation is not None:
                    report["topk_separation"] = budget.separation
        formatted = format_inputs(inputs)
        players = resolve_players(formatted, arguments["feature_mask"])
        if estimate_all is None:
            values, stderr = self.attribute(inputs, *args, return_stderr=True, **kwargs)
            requested = pair_matrix(players, arguments["pairs"])
        return PairInteractions(
            values=values, stderr=stderr, kind=self.kind,
            player_names=describe_players(formatted, players, player_names),
            inputs=formatted,
            context={name: arguments[name] for name in CONTEXT_DEFAULTS},
            settings={**{name: value for name, value in arguments.items()
                         if name not in _NOT_SETTINGS and name not in CONTEXT_DEFAULTS
                         and (name not in _ADAPTIVE_SETTINGS
                              or arguments.get("n_samples") == "auto")}, **report},
            requested=requested.to(values.device),
            main_effects=main, main_stderr=main_stderr, empty_value=empty,
        )

    def _game(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        *,
        baselines: BaselineInput,
        target: TargetType,
        additional_forward_args: Any,
        feature_mask: Tensor | tuple[Tensor, ...] | None,
        pairs: PairsType,
        removal: RemovalSpec,
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
