"""Pair interactions that remember how they were computed.

``ShapleyInteractionIndex(f).explain(...)`` (and ``RedundancyGap``'s) returns a
:class:`PairInteractions`: the values V ∈ R^{B×F×F} and their standard errors, the
description of each player (a word, a patch's grid position), and the *context* of the game
they explain: inputs, baselines, target, additional forward args, feature mask, pairs, removal
and output selector, budget and seed. The same numbers are what ``attribute`` returns;
the context is what a faithfulness check needs to remove the same players the same way, so
:class:`~captum_interactions.metrics.PairMaskingFaithfulness` takes the result as is and warns
when an explicit argument contradicts it.

Reading a result:

* :meth:`PairInteractions.top_pairs` ranks the requested pairs of one example (largest,
  smallest or largest magnitude) with the players' names and standard errors;
* :meth:`PairInteractions.pair_map` gives one player's interaction with every position of an
  input, at the input's resolution (a token × patch map over the image pixels), and
  :meth:`PairInteractions.heatmap` draws it over the image;
* :meth:`PairInteractions.as_tensor` is the plain (B, F, F) tensor for Captum-style code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from captum_interactions.players import Players, resolve_players
from captum_interactions.validation import check_choice, check_positive_int, format_inputs

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

#: Names for some players: one mapping (or list of F names) for every example, or one each.
PlayerNames = (Mapping[int, str] | Sequence[str] | Sequence[Mapping[int, str]]
               | Sequence[Sequence[str]] | None)
#: Which pairs come first in :meth:`PairInteractions.top_pairs`.
PairOrder = Literal["largest", "smallest", "magnitude"]

#: The context fields a metric may reuse, with the value meaning "not given" in its signature.
CONTEXT_DEFAULTS: dict[str, Any] = {
    "baselines": None, "target": None, "additional_forward_args": None,
    "feature_mask": None, "pairs": "cross", "removal": "baseline", "output": None,
}


@dataclass(frozen=True)
class TopPair:
    """One ranked pair of one example.

    Attributes:
        example: the example index b.
        first, second: the player ids i < j.
        first_name, second_name: their descriptions.
        value: V[b, i, j].
        stderr: its standard error (0 for exact values).
    """

    example: int
    first: int
    second: int
    first_name: str
    second_name: str
    value: float
    stderr: float

    def __str__(self) -> str:
        return (f"{self.first_name} × {self.second_name}: {self.value:+.4g} "
                f"± {self.stderr:.2g}")


@dataclass(frozen=True, eq=False)
class PairInteractions:
    """Pair values with their standard errors, player names and the context of their game.

    Attributes:
        values: (B, F, F) symmetric values (zero diagonal, zero for pairs not requested).
        stderr: (B, F, F) standard errors.
        kind: ``"SII"`` or ``"RG"``.
        player_names: per example, the F player descriptions.
        inputs: the explained inputs (a tuple, as formatted).
        context: the game's arguments: ``baselines``, ``target``,
            ``additional_forward_args``, ``feature_mask``, ``pairs``, ``removal``, ``output``.
        settings: the estimator's arguments (``n_samples``, ``seed``, ``method``, ...).
        requested: (F, F) bool, the requested pairs.
        main_effects: (B, F) Shapley values of the players, estimated from the same rows as
            the SII (None for RG).
        main_stderr: (B, F) their standard errors.
        empty_value: (B,) v(∅), the value with every player removed, when it was evaluated.
    """

    values: Tensor
    stderr: Tensor
    kind: str
    player_names: tuple[tuple[str, ...], ...]
    inputs: tuple[Tensor, ...]
    context: dict[str, Any] = field(repr=False)
    settings: dict[str, Any]
    requested: Tensor = field(repr=False)
    main_effects: Tensor | None = field(default=None, repr=False)
    main_stderr: Tensor | None = field(default=None, repr=False)
    empty_value: Tensor | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        batch, n = self.values.shape[0], self.values.shape[-1]
        return (f"PairInteractions({self.kind}, {batch} example(s) x {n} players, "
                f"{int(torch.triu(self.requested, 1).sum())} requested pairs, "
                f"settings={self.settings})")

    # -- as a tensor ---------------------------------------------------------------------------
    def as_tensor(self) -> Tensor:
        """The (B, F, F) values, exactly what ``attribute`` returns."""
        return self.values

    @property
    def shape(self) -> torch.Size:
        """The values' shape (B, F, F)."""
        return self.values.shape

    @property
    def n_players(self) -> int:
        """F."""
        return int(self.values.shape[-1])

    # -- reading -------------------------------------------------------------------------------
    def top_pairs(self, k: int = 10, *, example: int = 0,
                  order: PairOrder = "largest") -> list[TopPair]:
        """The k requested pairs of one example with the largest (``"largest"``), most
        negative (``"smallest"``) or largest absolute (``"magnitude"``) values.

        Args:
            k (int, optional): how many pairs (fewer if fewer are requested). Default: 10.
            example (int, optional): the example b. Default: 0.
            order (str, optional): ``"largest"`` (synergy first for SII), ``"smallest"``
                (substitution first) or ``"magnitude"``. Default: ``"largest"``.

        Returns:
            *list[TopPair]* best first; ``str(pair)`` reads ``"word × patch (r, c): value ±
            stderr"``.

        Examples::

            >>> for pair in result.top_pairs(5):
            ...     print(pair)
        """
        k = check_positive_int("k", k)
        order = check_choice("order", order, PairOrder)
        b = self._example(example)
        pairs = torch.nonzero(torch.triu(self.requested, 1)).cpu()
        values = self.values[b].detach().cpu().double()[pairs[:, 0], pairs[:, 1]]
        errors = self.stderr[b].detach().cpu().double()[pairs[:, 0], pairs[:, 1]]
        key = {"largest": values, "smallest": -values, "magnitude": values.abs()}[order]
        top = torch.argsort(key, descending=True, stable=True)[:k]
        names = self.player_names[b]
        return [TopPair(b, int(pairs[t, 0]), int(pairs[t, 1]), names[int(pairs[t, 0])],
                        names[int(pairs[t, 1])], float(values[t]), float(errors[t]))
                for t in top.tolist()]

    def summary(self, k: int = 10, *, order: PairOrder = "largest") -> str:
        """A text table of the top ``k`` pairs of every example."""
        lines = [repr(self)]
        for b in range(self.values.shape[0]):
            lines.append(f"example {b}: top {k} pairs ({order})")
            lines.extend(f"  {pair}" for pair in self.top_pairs(k, example=b, order=order))
        return "\n".join(lines)

    def pair_map(self, player: int, *, example: int = 0, input_index: int | None = None
                 ) -> Tensor:
        """V[b, player, q] painted on every position of one input: at each position, the
        value of the pair (``player``, the player of that position); 0 where the position is
        not a player or is ``player`` itself.

        For an image input (B, C, H, W) the map is (H, W): a token × patch heatmap at pixel
        resolution, whatever the shape of the players (patches, superpixels).

        Args:
            player (int): the player id i (e.g. a word).
            example (int, optional): the example b. Default: 0.
            input_index (int, optional): which input to paint. Default: the last input with
                4 or more dims (an image), else the last input.

        Returns:
            *Tensor* shaped like one example of the input without its channel dim
            ((H, W) for images, (T,) for tokens), float64, on the CPU.
        """
        b = self._example(example)
        if isinstance(player, bool) or not isinstance(player, int) or \
                not 0 <= player < self.n_players:
            raise ValueError(f"player must be a player id in 0..{self.n_players - 1}, got "
                             f"{player!r}.")
        index = self._image_input() if input_index is None else input_index
        if isinstance(index, bool) or not isinstance(index, int) or \
                not 0 <= index < len(self.inputs):
            raise ValueError(f"input_index must be in 0..{len(self.inputs) - 1}, got "
                             f"{input_index!r}.")
        mask = self._players().masks[index]
        mask = mask.expand((self.inputs[index].shape[0],) + tuple(mask.shape[1:]))[b].cpu()
        if mask.dim() >= 3:  # (C, H, W): players are the same across channels or not;
            mask = mask[0]  # paint the first channel's players
        elif mask.dim() == 2:  # (T, H) token features: one player per token
            mask = mask[:, 0]
        row = torch.cat([self.values[b, player].detach().cpu().double(),
                         torch.zeros(1, dtype=torch.float64)])  # id F: not a player
        return row[mask]

    def heatmap(self, player: int, *, example: int = 0, input_index: int | None = None,
                image: Tensor | None = None, ax: Axes | None = None, alpha: float = 0.55,
                cmap: str = "RdBu_r") -> Axes:
        """Draw :meth:`pair_map` over the image (needs matplotlib).

        Colours are symmetric around 0: red for positive values (synergy for SII), blue for
        negative.

        Args:
            player, example, input_index: as in :meth:`pair_map`.
            image (Tensor, optional): (3, H, W) or (H, W, 3) picture in [0, 1] drawn under
                the map (e.g. the image before normalisation). Default: none.
            ax (matplotlib Axes, optional): where to draw. Default: a new figure.
            alpha (float, optional): opacity of the map over the image. Default: 0.55.
            cmap (str, optional): a diverging colormap. Default: ``"RdBu_r"``.

        Returns:
            the matplotlib ``Axes``.

        Examples::

            >>> ax = result.heatmap(word_id, image=photo)
            >>> ax.figure.savefig("word_x_patches.png")
        """
        import matplotlib.pyplot as plt

        values = self.pair_map(player, example=example, input_index=input_index)
        if values.dim() != 2:
            raise ValueError(f"heatmap draws 2-D maps; input {input_index} gives shape "
                             f"{tuple(values.shape)}. Use pair_map() for token inputs.")
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        if image is not None:
            picture = image.detach().cpu().float()
            if picture.dim() == 3 and picture.shape[0] in (1, 3):
                picture = picture.permute(1, 2, 0)
            ax.imshow(picture.clamp(0, 1).numpy())
        scale = float(values.abs().max()) or 1.0
        shown = ax.imshow(values.numpy(), cmap=cmap, vmin=-scale, vmax=scale,
                          alpha=alpha if image is not None else 1.0)
        ax.figure.colorbar(shown, ax=ax, fraction=0.046)
        name = self.player_names[self._example(example)][player]
        ax.set_title(f"{self.kind} of {name!r} with each position")
        ax.set_axis_off()
        return ax

    # -- shap and shapiq ----------------------------------------------------------------------
    def shap_matrix(self) -> Tensor:
        """A shap-style interaction matrix (B, F, F): half the SII of each requested pair on
        both off-diagonal entries (shap's convention splits a pair's interaction between
        (i, j) and (j, i)), and on the diagonal the main effect that remains, φ_i − Σ_j V_ij / 2,
        so that row i sums to the Shapley value φ_i and the matrix sums to v(N) − v(∅).

        Needs main effects (SII from ``explain``); pairs that were not requested count as 0.
        """
        if self.main_effects is None:
            raise ValueError(
                f"shap_matrix() needs main effects, which {self.kind} results do not have: "
                "use ShapleyInteractionIndex(...).explain(...).")
        half = self.values.double() / 2
        diagonal = self.main_effects.double() - half.sum(-1)
        matrix = half + torch.diag_embed(diagonal)
        return matrix.to(self.values.dtype)

    def to_shapiq(self, example: int = 0) -> Any:
        """One example as shapiq ``InteractionValues`` (index ``"SII"``, order 2): the
        requested pairs, the main effects as order-1 values when known (so shapiq's network
        and graph plots work) and v(∅) as the baseline value.

        Examples::

            >>> iv = result.to_shapiq(0)
            >>> iv.get_top_k(5)
        """
        import shapiq
        b = self._example(example)
        pairs = torch.nonzero(torch.triu(self.requested, 1)).cpu().tolist()
        values = self.values[b].detach().cpu().double()
        lookup: dict[tuple[int, ...], int] = {}
        entries: list[float] = []
        if self.main_effects is not None:
            main = self.main_effects[b].detach().cpu().double()
            for i in range(self.n_players):
                lookup[(i,)] = len(entries)
                entries.append(float(main[i]))
        for i, j in pairs:
            lookup[(i, j)] = len(entries)
            entries.append(float(values[i, j]))
        baseline = 0.0 if self.empty_value is None else float(self.empty_value[b])
        return shapiq.InteractionValues(
            np.asarray(entries, dtype=float), index=self.kind, max_order=2,
            n_players=self.n_players, min_order=1 if self.main_effects is not None else 2,
            interaction_lookup=lookup, estimated=bool((self.stderr[b] != 0).any()),
            estimation_budget=self.settings.get("n_samples_used",
                                                [self.settings.get("n_samples")] * (b + 1))[b],
            baseline_value=baseline)

    @classmethod
    def from_shapiq(cls, values: Any | Sequence[Any], *,
                    player_names: PlayerNames = None) -> PairInteractions:
        """A result from shapiq ``InteractionValues`` (one per example): the order-2 values
        become the pairs (all pairs present in the lookup are "requested"), order-1 values the
        main effects. It has no inputs or context, so pass inputs and arguments to metrics
        explicitly.
        """
        items: list[Any] = list(values) if isinstance(values, list | tuple) else [values]
        if not items:
            raise ValueError("from_shapiq needs at least one InteractionValues.")
        n = int(items[0].n_players)
        pair_values = torch.zeros(len(items), n, n, dtype=torch.float64)
        main = torch.zeros(len(items), n, dtype=torch.float64)
        requested = torch.zeros(n, n, dtype=torch.bool)
        has_main = False
        for b, item in enumerate(items):
            if int(item.n_players) != n:
                raise ValueError(f"values[{b}] has {item.n_players} players, values[0] {n}.")
            for key, position in item.interaction_lookup.items():
                value = float(item.values[position])
                if len(key) == 2:
                    i, j = key
                    pair_values[b, i, j] = pair_values[b, j, i] = value
                    requested[i, j] = requested[j, i] = True
                elif len(key) == 1:
                    main[b, key[0]] = value
                    has_main = True
        inputs = (torch.zeros(len(items), n),)
        names = describe_players(inputs, resolve_players(inputs, None), player_names)
        return cls(
            values=pair_values, stderr=torch.zeros_like(pair_values),
            kind=str(getattr(items[0], "index", "SII")), player_names=names, inputs=(),
            context=dict(CONTEXT_DEFAULTS), settings={"source": "shapiq"},
            requested=requested, main_effects=main if has_main else None,
            main_stderr=torch.zeros_like(main) if has_main else None,
            empty_value=torch.tensor([float(item.baseline_value) for item in items],
                                     dtype=torch.float64))

    # -- helpers -------------------------------------------------------------------------------
    def _example(self, example: int) -> int:
        batch = self.values.shape[0]
        if isinstance(example, bool) or not isinstance(example, int) or \
                not -batch <= example < batch:
            raise ValueError(f"example must be an index in 0..{batch - 1}, got {example!r}.")
        return example % batch

    def _image_input(self) -> int:
        images = [m for m, x in enumerate(self.inputs) if x.dim() >= 4]
        return images[-1] if images else len(self.inputs) - 1

    def _players(self) -> Players:
        return resolve_players(self.inputs, self.context["feature_mask"])


