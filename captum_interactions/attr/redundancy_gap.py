"""Captum-style Redundancy Gap (RG): which feature pairs are backups for each other."""

from __future__ import annotations

from typing import Any

import torch
from captum.log import log_usage
from torch import Tensor

from captum_interactions.attr._pair_attribution import (
    PairAttribution,
    check_positive_int,
    scatter_pairs,
)
from captum_interactions.attr.shapley_interaction_index import ShapleyInteractionIndex
from captum_interactions.estimators.exact import check_exact_players, value_table
from captum_interactions.estimators.redundancy import (
    exact_redundancy,
    full_context_redundancy,
    sampled_redundancy,
)
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType
from captum_interactions.removal import BaselineInput, RemovalOperator

CONTEXTS = ("sampled", "full")
METHODS = ("sampling", "exact")


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
    per example (SII estimated first with ``sii_n_samples`` extra rows per example).

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row.

    Examples::

        >>> rg = RedundancyGap(model)
        >>> values = rg.attribute((text, image), target=3, n_samples=4096, candidates=16)
        >>> values.shape  # (B, F, F), non-zero only on each example's 16 candidate pairs
        torch.Size([2, 24, 24])
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: BaselineInput = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 2048,
        perturbations_per_eval: int = 256,
        show_progress: bool = False,
        *,
        pairs: PairsType = "cross",
        context: str = "sampled",
        candidates: int | None = None,
        sii_n_samples: int | None = None,
        method: str = "sampling",
        removal: str | RemovalOperator = "baseline",
        return_stderr: bool = False,
        seed: int = 0,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Estimate the Redundancy Gap of the requested (or candidate) pairs.

        Args:
            inputs, baselines, target, additional_forward_args, feature_mask, pairs,
            removal, show_progress, perturbations_per_eval, seed: as in
                :meth:`ShapleyInteractionIndex.attribute`.
            n_samples (int, optional): model rows per example for RG; never exceeded. With
                ``context="sampled"`` each pair gets ``n_samples // (4 P)`` quartets (at least
                2 are needed); ``context="full"`` needs 3P + 1 rows. Default: 2048.
            context (str, optional): ``"sampled"`` (expectation over S ~ p) or ``"full"``
                (S = N∖{i, j}). Default: ``"sampled"``.
            candidates (int, optional): evaluate RG only on each example's ``candidates``
                requested pairs with the most negative SII. Default: all requested pairs.
            sii_n_samples (int, optional): SII budget per example for choosing candidates.
                Default: ``n_samples``.
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
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}.")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        n_samples = check_positive_int("n_samples", n_samples)
        common = dict(
            baselines=baselines, target=target, additional_forward_args=additional_forward_args,
            feature_mask=feature_mask, pairs=pairs, removal=removal,
            perturbations_per_eval=perturbations_per_eval, show_progress=show_progress,
        )
        formatted, players, requested, evaluator = self._setup(
            inputs, total=None, desc="RG coalitions", **common
        )
        n, batch = players.n_players, formatted[0].shape[0]
        try:
            # Every check that needs only the number of pairs runs before the candidate SII
            # pass and before any forward call.
            n_pairs = self._count_pairs(requested, candidates)
            if context == "sampled" and method == "exact":
                check_exact_players(n)
            quartets = n_samples // (4 * n_pairs)
            if context == "full" and method == "sampling" and n_samples < 3 * n_pairs + 1:
                raise ValueError(
                    f"n_samples={n_samples} is too small: context='full' needs 3P + 1 = "
                    f"{3 * n_pairs + 1} rows for P={n_pairs} pairs. Raise n_samples or pass "
                    "candidates=k / fewer pairs."
                )
            if context == "sampled" and method == "sampling" and quartets < 2:
                raise ValueError(
                    f"n_samples={n_samples} is too small: RG needs at least 2 quartets "
                    f"(8 rows) per pair, i.e. {8 * n_pairs} rows for P={n_pairs} pairs. "
                    "Raise n_samples or bound the pairs with candidates=k or an explicit "
                    "(P, 2) pairs tensor."
                )
            pair_list = self._candidate_pairs(
                inputs, requested, batch, candidates, sii_n_samples or n_samples, seed, common
            )
            if context == "full":
                evaluator.expect(3 * n_pairs + 1)
                per_pair = full_context_redundancy(evaluator, pair_list)
                err = torch.zeros_like(per_pair)
            elif method == "exact":
                evaluator.expect(2**n)
                per_pair = exact_redundancy(value_table(evaluator), pair_list, n)
                err = torch.zeros_like(per_pair)
            else:
                evaluator.expect(4 * quartets * n_pairs)
                per_pair, err = sampled_redundancy(evaluator, pair_list, quartets, seed=seed)
        finally:
            evaluator.close()
        dtype = evaluator.output_dtype
        values = scatter_pairs(per_pair, pair_list, n, dtype)
        if return_stderr:
            return values, scatter_pairs(err, pair_list, n, dtype)
        return values

    @staticmethod
    def _count_pairs(requested: Tensor, candidates: int | None) -> int:
        """P, the number of pairs RG is evaluated on per example (validates ``candidates``)."""
        n_requested = int(torch.triu(requested, diagonal=1).sum())
        if candidates is None:
            return n_requested
        candidates = check_positive_int("candidates", candidates)
        if candidates > n_requested:
            raise ValueError(
                f"candidates={candidates} exceeds the {n_requested} requested pairs."
            )
        return candidates

    def _candidate_pairs(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        requested: Tensor,
        batch: int,
        candidates: int | None,
        sii_n_samples: int,
        seed: int,
        common: dict[str, Any],
    ) -> Tensor:
        """(B, P, 2) pairs per example: all requested pairs, or the top ones by -SII."""
        upper = torch.triu(requested, diagonal=1)
        all_pairs = torch.nonzero(upper)  # (P, 2), i < j
        if candidates is None:
            return all_pairs.unsqueeze(0).expand(batch, -1, -1)
        sii = ShapleyInteractionIndex(self.forward_func).attribute(
            inputs, n_samples=sii_n_samples, seed=seed, **common
        )
        scores = -sii[:, all_pairs[:, 0], all_pairs[:, 1]]  # (B, P)
        top = scores.topk(candidates, dim=1).indices
        return all_pairs[top]
