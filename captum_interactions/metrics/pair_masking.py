"""Pair-masking faithfulness: do the top-ranked pairs matter more than random pairs?"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from torch import Tensor

from captum_interactions.metrics._ranking import (
    make_generator,
    pairs_to_players,
    random_ranks,
    rank_within_groups,
    round_count,
)
from captum_interactions.metrics.paired_test import (
    exchange_test,
    wilcoxon_test,
    zero_tolerance,
)
from captum_interactions.modes import Alternative, Direction, PairedTest
from captum_interactions.perturbation.game import (
    DEFAULT_MAX_ROWS_PER_EVAL,
    OutputSelector,
    model_game,
)
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType
from captum_interactions.removal import BaselineInput, RemovalSpec
from captum_interactions.result import PairInteractions, with_result_context
from captum_interactions.usage_log import log_usage
from captum_interactions.validation import (
    as_number_list,
    check_allocation,
    check_bool,
    check_callable,
    check_choice,
    check_pair_scores,
    check_positive_int,
    check_seed,
)

# Null draws of the exchange test: p-values resolve down to 1 / (N + 1) = 1e-4.
N_NULL_DRAWS = 9999


@dataclass(frozen=True)
class PairMaskingResult:
    """Per-example drops of ranked and random pair removal, and their paired comparison.

    A *drop* is ``original - v(x with the players of the removed pairs removed)``, where v is
    the target score; larger drops mean the removed pairs mattered more. With
    ``direction="increase"`` the drop is ``v(...) - original`` (the pairs were evidence
    against the score), with ``"absolute"`` ``|original - v(...)|``.

    Attributes:
        budgets: the number of pairs removed at each budget (fractions resolved to counts).
        ranked_drop: (B, n_budgets) drops when the top-b pairs by score are removed.
        random_drop: (B, n_budgets, n_random) drops when b uniformly random requested pairs
            are removed (``n_random`` independent repeats).
        gap: (n_budgets,) mean over examples of ``ranked_drop - random_drop.mean(-1)``.
        p_value: (n_budgets,) p-value of the signed-rank test across examples of the paired
            differences ``ranked_drop - random_drop.mean(-1)`` (``test``, ``alternative``):
            small when the ranking beats random consistently over examples.
        wins: (n_budgets,) number of examples whose ranked drop exceeds the mean random drop
            (beyond rounding noise).
        original: (B,) the target score of the unperturbed inputs.
        n_pairs: P, the number of requested pairs per example.
        descending: whether the highest scores were removed first.
        alternative: the alternative hypothesis of ``p_value``.
        test: ``"exchange"`` or ``"wilcoxon"``, the null distribution of ``p_value``.
        direction: how a change of the score counts as a drop.
        tolerance: (B,) per-example differences at or below this count as ties (rounding
            noise of the model's output dtype); None in results made before it was kept.
    """

    budgets: tuple[int, ...]
    ranked_drop: Tensor
    random_drop: Tensor
    gap: Tensor
    p_value: Tensor
    wins: Tensor
    original: Tensor
    n_pairs: int
    descending: bool
    alternative: str
    test: str
    direction: str = "decrease"
    tolerance: Tensor | None = None

    @classmethod
    def concatenate(cls, parts: Sequence[PairMaskingResult], *,
                    seed: int = 0) -> PairMaskingResult:
        """One result over the examples of several (e.g. one per batch or shard of a
        dataset): the per-example drops are pooled and the gap, the wins and the paired test
        are computed again over all examples.

        Args:
            parts: results with the same budgets, pair count, test, alternative, direction
                and ranking order.
            seed: of the exchange test's null draws.

        Examples::

            >>> parts = [metric.evaluate(x, s, target=0) for x, s in batches]
            >>> PairMaskingResult.concatenate(parts).summary("whole split")
        """
        if not parts:
            raise ValueError("parts is empty: pass at least one PairMaskingResult.")
        first = parts[0]
        for k, part in enumerate(parts[1:], 1):
            for name in ("budgets", "n_pairs", "descending", "alternative", "test",
                         "direction"):
                if getattr(part, name) != getattr(first, name):
                    raise ValueError(
                        f"parts[{k}] has {name}={getattr(part, name)!r} but parts[0] has "
                        f"{getattr(first, name)!r}: only results of the same settings pool.")
            if part.random_drop.shape[-1] != first.random_drop.shape[-1]:
                raise ValueError(f"parts[{k}] has {part.random_drop.shape[-1]} random repeats "
                                 f"but parts[0] has {first.random_drop.shape[-1]}.")
        ranked = torch.cat([p.ranked_drop for p in parts])
        random_drop = torch.cat([p.random_drop for p in parts])
        original = torch.cat([p.original for p in parts])
        tol = torch.cat([p.tolerance if p.tolerance is not None
                         else zero_tolerance(p.original, torch.float32) for p in parts])
        gap, p_value, wins = _paired_statistics(
            ranked, random_drop, tol, cast(Alternative, first.alternative),
            cast(PairedTest, first.test), seed)
        return replace(first, ranked_drop=ranked, random_drop=random_drop, gap=gap,
                       p_value=p_value, wins=wins, original=original, tolerance=tol)

    @property
    def random_mean(self) -> Tensor:
        """(B, n_budgets) mean drop over the random repeats."""
        return self.random_drop.mean(-1)

    def summary(self, title: str | None = None) -> str:
        """A text table: one line per budget, means (± standard error) over examples.

        Args:
            title (str, optional): a first line (e.g. the name of the ranking).

        Returns:
            *str* the table, ready to print.
        """
        batch, n_random = self.ranked_drop.shape[0], self.random_drop.shape[-1]
        order = "highest" if self.descending else "lowest"
        lines = [title] if title else []
        lines.append(
            f"pair masking: {batch} examples, {self.n_pairs} requested pairs, {order} scores "
            f"removed first, {n_random} random repeats, {self.test} test, drop = "
            f"{_DROP[self.direction]}; mean original score {self.original.mean().item():.4g}"
        )
        lines.append(
            f"{'budget':>6}  {'ranked drop':>18}  {'random drop':>18}  {'gap':>9}  "
            f"{'wins':>7}  {'p (' + self.alternative + ')':>14}"
        )
        ranked, random_mean = _mean_se(self.ranked_drop), _mean_se(self.random_mean)
        for k, budget in enumerate(self.budgets):
            lines.append(
                f"{budget:>6}  {ranked[k]:>18}  {random_mean[k]:>18}  "
                f"{self.gap[k].item():>+9.4f}  {int(self.wins[k]):>3}/{batch:<3}  "
                f"{self._format_p(self.p_value[k].item()):>14}"
            )
        if self.direction == "decrease" and float(self.ranked_drop.mean()) < 0 and \
                float(self.gap.mean()) < 0:
            lines.append(
                "note: removing the ranked pairs raises the score on average. For a signed "
                "target (e.g. a similarity logit), pairs can be evidence against it: see "
                "direction='increase' or 'absolute' (docs/metrics.md).")
        return "\n".join(lines)

    def _format_p(self, p_value: float) -> str:
        floor = 1 / (N_NULL_DRAWS + 1)
        if self.test == "exchange" and p_value <= floor * (1 + 1e-9):
            return f"<={floor:.0e}"  # the resolution of the exchange test's null draws
        return f"{p_value:.3g}"


_DROP = {"decrease": "original - masked", "increase": "masked - original",
         "absolute": "|original - masked|"}


def _mean_se(values: Tensor) -> list[str]:
    """'mean ± standard error' over dim 0, per column."""
    mean = values.mean(0)
    if values.shape[0] > 1:
        se = values.std(0) / math.sqrt(values.shape[0])
    else:
        se = torch.zeros_like(mean)
    return [f"{m:+.4f} ± {s:.4f}" for m, s in zip(mean.tolist(), se.tolist(), strict=True)]


def resolve_budgets(budgets: Any, n_pairs: int) -> tuple[int, ...]:
    """Counts of pairs per budget: ints are counts, floats in (0, 1] fractions of P."""
    values = as_number_list("budgets", budgets)
    counts = []
    for value in values:
        if isinstance(value, numbers.Integral):
            if not 1 <= int(value) <= n_pairs:
                raise ValueError(
                    f"budgets holds {value}, but a budget must lie in [1, {n_pairs}] (the number "
                    f"of requested pairs). Pass fewer pairs, or a fraction in (0, 1]."
                )
            counts.append(int(value))
        else:
            if not 0.0 < float(value) <= 1.0:
                raise ValueError(
                    f"budgets holds {value}: a float budget is a fraction of the {n_pairs} "
                    "requested pairs and must lie in (0, 1]; pass counts as ints."
                )
            fraction = torch.tensor(float(value), dtype=torch.float64)
            counts.append(int(round_count(fraction, torch.tensor(n_pairs))))
    return tuple(counts)


class PairMaskingFaithfulness:
    r"""Pair-masking faithfulness of an interaction ranking (docs/design.md §4).

    For every example, the requested pairs are ranked by ``scores``; at each budget b the
    players of the top-b pairs are removed together (the union of their players; a player
    shared by two pairs is removed once), and the drop of the target score is compared with
    the drop when b uniformly random requested pairs are removed, over ``n_random`` repeats.
    A faithful ranking gives ranked drops above the random ones: a positive ``gap`` and a
    small ``p_value`` (a paired signed-rank test across examples; by default its null
    distribution comes from exchanging the ranked selection with the random ones, which stays
    valid when drops are skewed; ``test="wilcoxon"`` gives scipy's classical test).

    Every coalition (the unperturbed input, every budget, every random repeat) is stacked into
    one tensor and evaluated by the attribution core's perturbation engine in
    ``ceil(R * B / max_rows_per_eval)`` forward calls (R = 1 + n_budgets (1 + n_random)).

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row (use a wrapper for probabilities or multi-label scores).

    Examples::

        >>> sii = ShapleyInteractionIndex(model).attribute((text, image), target=1)
        >>> pmf = PairMaskingFaithfulness(model)
        >>> res = pmf.evaluate((text, image), sii, budgets=(1, 2, 4), target=1, n_random=10)
        >>> res.ranked_drop.shape, res.random_drop.shape
        (torch.Size([16, 3]), torch.Size([16, 3, 10]))
        >>> print(res.summary())  # gap and p-value per budget
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        self.forward_func = forward_func

    @log_usage()
    def evaluate(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor] | PairInteractions,
        scores: Tensor | PairInteractions | None = None,
        *,
        budgets: Sequence[int | float] | int | float = (1, 2, 4, 8, 16),
        n_random: int = 10,
        target: TargetType = None,
        baselines: BaselineInput = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        pairs: PairsType = "cross",
        removal: RemovalSpec = "baseline",
        output: OutputSelector = None,
        descending: bool = True,
        direction: Direction = "decrease",
        alternative: Alternative = "greater",
        test: PairedTest = "exchange",
        seed: int = 0,
        max_rows_per_eval: int = DEFAULT_MAX_ROWS_PER_EVAL,
        show_progress: bool = False,
    ) -> PairMaskingResult:
        r"""Ranked versus random pair removal at every budget.

        Args:
            inputs (Tensor, tuple[Tensor, ...] or PairInteractions): the explained inputs, one
                tensor per modality, batch first; or the result of ``explain`` (then
                ``scores`` defaults to its values, and its inputs, baselines, target,
                additional forward args, feature mask, pairs, removal and output are reused:
                an explicit argument that contradicts them wins, with a warning).
            scores (Tensor or PairInteractions): (B, F, F) pair scores over player ids, e.g.
                SII or RG values (pass ``-sii`` or ``descending=False`` to remove the most
                negative SII first), or a result of ``explain`` (its context is reused as
                above). The score of pair (i, j) is ``(scores[i, j] + scores[j, i]) / 2``;
                only requested pairs are ranked. Ties are broken at random (seeded).
            budgets (sequence of int or float, optional): pairs removed per budget: ints are
                counts in [1, P], floats in (0, 1] fractions of the P requested pairs
                (rounded half up, at least 1). Default: (1, 2, 4, 8, 16).
            n_random (int, optional): random repeats per budget and example; repeat r uses
                one random order of the pairs, so its budgets are nested like the ranked
                ones. Default: 10.
            target (int, tuple, Tensor or list, optional): Captum ``TargetType``.
            baselines (scalar, Tensor or tuple, optional): replacement values under
                ``removal="baseline"`` (Captum semantics). Default: 0.
            additional_forward_args (Any, optional): extra forward arguments.
            feature_mask (Tensor or tuple[Tensor, ...], optional): player ids (Captum
                semantics); must be the mask the scores were computed with.
            pairs (str or Tensor, optional): the requested pairs: ``"cross"``, ``"all"`` or
                a (P, 2) tensor; must match the scores. Default: ``"cross"``.
            removal (str, rule or tuple, optional): ``"baseline"``, ``"presence"`` or one
                rule per input, as in :meth:`ShapleyInteractionIndex.attribute`.
                Default: ``"baseline"``.
            output (str or callable, optional): what to score in the forward output, as in
                :meth:`ShapleyInteractionIndex.attribute`. Default: a tensor, or ``logits``.
            descending (bool, optional): remove the highest scores first. Default: True.
            direction (str, optional): what counts as a drop: ``"decrease"`` (original -
                masked: the pairs support the target), ``"increase"`` (masked - original:
                for a signed target such as a similarity logit whose evidence pairs can be
                *against* the match) or ``"absolute"`` (either way). Default: ``"decrease"``.
            alternative (str, optional): alternative hypothesis of the paired test:
                ``"greater"`` (ranked drops exceed random drops), ``"two-sided"`` or
                ``"less"``. Default: ``"greater"``.
            test (str, optional): null distribution of the signed-rank statistic:
                ``"exchange"`` (per example, the ranked selection is exchangeable with the
                random ones under "the ranking is uninformative"; 9999 seeded draws, so
                p >= 1e-4) or ``"wilcoxon"`` (``scipy.stats.wilcoxon``: assumes the paired
                differences are symmetric under the null, which skewed drops violate).
                Zero differences (within rounding noise) are dropped; all zero gives p = 1.
                Default: ``"exchange"``.
            seed (int, optional): seed of the random pairs and of tie-breaking (on the
                inputs' device). Default: 0.
            max_rows_per_eval (int, optional): most rows in one forward call; must be at
                least B. Default: 4096.
            show_progress (bool, optional): a progress bar over coalitions. Default: False.

        Returns:
            *PairMaskingResult*: ``ranked_drop`` (B, n_budgets), ``random_drop``
            (B, n_budgets, n_random), ``gap`` and ``p_value`` (n_budgets,), ``original``
            (B,), ``budgets`` and a ``summary()`` table.
        """
        inputs, scores, context = with_result_context(
            inputs, scores, {"baselines": baselines, "target": target,
                             "feature_mask": feature_mask,
                             "additional_forward_args": additional_forward_args,
                             "pairs": pairs, "removal": removal, "output": output},
            "PairMaskingFaithfulness.evaluate")
        baselines, target, feature_mask = (context["baselines"], context["target"],
                                           context["feature_mask"])
        additional_forward_args, pairs = context["additional_forward_args"], context["pairs"]
        removal, output = context["removal"], context["output"]
        n_random = check_positive_int("n_random", n_random)
        direction = check_choice("direction", direction, Direction)
        descending = check_bool("descending", descending)
        seed = check_seed(seed)
        alternative = check_choice("alternative", alternative, Alternative)
        test = check_choice("test", test, PairedTest)
        game = model_game(
            self.forward_func, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
            pairs=pairs, removal=removal, max_rows_per_eval=max_rows_per_eval,
            show_progress=show_progress, output=output,
        )
        batch, n_players, device = game.n_examples, game.n_players, game.device
        pair_index = game.pair_index
        pair_scores = check_pair_scores("scores", scores, pair_index, batch, n_players, device)
        counts = resolve_budgets(budgets, pair_index.shape[0])
        n_coalitions = 1 + len(counts) * (1 + n_random)
        check_allocation(
            f"Pair masking of B = {batch} example(s), F = {n_players} players, "
            f"P = {pair_index.shape[0]} pairs, {len(counts)} budget(s) x {n_random} random "
            "repeats",
            n_coalitions * batch * (2 * n_players + pair_index.shape[0])
            + batch * n_random * pair_index.shape[0] * 24,
            "Lower n_random or the number of budgets, or evaluate fewer examples per call.")

        # Ranked and random selections for all budgets and repeats at once: (B, K, P) with
        # K = n_budgets (ranked) + n_budgets * n_random (random, budget-major).
        generator = make_generator(seed, device)
        group = torch.zeros(pair_index.shape[0], dtype=torch.long, device=device)
        signed = pair_scores if descending else -pair_scores
        rank = rank_within_groups(signed, group, 1, generator)  # (B, P)
        rand_rank = random_ranks(batch * n_random, group, 1, generator).view(batch, n_random, -1)
        limit = torch.tensor(counts, device=device)
        ranked_sel = rank[:, None, :] < limit[None, :, None]
        random_sel = rand_rank[:, None, :, :] < limit[None, :, None, None]
        selected = torch.cat([ranked_sel, random_sel.flatten(1, 2)], dim=1)
        removed = pairs_to_players(selected, pair_index, n_players)  # (B, K, F)
        full = torch.ones(1, batch, n_players, dtype=torch.bool, device=device)
        present = torch.cat([full, ~removed.transpose(0, 1)], dim=0)  # (1 + K, B, F)

        with game, game.budget(present.shape[0], desc="pair masking"):
            values = game.evaluate(present)  # (1 + K, B) float64
        original = values[0]
        change = (original[None, :] - values[1:]).t()  # (B, K): original - masked
        drops = {"decrease": change, "increase": -change, "absolute": change.abs()}[direction]
        n_budgets = len(counts)
        ranked_drop = drops[:, :n_budgets]
        random_drop = drops[:, n_budgets:].reshape(batch, n_budgets, n_random)
        tol = zero_tolerance(original, game.output_dtype)
        gap, p_value, wins = _paired_statistics(ranked_drop, random_drop, tol, alternative,
                                                test, seed)
        return PairMaskingResult(
            budgets=counts,
            ranked_drop=ranked_drop,
            random_drop=random_drop,
            gap=gap,
            p_value=p_value,
            wins=wins,
            original=original,
            n_pairs=pair_index.shape[0],
            descending=descending,
            alternative=alternative,
            test=test,
            direction=direction,
            tolerance=tol,
        )


def _paired_statistics(ranked_drop: Tensor, random_drop: Tensor, tol: Tensor,
                       alternative: Alternative, test: PairedTest, seed: int
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """(gap, p_value, wins) per budget of ranked (B, K) against random (B, K, R) drops."""
    random_mean = random_drop.mean(-1)
    if test == "exchange":
        p_value = exchange_test(ranked_drop, random_drop, tol, alternative,
                                n_draws=N_NULL_DRAWS, seed=seed)
    else:
        p_value = wilcoxon_test(ranked_drop, random_mean, tol, alternative)
    diff = ranked_drop - random_mean
    return diff.mean(0), p_value, (diff > tol[:, None]).sum(0)