def describe_players(inputs: tuple[Tensor, ...], players: Players,
                     names: PlayerNames = None) -> tuple[tuple[str, ...], ...]:
    """Per example, a description of each of the F players.

    Given names win; the others are described by where they sit: ``"in0[3]"`` (position 3 of
    input 0), ``"in0[3:5]"`` (positions 3-4), ``"in1 patch (2, 4)"`` (a grid cell of an image,
    in units of its size), ``"in1 region (r0:r1, c0:c1)"`` for other pixel groups, and
    ``"(unused)"`` for an id with no position in that example.
    """
    batch, n = int(inputs[0].shape[0]), players.n_players
    given = _names_per_example(names, batch, n)
    described = []
    for b in range(batch):
        auto: dict[int, str] = {}
        for m, (inp, mask) in enumerate(zip(inputs, players.masks, strict=True)):
            full = mask.expand((inp.shape[0],) + tuple(mask.shape[1:]))[b]
            auto.update(_describe_input(m, inp.dim(), full.cpu(), n, auto))
        described.append(tuple(given[b].get(p) or auto.get(p, "(unused)") for p in range(n)))
    return tuple(described)


def _describe_input(m: int, dims: int, mask: Tensor, n: int, seen: dict[int, str]
                    ) -> dict[int, str]:
    """Names of the players of input m from their extent: one scatter per bound, then one
    string per player."""
    if dims >= 4:
        grid = mask[0] if mask.dim() >= 3 else mask
        rows = torch.arange(grid.shape[-2]).view(-1, 1).expand_as(grid)
        cols = torch.arange(grid.shape[-1]).view(1, -1).expand_as(grid)
        coords: tuple[Tensor, ...] = (rows.reshape(-1), cols.reshape(-1))
        ids = grid.reshape(-1)
    else:
        line = mask.reshape(mask.shape[0], -1)[:, 0] if mask.dim() >= 2 else mask
        coords = (torch.arange(line.shape[0]),)
        ids = line.reshape(-1)
    keep = ids < n
    ids = ids[keep]
    size = torch.bincount(ids, minlength=n)
    low = [torch.full((n,), 1 << 30, dtype=torch.long).scatter_reduce(0, ids, c[keep], "amin")
           for c in coords]
    high = [torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, ids, c[keep], "amax")
            for c in coords]
    out: dict[int, str] = {}
    for p in torch.nonzero(size).flatten().tolist():
        if dims >= 4:
            r0, c0 = int(low[0][p]), int(low[1][p])
            r1, c1 = int(high[0][p]) + 1, int(high[1][p]) + 1
            h, w = r1 - r0, c1 - c0
            if h * w == int(size[p]) and r0 % h == 0 and c0 % w == 0:
                out[p] = f"in{m} patch ({r0 // h}, {c0 // w})"
            else:
                out[p] = f"in{m} region ({r0}:{r1}, {c0}:{c1})"
        else:
            lo, hi = int(low[0][p]), int(high[0][p])
            out[p] = f"in{m}[{lo}]" if lo == hi else f"in{m}[{lo}:{hi + 1}]"
    return {p: (f"{seen[p]}+{name}" if p in seen else name) for p, name in out.items()}


