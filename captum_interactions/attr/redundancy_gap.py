"""Captum-style Redundancy Gap (RG): which feature pairs are backups for each other."""

from __future__ import annotations

from typing import Any, Literal, overload

import torch
from torch import Tensor

from captum_interactions.attr._pair_attribution import (
    PairAttribution,
    scatter_pairs,
    symmetric_output,
)
from captum_interactions.estimators.exact import MAX_EXACT_PLAYERS, check_exact_players
from captum_interactions.estimators.redundancy import (
    check_full_context_budget,
    exact_redundancy,
    full_context_redundancy,
    quartets_per_pair,
    sampled_redundancy,
)
from captum_interactions.estimators.sii_sampling import estimate_sii
from captum_interactions.modes import Context, Method
from captum_interactions.perturbation.game import ModelGame, OutputSelector
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType
from captum_interactions.removal import BaselineInput, RemovalSpec
from captum_interactions.result import PairInteractions
from captum_interactions.usage_log import log_usage
from captum_interactions.validation import (
    check_bool,
    check_choice,
    check_pair_scores,
    check_positive_int,
    check_samples,
    check_seed,
)


class RedundancyGap(PairAttribution):
    r"""Redundancy Gap of feature pairs: the part of the smaller standalone contribution that
    becomes unnecessary once the partner is present.

    With Δ_i(S) = v(S ∪ {i}) - v(S) and Δ_ij(S) = v(S ∪ {i,j}) - v(S ∪ {i}) - v(S ∪ {j}) + v(S),

    .. math::
        RG(i, j) = \mathbb{E}_{S \sim p}\Big[\operatorname{clip}\big(-\Delta_{ij}(S),\ 0,\
        \max(0, \min(\Delta_i(S), \Delta_j(S)))\big)\Big],

    where p is the SII distribution over S ⊆ N∖{i, j} (size uniform on 0..n-2, then a uniform
    subset). ``context="full"`` uses only S = N∖{i, j}: deletion from the full input.
    For two players, an OR game (each suffices) has RG = 1, an AND game RG = 0.

    RG is not linear in v, so each sample is a quartet (S, S∪i, S∪j, S∪ij) for one pair and the
    cost grows linearly with the number of pairs. Keep that number bounded with an explicit
    (P, 2) ``pairs`` tensor or with ``candidates=k``: the k pairs with the most negative SII
    per example (SII estimated first on the same game with ``sii_n_samples`` extra rows per
    example, or taken from ``sii`` values the caller already has).

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row.

    Examples::

        >>> rg = RedundancyGap(model)
        >>> values = rg.attribute((text, image), target=3, n_samples=4096, candidates=16)
        >>> values.shape  # (B, F, F), non-zero only on each example's 16 candidate pairs
        torch.Size([2, 24, 24])
        >>> # SII already computed: candidates come from it, no second SII pass
        >>> sii = ShapleyInteractionIndex(model).attribute((text, image), target=3)
        >>> values = rg.attribute((text, image), target=3, candidates=16, sii=sii)
    """

    kind = "RG"

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        context: Context = ...,
        candidates: int | None = ...,
        sii: Tensor | PairInteractions | None = ...,
        sii_n_samples: int | None = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: Literal[False] = ...,
        seed: int = ...,
    ) -> Tensor: ...

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        context: Context = ...,
        candidates: int | None = ...,
        sii: Tensor | PairInteractions | None = ...,
        sii_n_samples: int | None = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: Literal[True],
        seed: int = ...,
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        context: Context = ...,
        candidates: int | None = ...,
        sii: Tensor | PairInteractions | None = ...,
        sii_n_samples: int | None = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: bool,
        seed: int = ...,
    ) -> Tensor | tuple[Tensor, Tensor]: ...

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 2048,
        perturbations_per_eval: int = 256,
        show_progress: bool = False,
        *,
        pairs: PairsType = "cross",
        context: Context = "sampled",
        candidates: int | None = None,
        sii: Tensor | PairInteractions | None = None,
        sii_n_samples: int | None = None,
        method: Method = "sampling",
        removal: RemovalSpec = "baseline",
        output: OutputSelector = None,
        return_stderr: bool = False,
        seed: int = 0,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Estimate the Redundancy Gap of the requested (or candidate) pairs.

        Args:
            inputs, baselines, target, additional_forward_args, feature_mask, pairs,
            removal, output, show_progress, perturbations_per_eval, seed: as in
                :meth:`ShapleyInteractionIndex.attribute`.
            n_samples (int, optional): model rows per example for RG; never exceeded. With
                ``context="sampled"`` each pair gets ``n_samples // (4 P)`` quartets (at least
                2 are needed); ``context="full"`` needs 3P + 1 rows. Default: 2048.
            context (str, optional): ``"sampled"`` (expectation over S ~ p) or ``"full"``
                (S = N∖{i, j}). Default: ``"sampled"``.
            candidates (int, optional): evaluate RG only on each example's ``candidates``
                requested pairs with the most negative SII. Default: all requested pairs.
            sii (Tensor or PairInteractions, optional): (B, F, F) SII values (e.g. from
                :meth:`ShapleyInteractionIndex.attribute` or ``explain`` on the same inputs)
                to choose the
                candidates from; without it the SII is estimated first, on the same game.
                Only with ``candidates``. Default: None.
            sii_n_samples (int, optional): SII budget per example for choosing candidates
                when ``sii`` is not given. Default: ``n_samples``.
            method (str, optional): ``"sampling"`` or ``"exact"`` (enumerates every S; at
                most ``MAX_EXACT_PLAYERS`` players). Default: ``"sampling"``.
            return_stderr (bool, optional): also return standard errors (zero for exact and
                full-context values). Default: False.

        Returns:
            *Tensor* or (*Tensor*, *Tensor*):
            - **values** (B, F, F): symmetric RG over player ids (>= 0), zero diagonal, zero
              for pairs not evaluated.
            - **stderr** (B, F, F), only if ``return_stderr``.
        """
        if isinstance(sii, PairInteractions):
            if sii.kind != "SII":
                raise ValueError(f"sii= must hold SII values, got a {sii.kind} result.")
            sii = sii.values
        context = check_choice("context", context, Context)
        method = check_choice("method", method, Method)
        given: object = n_samples  # checked at run time whatever the annotation says
        if given == "auto":
            raise ValueError(
                "n_samples='auto' (an adaptive budget) is available for "
                "ShapleyInteractionIndex only: RedundancyGap samples one quartet per pair and "
                "needs an int n_samples.")
        n_samples = check_samples("n_samples", n_samples)
        seed = check_seed(seed)
        return_stderr = check_bool("return_stderr", return_stderr)
        if sii_n_samples is not None:
            sii_n_samples = check_samples("sii_n_samples", sii_n_samples)
        with self._game(
            inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
            pairs=pairs, removal=removal, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress, output=output,
        ) as game:
            # Every check that needs only the number of pairs runs before the candidate SII
            # pass and before any forward call.
            n_pairs = self._count_pairs(game.requested_pairs, candidates, sii)
            if context == "sampled" and method == "exact":
                check_exact_players(game.n_players)
            if method == "sampling":
                if context == "full":
                    check_full_context_budget(n_samples, n_pairs)
                else:
                    quartets_per_pair(n_samples, n_pairs)
            pair_list = self._candidate_pairs(game, candidates, sii,
                                              sii_n_samples or n_samples, seed)
            # A budget that covers all 2^F coalitions gets the exact value for fewer rows (as
            # the SII sampler enumerates every size the budget covers).
            covered = game.n_players <= MAX_EXACT_PLAYERS and 2**game.n_players <= n_samples
            if context == "full":
                per_pair = full_context_redundancy(game, pair_list)
                err = torch.zeros_like(per_pair)
            elif method == "exact" or covered:
                per_pair = exact_redundancy(game, pair_list)
                err = torch.zeros_like(per_pair)
            else:
                per_pair, err = sampled_redundancy(game, pair_list, n_samples, seed=seed)
        n, dtype = game.n_players, game.output_dtype
        values = scatter_pairs(per_pair, pair_list, n, dtype)
        if return_stderr:
            return values, scatter_pairs(err, pair_list, n, dtype)
        return values

    @staticmethod
    def _count_pairs(requested: Tensor, candidates: int | None, sii: Tensor | None) -> int:
        """P, the number of pairs RG is evaluated on per example (validates ``candidates``)."""
        n_requested = int(torch.triu(requested, diagonal=1).sum())
        if candidates is None:
            if sii is not None:
                raise ValueError(
                    "sii is only used to choose candidates: pass candidates=k with it, or "
                    "drop sii to evaluate every requested pair."
                )
            return n_requested
        candidates = check_positive_int("candidates", candidates)
        if candidates > n_requested:
            raise ValueError(
                f"candidates={candidates} exceeds the {n_requested} requested pairs."
            )
        return candidates

    @staticmethod
    def _candidate_pairs(
        game: ModelGame, candidates: int | None, sii: Tensor | None, sii_n_samples: int,
        seed: int,
    ) -> Tensor:
        """(B, P, 2) pairs per example: all requested pairs, or the top ones by -SII."""
        all_pairs = game.pair_index  # (P, 2), i < j
        batch, n = game.n_examples, game.n_players
        if candidates is None:
            return all_pairs.unsqueeze(0).expand(batch, -1, -1)
        if sii is None:
            estimate = estimate_sii(game, sii_n_samples, seed=seed)
            sii = symmetric_output(estimate.values, game.requested_pairs, game.output_dtype)
        scores = check_pair_scores("sii", sii, all_pairs, batch, n, game.device)  # (B, P)
        top = (-scores).topk(candidates, dim=1).indices
        return all_pairs[top]
