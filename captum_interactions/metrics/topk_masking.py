"""Top-K% masking of per-feature attributions: comprehensiveness, sufficiency and AOPC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_interactions.metrics._ranking import (
    make_generator,
    random_ranks,
    rank_within_groups,
    round_count,
)
from captum_interactions.metrics.player_scores import AttributionsType, reduce_to_players
from captum_interactions.modes import TopKScope
from captum_interactions.perturbation.game import (
    DEFAULT_MAX_ROWS_PER_EVAL,
    OutputSelector,
    model_game,
)
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import Players, require_single_modality
from captum_interactions.removal import BaselineInput, RemovalSpec
from captum_interactions.usage_log import log_usage
from captum_interactions.validation import (
    as_number_list,
    check_allocation,
    check_bool,
    check_callable,
    check_choice,
    check_positive_int,
    check_seed,
)


@dataclass(frozen=True)
class TopKMaskingResult:
    """Comprehensiveness and sufficiency at every K, for the attribution ranking and for
    random players with the same counts.

    Attributes:
        ks: the K values (percent).
        counts: (n_k, G) long: players selected per K and group (G = number of inputs for
            ``per="modality"``, 1 for ``per="global"``).
        per: ``"modality"`` or ``"global"``.
        comprehensiveness: (B, n_k) ``p(x) - p(x with the top-K% removed)``; higher means
            the top players carry more of the score.
        sufficiency: (B, n_k) ``p(x) - p(x with all but the top-K% removed)``; lower means
            the top players alone nearly suffice.
        aopc_comprehensiveness, aopc_sufficiency: (B,) means over the K values.
        random_comprehensiveness, random_sufficiency: (B, n_k, n_random): the same with K%
            random players (per group, same counts); repeat r removes for comprehensiveness
            exactly the players it keeps for sufficiency.
        random_aopc_comprehensiveness, random_aopc_sufficiency: (B,) means over the K values
            and the repeats.
        original: (B,) the target score of the unperturbed inputs.
    """

    ks: tuple[float, ...]
    counts: Tensor
    per: str
    comprehensiveness: Tensor
    sufficiency: Tensor
    aopc_comprehensiveness: Tensor
    aopc_sufficiency: Tensor
    random_comprehensiveness: Tensor
    random_sufficiency: Tensor
    random_aopc_comprehensiveness: Tensor
    random_aopc_sufficiency: Tensor
    original: Tensor

    def summary(self, title: str | None = None) -> str:
        """A text table of means over examples, one line per K, then the AOPC line.

        Args:
            title (str, optional): a first line.

        Returns:
            *str* the table, ready to print.
        """
        batch, n_random = self.comprehensiveness.shape[0], self.random_comprehensiveness.shape[-1]
        lines = [title] if title else []
        lines.append(
            f"top-K% masking ({self.per}): {batch} examples, {n_random} random repeats; mean "
            f"original score {self.original.mean().item():.4g}"
        )
        lines.append(
            f"{'K%':>6}  {'players':>9}  {'comp':>9}  {'comp rnd':>9}  {'suff':>9}  "
            f"{'suff rnd':>9}"
        )
        comp, suff = self.comprehensiveness.mean(0), self.sufficiency.mean(0)
        rcomp = self.random_comprehensiveness.mean((0, 2))
        rsuff = self.random_sufficiency.mean((0, 2))
        for k, value in enumerate(self.ks):
            count = "+".join(str(c) for c in self.counts[k].tolist())
            lines.append(
                f"{value:>6g}  {count:>9}  {comp[k].item():>+9.4f}  {rcomp[k].item():>+9.4f}  "
                f"{suff[k].item():>+9.4f}  {rsuff[k].item():>+9.4f}"
            )
        lines.append(
            f"{'AOPC':>6}  {'':>9}  {self.aopc_comprehensiveness.mean().item():>+9.4f}  "
            f"{self.random_aopc_comprehensiveness.mean().item():>+9.4f}  "
            f"{self.aopc_sufficiency.mean().item():>+9.4f}  "
            f"{self.random_aopc_sufficiency.mean().item():>+9.4f}"
        )
        return "\n".join(lines)


def resolve_ks(ks: Any) -> tuple[float, ...]:
    values = as_number_list("ks", ks)
    for value in values:
        if not 0.0 < float(value) <= 100.0:
            raise ValueError(f"ks holds {value}: every K is a percentage in (0, 100].")
    return tuple(float(v) for v in values)


def _groups(
    players: Players, per: str, protected: Any, device: torch.device
) -> tuple[Tensor, int]:
    """(F,) group id of each player, and G. Group G holds the players never selected."""
    n = players.n_players
    modality = players.modality.to(device)
    exists = modality != -2  # ids that appear in no input are not players
    if per == "modality":
        require_single_modality(players, "per='modality'", "pass per='global'")
        n_groups = len(players.masks)
        group = modality.clone()
    else:
        n_groups = 1
        group = torch.zeros(n, dtype=torch.long, device=device)
    excluded = ~exists | _protected_mask(protected, n, device)
    group[excluded] = n_groups
    if not (group < n_groups).any():
        raise ValueError("protected covers every player: nothing is left to remove.")
    return group, n_groups


def _protected_mask(protected: Any, n_players: int, device: torch.device) -> Tensor:
    mask = torch.zeros(n_players, dtype=torch.bool, device=device)
    if protected is None:
        return mask
    if isinstance(protected, int) and not isinstance(protected, bool):
        protected = [protected]
    if isinstance(protected, Tensor):
        if protected.dtype.is_floating_point or protected.dtype == torch.bool:
            raise TypeError(f"protected must hold integer player ids, got {protected.dtype}.")
        ids = protected.detach().cpu().reshape(-1).tolist()
    elif isinstance(protected, Sequence) and not isinstance(protected, str):
        ids = list(protected)
    else:
        raise TypeError(f"protected must be a sequence of player ids, got {type(protected)}.")
    for pid in ids:
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise TypeError(f"protected must hold integer player ids, got {pid!r}.")
        if not 0 <= pid < n_players:
            raise ValueError(
                f"protected holds player id {pid}, but ids lie in [0, {n_players - 1}]."
            )
    mask[torch.tensor(ids, dtype=torch.long, device=device)] = True
    return mask


@log_usage()
def topk_masking(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
    attributions: AttributionsType,
    *,
    ks: Sequence[float] | float = (5, 10, 15, 20, 25),
    per: TopKScope = "modality",
    target: TargetType = None,
    baselines: BaselineInput = None,
    additional_forward_args: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    removal: RemovalSpec = "baseline",
    output: OutputSelector = None,
    protected: Sequence[int] | Tensor | None = None,
    use_abs: bool = False,
    n_random: int = 10,
    seed: int = 0,
    max_rows_per_eval: int = DEFAULT_MAX_ROWS_PER_EVAL,
    show_progress: bool = False,
) -> TopKMaskingResult:
    r"""Top-K% masking of per-feature attributions (docs/design.md §4).

    Players are ranked by attribution (signed, highest first; ``use_abs=True`` ranks by
    magnitude). At each K, the top K% of the players of each modality (``per="modality"``)
    or of all players (``per="global"``) are selected, ``count = round_half_up(K/100 * n)``
    with at least 1 and ``n`` the non-protected players of the group. Then

    * comprehensiveness = p(x) - p(x with the selected players removed),
    * sufficiency = p(x) - p(x with every non-selected, non-protected player removed),
    * AOPC = the mean of either over the K values,

    and the same for ``n_random`` random selections with the same counts. All K values and
    repeats are stacked into ``ceil(R * B / max_rows_per_eval)`` forward calls,
    R = 1 + 2 n_k (1 + n_random).

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row.
        inputs (Tensor or tuple[Tensor, ...]): the explained inputs, batch first.
        attributions (Tensor or tuple[Tensor, ...]): Captum attributions shaped like
            ``inputs`` (summed per player through ``feature_mask``), or a (B, F) tensor of
            per-player scores. A tensor with the shape of the inputs is always read as
            per-element attributions.
        ks (sequence of float, optional): K values in percent, each in (0, 100].
            Default: (5, 10, 15, 20, 25).
        per (str, optional): ``"modality"`` (the top K% of each input's players) or
            ``"global"``. Default: ``"modality"``.
        target, baselines, additional_forward_args, feature_mask, removal, output: as in
            :meth:`PairMaskingFaithfulness.evaluate`.
        protected (sequence of int or Tensor, optional): player ids that are never removed
            (e.g. a CLS token); they count in no group. Default: none.
        use_abs (bool, optional): rank by the absolute attribution. Default: False.
        n_random (int, optional): random selections per K and example. Default: 10.
        seed (int, optional): seed of the random control and of tie-breaking. Default: 0.
        max_rows_per_eval (int, optional): most rows in one forward call (at least B).
            Default: 4096.
        show_progress (bool, optional): a progress bar over coalitions. Default: False.

    Returns:
        *TopKMaskingResult*: ``comprehensiveness`` and ``sufficiency`` (B, n_k), their AOPC
        (B,), the random control (B, n_k, n_random) and its AOPC (B,), ``counts``,
        ``original`` and a ``summary()`` table.

    Examples::

        >>> attr = IntegratedGradients(model).attribute((text, image), target=1)
        >>> res = topk_masking(model, (text, image), attr, target=1, ks=(10, 20))
        >>> res.comprehensiveness.shape, res.aopc_comprehensiveness.shape
        (torch.Size([16, 2]), torch.Size([16]))
    """
    check_callable(forward_func)
    per = check_choice("per", per, TopKScope)
    ks_tuple = resolve_ks(ks)
    n_random = check_positive_int("n_random", n_random)
    use_abs = check_bool("use_abs", use_abs)
    seed = check_seed(seed)
    game = model_game(
        forward_func, inputs, baselines=baselines, target=target,
        additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        removal=removal, max_rows_per_eval=max_rows_per_eval, show_progress=show_progress,
        output=output,
    )
    batch, n_players, device = game.n_examples, game.n_players, game.device
    scores = reduce_to_players(game.inputs, game.players, attributions)
    if use_abs:
        scores = scores.abs()
    group, n_groups = _groups(game.players, per, protected, device)
    n_sel = len(ks_tuple) * (1 + n_random)
    check_allocation(
        f"Top-K% masking of B = {batch} example(s), F = {n_players} players, "
        f"{len(ks_tuple)} K value(s) x {n_random} random repeats",
        (1 + 2 * n_sel) * batch * n_players * 2 + batch * n_random * n_players * 24,
        "Lower n_random or the number of K values, or evaluate fewer examples per call.")

    sizes = torch.bincount(group, minlength=n_groups + 1)[:n_groups]
    fractions = torch.tensor(ks_tuple, dtype=torch.float64, device=device) / 100
    counts = round_count(fractions[:, None], sizes[None, :])  # (n_k, G)
    # Per player: how many of its group are selected at each K (0 for the excluded group).
    limit = torch.cat([counts, torch.zeros_like(counts[:, :1])], dim=1)[:, group]  # (n_k, F)

    generator = make_generator(seed, device)
    rank = rank_within_groups(scores, group, n_groups, generator)  # (B, F)
    rand_rank = random_ranks(batch * n_random, group, n_groups, generator)
    rand_rank = rand_rank.view(batch, n_random, n_players)
    ranked_sel = rank[:, None, :] < limit[None]  # (B, n_k, F)
    random_sel = rand_rank[:, None, :, :] < limit[None, :, None, :]  # (B, n_k, n_random, F)
    selected = torch.cat([ranked_sel, random_sel.flatten(1, 2)], dim=1)  # (B, S, F)
    keep_always = group == n_groups  # protected players and ids that are no player
    comp_present = ~selected
    suff_present = selected | keep_always
    full = torch.ones(1, batch, n_players, dtype=torch.bool, device=device)
    present = torch.cat(
        [full, comp_present.transpose(0, 1), suff_present.transpose(0, 1)], dim=0
    )  # (1 + 2S, B, F)

    with game, game.budget(present.shape[0], desc="top-K masking"):
        values = game.evaluate(present)
    original = values[0]
    n_sel = selected.shape[1]
    comp = (original[None] - values[1 : 1 + n_sel]).t()  # (B, S)
    suff = (original[None] - values[1 + n_sel :]).t()
    n_k = len(ks_tuple)
    rcomp = comp[:, n_k:].reshape(batch, n_k, n_random)
    rsuff = suff[:, n_k:].reshape(batch, n_k, n_random)
    return TopKMaskingResult(
        ks=ks_tuple,
        counts=counts,
        per=per,
        comprehensiveness=comp[:, :n_k],
        sufficiency=suff[:, :n_k],
        aopc_comprehensiveness=comp[:, :n_k].mean(1),
        aopc_sufficiency=suff[:, :n_k].mean(1),
        random_comprehensiveness=rcomp,
        random_sufficiency=rsuff,
        random_aopc_comprehensiveness=rcomp.mean((1, 2)),
        random_aopc_sufficiency=rsuff.mean((1, 2)),
        original=original,
    )