def _names_per_example(names: PlayerNames, batch: int, n: int) -> list[dict[int, str]]:
    """``player_names`` as one {id: name} dict per example (checked)."""
    if names is None:
        return [{} for _ in range(batch)]

    def one(entry: Any, where: str) -> dict[int, str]:
        if isinstance(entry, Mapping):
            table = dict(entry)
        elif isinstance(entry, Sequence) and not isinstance(entry, str):
            table = dict(enumerate(entry))
        else:
            raise TypeError(f"{where} must be a mapping id -> name or a list of names, got "
                            f"{type(entry).__name__}.")
        for key, value in table.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < n:
                raise ValueError(f"{where} names player {key!r}; player ids are 0..{n - 1}.")
            if not isinstance(value, str):
                raise TypeError(f"{where}[{key}] must be a str, got {type(value).__name__}.")
        return table

    per_example = isinstance(names, Sequence) and not isinstance(names, str) and len(
        names) > 0 and all(isinstance(e, Mapping) or (isinstance(e, Sequence) and not
                                                       isinstance(e, str)) for e in names)
    if per_example:
        if len(names) != batch:
            raise ValueError(f"player_names has {len(names)} entries; give one per example "
                             f"({batch}) or one mapping for all examples.")
        return [one(e, f"player_names[{b}]") for b, e in enumerate(names)]
    table = one(names, "player_names")
    return [table for _ in range(batch)]


def same_value(a: Any, b: Any) -> bool:
    """Whether two context arguments are the same (tensors by value, containers by entry)."""
    if a is b:
        return True
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and \
            a.device == b.device and bool(torch.equal(a, b))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # objects without a usable ==
        return False


def with_result_context(
    inputs: Tensor | tuple[Tensor, ...] | list[Tensor] | PairInteractions,
    scores: Tensor | PairInteractions | None, given: dict[str, Any], caller: str,
) -> tuple[Tensor | tuple[Tensor, ...] | list[Tensor], Any, dict[str, Any]]:
    """A metric's (inputs, scores, game arguments) when either ``inputs`` or ``scores`` is a
    :class:`PairInteractions`: its inputs, values and context, except where the caller passed
    another value explicitly (then a warning says so). Without a result, the arguments pass
    through and ``scores`` is required."""
    if isinstance(inputs, PairInteractions):
        result = inputs
        if not result.inputs:
            raise ValueError(
                "this result carries no inputs (it came from shapiq): pass the inputs and the "
                "result, evaluate(inputs, result, ...), with the arguments.")
        inputs = result.inputs
    elif not isinstance(scores, PairInteractions):
        if scores is None:
            raise TypeError("scores is required (B, F, F pair scores), unless inputs is a "
                            "result of explain().")
        return inputs, scores, dict(given)  # scores are checked where they are used
    else:
        result = scores
        if result.inputs and not same_value(format_inputs(inputs), result.inputs):
            warnings.warn(
                f"{caller}: inputs differ from the inputs the {result.kind} values were "
                "computed with; the scores may not describe them.", UserWarning, stacklevel=4)
    values = result.values if scores is None or isinstance(scores, PairInteractions) else scores
    if not result.inputs:  # a result from shapiq: no context to reuse
        return inputs, values, dict(given)
    return inputs, values, _merge_context(result, given, caller)


def _merge_context(result: PairInteractions, given: dict[str, Any], caller: str
                   ) -> dict[str, Any]:
    merged = {}
    for name, value in given.items():
        default = CONTEXT_DEFAULTS[name]
        known = result.context[name]
        if same_value(value, default) or same_value(value, known):
            merged[name] = known
            continue
        warnings.warn(
            f"{caller}: {name}= differs from the {name} the {result.kind} values were computed "
            f"with; using the {name} passed here. Drop the argument to reuse the result's.",
            UserWarning, stacklevel=5)  # the caller of the (logged) metric
        merged[name] = value
    return merged
