"""The model as a cooperative game over players, for a batch of examples.

For example b with players N = {0, ..., F-1}, the value of a coalition S ⊆ N is

    v_b(S) = target_b( f( x_b with the players of N∖S removed ) ),

the forward output selected by ``target`` when only the players in S are present
(``docs/design.md`` §2). A :class:`ModelGame` holds everything that defines v: the forward
function, the inputs, the players, the requested pairs, the removal operator, the target and
the additional forward arguments. It evaluates v on boolean coalition tensors:

    coalitions (R, F) or (R, B, F) ─► removal ─► perturbed rows (chunk · B, ...) ─► forward
    ─► target ─► v (R, B) float64

and owns the work around the forward calls, so that estimators and metrics never see it:
chunking (at most ``chunk_size`` coalitions per example in one call), the device, the progress
bar, the row budget of each run, the checks of the output (shape, target, NaN / Inf) and the
output dtype. Peak memory is one chunk. Build a game with :func:`model_game`; use it as a
context manager.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor
from tqdm.auto import tqdm

from captum_interactions.perturbation.target import TargetSelector, TargetType
from captum_interactions.players import PairsType, Players, pair_matrix, resolve_players
from captum_interactions.removal import (
    BaselineInput,
    RemovalOperator,
    RemovalSpec,
    make_removal,
    removal_keywords,
)
from captum_interactions.validation import (
    check_bool,
    check_callable,
    check_positive_int,
    format_inputs,
)

#: Coalitions per example in one forward call when neither bound is given (as in Captum).
DEFAULT_PERTURBATIONS_PER_EVAL = 256
#: Rows in one forward call of the metrics, which stack every coalition they need.
DEFAULT_MAX_ROWS_PER_EVAL = 4096

#: ``coalitions(start, stop)`` returns the coalitions of units start..stop-1: (rows, F) bool
#: shared by every example, or (rows, B, F) bool per example.
CoalitionSource = Callable[[int, int], Tensor]
#: Which part of the forward output is scored: a key (or attribute) name, or a function of the
#: output; None takes a tensor as is, ``logits`` of a mapping / ModelOutput, or the first entry
#: of a tuple.
OutputSelector = str | Callable[[Any], Tensor] | None


def select_output(output: Any, selector: OutputSelector) -> Tensor:
    """The tensor to score in a forward output (see :data:`OutputSelector`)."""
    if callable(selector):
        picked = selector(output)
        if not isinstance(picked, Tensor):
            raise TypeError(f"output= returned {type(picked).__name__}, not a tensor.")
        return picked
    if isinstance(selector, str):
        if isinstance(output, Mapping) and selector in output:
            picked = output[selector]
        elif not isinstance(output, Mapping) and hasattr(output, selector):
            picked = getattr(output, selector)
        else:
            keys = list(output.keys()) if isinstance(output, Mapping) else type(output).__name__
            raise ValueError(f"output={selector!r} is not in the forward output ({keys}).")
        if not isinstance(picked, Tensor):
            raise TypeError(f"output={selector!r} selects {type(picked).__name__}, not a tensor.")
        return picked
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):  # dicts and Hugging Face ModelOutputs
        if isinstance(output.get("logits"), Tensor):
            return output["logits"]
        raise TypeError(
            f"forward_func returned a mapping without 'logits' (keys {list(output.keys())}): "
            "pass output='<key>' or output=callable to say which tensor to explain."
        )
    if isinstance(output, tuple | list) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(
        f"forward_func must return a tensor (or a ModelOutput / dict with 'logits', or a tuple "
        f"whose first entry is a tensor), got {type(output).__name__}: pass output= to select "
        "one."
    )


@dataclass(frozen=True)
class Chunk:
    """Units ``start..stop-1`` of a stream, their coalitions and their values.

    Attributes:
        start, stop: the units covered (a unit is ``rows_per_unit`` consecutive rows).
        present: the coalitions, as returned by the source: (rows, F) or (rows, B, F) bool.
        values: (rows, B) float64, v of every coalition for every example.
    """

    start: int
    stop: int
    present: Tensor
    values: Tensor


class ModelGame:
    """v(S) of every example of a batch, evaluated chunk by chunk.

    Built by :func:`model_game`, which validates every argument first. Estimators read only
    :attr:`n_players`, :attr:`n_examples` and :attr:`device`, open a :meth:`budget`, and
    evaluate coalitions through :meth:`chunks` or :meth:`evaluate`.

    Args:
        forward_func: the model or any callable ``f(*inputs, *additional_forward_args)``.
        inputs: tuple of (B, ...) tensors.
        players: the players of ``inputs``.
        removal: a prepared removal operator.
        target: the target selector.
        additional_forward_args: Captum semantics; tensors are repeated per coalition.
        chunk_size: coalitions per example in one forward call (the forward batch holds
            ``chunk_size * B`` rows, as with Captum's ``perturbations_per_eval``).
        requested: (F, F) bool matrix of the requested pairs, if the game has pairs.
        show_progress: show a tqdm bar for every budget.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: tuple[Tensor, ...],
        players: Players,
        removal: RemovalOperator,
        target: TargetSelector,
        additional_forward_args: Any,
        *,
        chunk_size: int,
        requested: Tensor | None = None,
        show_progress: bool = False,
        output: OutputSelector = None,
    ) -> None:
        self.forward_func = forward_func
        self.inputs = inputs
        self.players = players
        self._removal = removal
        self._target = target
        self._extra_args = _format_additional_forward_args(additional_forward_args)
        self._chunk_size = chunk_size
        self._requested = requested
        self._show_progress = show_progress
        self._output = output
        self._first_dtype: torch.dtype | None = None  # of the first forward output
        # Running range of the values of each example: a game whose values never move is
        # flagged when the game closes (e.g. a model that ignores presence masks).
        self._low: Tensor | None = None
        self._high: Tensor | None = None
        self._limit: int | None = None  # rows per example allowed in the open budget
        self._used = 0  # rows per example evaluated in the open budget
        self._bar: Any = None
        self._closed = False
        #: Coalitions evaluated so far, per example, over the life of the game.
        self.rows_evaluated = 0

    # -- what the game is ------------------------------------------------------------------
    @property
    def n_players(self) -> int:
        """F, the number of players."""
        return self.players.n_players

    @property
    def n_examples(self) -> int:
        """B, the number of examples (each is its own game over the same players)."""
        return int(self.inputs[0].shape[0])

    @property
    def device(self) -> torch.device:
        """Where inputs, coalitions and values live."""
        return self.inputs[0].device

    @property
    def requested_pairs(self) -> Tensor:
        """(F, F) symmetric bool matrix of the requested pairs (zero diagonal)."""
        if self._requested is None:
            raise ValueError("this game was built without pairs; pass pairs= to model_game.")
        return self._requested

    @property
    def pair_index(self) -> Tensor:
        """(P, 2) long tensor of the requested pairs i < j, in row-major order."""
        return torch.nonzero(torch.triu(self.requested_pairs, diagonal=1))

    @property
    def output_dtype(self) -> torch.dtype:
        """The dtype of the forward output (results are cast back to it); known once a
        forward call has run."""
        if self._first_dtype is None:
            raise RuntimeError("output_dtype is known after the first evaluation of the game.")
        return self._first_dtype if self._first_dtype.is_floating_point else torch.float32

    # -- life cycle --------------------------------------------------------------------------
    def __enter__(self) -> ModelGame:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(check=kind is None)

    def close(self, *, check: bool = True) -> None:
        """Close the progress bar; a closed game evaluates nothing more.

        With ``check``, warn when no coalition changed the value of any example although the
        coalitions differed: removal had no effect (most often a model that accepts
        ``presence`` through ``**kwargs`` but ignores it, or baselines equal to the inputs),
        and every attribution is then zero.
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if check and not self._closed and self._low is not None and self._high is not None \
                and self.rows_evaluated > 1:
            scale = self._high.abs().clamp(min=1.0)
            if bool(((self._high - self._low) <= 1e-12 * scale).all()):
                keywords = removal_keywords(self._removal)
                hint = (f"the model does not use the {keywords[0]!r} keyword it receives"
                        if keywords else "the baselines equal the inputs")
                warnings.warn(
                    f"v(S) took one value for every one of the {self.rows_evaluated} evaluated "
                    "coalitions of every example: removing players changed nothing, so every "
                    f"attribution is zero. Most likely {hint}, or the target ignores the "
                    "inputs.", RuntimeWarning, stacklevel=3)
        self._closed = True

    @contextmanager
    def budget(self, rows: int, *, desc: str) -> Iterator[None]:
        """Open a run of at most ``rows`` coalitions per example.

        A progress bar (``show_progress``) counts to ``rows``; evaluating more raises before
        the forward call, so an estimator that plans within its budget can never exceed it.

        Examples::

            >>> with game.budget(4, desc="demo"):
            ...     values = game.evaluate(coalitions)  # (4, F) bool -> (4, B)
        """
        if self._limit is not None:
            raise RuntimeError("a budget is already open on this game.")
        self._limit, self._used = rows, 0
        self._bar = tqdm(total=rows, desc=desc, unit="coal", disable=not self._show_progress)
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None
            self._limit = None

    # -- evaluation ----------------------------------------------------------------------------
    def chunks(
        self, n_units: int, coalitions: CoalitionSource, *, rows_per_unit: int = 1
    ) -> Iterator[Chunk]:
        """Evaluate a stream of ``n_units`` units, one forward call's worth at a time.

        ``coalitions(start, stop)`` builds the rows of units start..stop-1 only when they are
        needed, so a stream costs the memory of one chunk whatever its length. A unit (e.g. a
        coalition and its complement) is never split across chunks.
        """
        step = max(1, self._chunk_size // rows_per_unit)
        for start in range(0, n_units, step):
            stop = min(start + step, n_units)
            present = coalitions(start, stop)
            yield Chunk(start, stop, present, self._values(present))

    def evaluate(self, present: Tensor) -> Tensor:
        """v of every coalition: (R, F) (shared by the examples) or (R, B, F) bool ->
        (R, B) float64, in ceil(R / chunk_size) forward calls."""
        parts = [chunk.values for chunk in self.chunks(present.shape[0],
                                                        lambda a, b: present[a:b])]
        return torch.cat(parts, dim=0)

    def as_shapiq_game(self) -> ShapiqGame:
        """This (one-example) game as the callable shapiq's approximators evaluate.

        Examples::

            >>> game = model_game(model, (text[:1], image[:1]), target=3)
            >>> approximator = shapiq.KernelSHAPIQ(n=game.n_players, max_order=2, index="SII")
            >>> values = approximator.approximate(budget=2048, game=game.as_shapiq_game())
        """
        if self.n_examples != 1:
            raise ValueError(
                f"as_shapiq_game() needs a game of one example, this one has {self.n_examples}: "
                "shapiq explains one example at a time. Build the game on inputs[i:i + 1]."
            )
        return ShapiqGame(self)

    def _values(self, present: Tensor) -> Tensor:
        if self._closed:
            raise RuntimeError("this game is closed; build a new one with model_game().")
        batch, n = self.n_examples, self.n_players
        if present.dtype != torch.bool or present.shape[-1] != n or present.dim() not in (2, 3) \
                or (present.dim() == 3 and present.shape[1] != batch):
            raise ValueError(
                f"coalitions must be a bool tensor (R, {n}) or (R, {batch}, {n}), got "
                f"{present.dtype} {tuple(present.shape)}."
            )
        if present.dim() == 2:
            present = present.unsqueeze(1).expand(-1, batch, -1)
        rows = present.shape[0]
        if self._limit is not None and self._used + rows > self._limit:
            raise RuntimeError(
                f"an estimator asked for {self._used + rows} coalitions per example, beyond its "
                f"budget of {self._limit} (a bug: please report it)."
            )
        values = []
        for lo in range(0, rows, self._chunk_size):
            part = present[lo : lo + self._chunk_size]
            values.append(self._select(self._forward(part), part, self._used + lo))
        self._used += rows
        self.rows_evaluated += rows
        result = torch.cat(values, dim=0)
        low, high = result.amin(0), result.amax(0)
        self._low = low if self._low is None else torch.minimum(self._low, low)
        self._high = high if self._high is None else torch.maximum(self._high, high)
        if self._bar is not None:
            self._bar.update(rows)
        return result

    def _forward(self, present: Tensor) -> Tensor:
        n_rows = present.shape[0]
        batch, kwargs = self._removal.perturb(self.inputs, self.players, present)
        extra = expand_extra_args(self._extra_args, n_rows)
        with torch.no_grad():
            output = select_output(self.forward_func(*batch, *(extra or ()), **kwargs),
                                   self._output)
        if output.dtype.is_complex:
            raise TypeError(
                f"forward_func returned complex values ({output.dtype}): v(S) must be real. "
                "Return the real part, the modulus or a score (e.g. with a wrapper)."
            )
        if self._first_dtype is not None and output.dtype != self._first_dtype:
            raise TypeError(
                f"forward_func returned {output.dtype} after returning {self._first_dtype} in "
                "an earlier call: its output must keep one dtype (is it switching modes?)."
            )
        expected = n_rows * self.n_examples
        if output.dim() == 0 or output.shape[0] != expected:
            raise ValueError(
                f"forward_func returned shape {tuple(output.shape)} for a batch of {expected} "
                f"rows ({n_rows} coalitions x {self.n_examples} examples): the output must have "
                "one entry per input row along dim 0."
            )
        if self._first_dtype is None:
            # The first rows are a full batch of examples: enough to check the target.
            self._target.validate(output[: self.n_examples])
            self._first_dtype = output.dtype
        return output

    def _select(self, output: Tensor, present: Tensor, offset: int) -> Tensor:
        n_rows = present.shape[0]
        values = self._target.select(output, n_rows).to(torch.float64)
        values = values.view(n_rows, self.n_examples)
        bad = ~torch.isfinite(values)
        if bad.any():
            where = torch.nonzero(bad)[:5].tolist()
            described = ", ".join(
                f"coalition {offset + r} of example {b} ({int(present[r, b].sum())} players "
                "present)"
                for r, b in where
            )
            raise ValueError(
                f"forward_func returned NaN or Inf for {int(bad.sum())} perturbed row(s), "
                f"e.g. {described}. Check how the model handles removed features (an all-absent "
                "modality under removal='presence' is a common cause)."
            )
        return values


class ShapiqGame:
    """v of a one-example :class:`ModelGame` as shapiq's approximators call it: a (R, F)
    bool array of coalitions -> (R,) float64 array, evaluated chunk by chunk on the game's
    device.

    Attributes:
        n_players: F, for the approximator's ``n``.
    """

    def __init__(self, game: ModelGame) -> None:
        self.game = game
        self.n_players = game.n_players

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        present = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=self.game.device)
        return self.game.evaluate(present.reshape(-1, self.n_players)).reshape(-1).cpu().numpy()


def model_game(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
    *,
    baselines: BaselineInput = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    pairs: PairsType | None = None,
    removal: RemovalSpec = "baseline",
    perturbations_per_eval: int | None = None,
    max_rows_per_eval: int | None = None,
    show_progress: bool = False,
    output: OutputSelector = None,
) -> ModelGame:
    r"""Build the game of a model on a batch of inputs: the one place where inputs, players,
    pairs, removal and target are checked and put together.

    Every argument is validated here, before any forward call or large allocation.

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row.
        inputs (Tensor or tuple[Tensor, ...]): one tensor per modality, batch first.
        baselines, target, additional_forward_args, feature_mask: Captum semantics, as in
            :meth:`~captum_interactions.ShapleyInteractionIndex.attribute`.
        pairs (str or Tensor, optional): the requested pairs (``"cross"``, ``"all"`` or a
            (P, 2) tensor), for games that explain pairs. Default: none.
        removal (str, rule or tuple, optional): ``"baseline"``, ``"presence"``, an operator,
            or one rule per input (``"baseline"`` or a
            :class:`~captum_interactions.MaskArgumentRemoval`). Default: ``"baseline"``.
        perturbations_per_eval (int, optional): coalitions per example in one forward call.
        max_rows_per_eval (int, optional): rows in one forward call instead (at least B);
            give at most one of the two bounds. Default: 256 coalitions per example.
        show_progress (bool, optional): show a progress bar per budget. Default: False.
        output (str or callable, optional): what to score in the forward output: a key or
            attribute name (``"logits_per_image"``) or a function of the output. Default: the
            output itself if it is a tensor, its ``logits`` if it is a mapping or a Hugging
            Face ``ModelOutput``, its first entry if it is a tuple.

    Returns:
        :class:`ModelGame`.

    Examples::

        >>> with model_game(model, (text, image), target=3, pairs="cross") as game:
        ...     with game.budget(2, desc="two coalitions"):
        ...         v = game.evaluate(torch.eye(game.n_players, dtype=torch.bool)[:2])
        >>> v.shape  # (coalitions, examples)
        torch.Size([2, 4])
    """
    check_callable(forward_func)
    formatted = format_inputs(inputs)
    _check_model_device(forward_func, formatted[0].device)
    _warn_training_mode(forward_func)
    batch = formatted[0].shape[0]
    chunk_size = _chunk_size(batch, perturbations_per_eval, max_rows_per_eval)
    show_progress = check_bool("show_progress", show_progress)
    players = resolve_players(formatted, feature_mask)
    requested = None
    if pairs is not None:
        requested = pair_matrix(players, pairs).to(formatted[0].device)
    operator = make_removal(removal, baselines, len(formatted))
    operator.prepare(formatted, players)
    selector = TargetSelector(target, batch)
    _check_extra_args(additional_forward_args, batch)
    for keyword in removal_keywords(operator):
        _check_accepts_keyword(forward_func, keyword, len(formatted), additional_forward_args)
    if output is not None and not (callable(output) or isinstance(output, str)):
        raise TypeError(f"output must be a key name, a callable or None, got {output!r}.")
    return ModelGame(
        forward_func, formatted, players, operator, selector, additional_forward_args,
        chunk_size=chunk_size, requested=requested, show_progress=show_progress, output=output,
    )


def expand_extra_args(extra: tuple[Any, ...] | None, n_rows: int) -> tuple[Any, ...] | None:
    """Additional forward arguments for ``n_rows`` coalitions of the batch: every tensor with a
    batch dim is repeated ``n_rows`` times along dim 0 (Captum semantics), tensors inside a
    dict too (e.g. ``{"attention_mask": mask}``); other values are passed as they are."""
    if extra is None:
        return None

    def expand(value: Any) -> Any:
        if isinstance(value, Tensor) and value.dim() > 0:
            return torch.cat([value] * n_rows, dim=0)
        return value

    return tuple({k: expand(v) for k, v in arg.items()} if isinstance(arg, dict) else expand(arg)
                 for arg in extra)


def _check_extra_args(additional_forward_args: Any, batch: int) -> None:
    """Tensors among the additional forward arguments (and in dicts there) are repeated once
    per coalition along dim 0, so each must be per example: batch size B (or 0-dim)."""
    extra = _format_additional_forward_args(additional_forward_args) or ()
    for k, arg in enumerate(extra):
        named = ([(f"additional_forward_args[{k}][{key!r}]", v) for key, v in arg.items()]
                 if isinstance(arg, dict) else [(f"additional_forward_args[{k}]", arg)])
        for name, value in named:
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] != batch:
                raise ValueError(
                    f"{name} has shape {tuple(value.shape)}: a tensor there is repeated for "
                    f"every coalition along dim 0, so it needs the batch size {batch} of the "
                    "inputs. Pass per-example tensors, or bind other values in the forward "
                    "function (e.g. functools.partial)."
                )


def _check_model_device(forward_func: Callable[..., Any], device: torch.device) -> None:
    """A module whose parameters live on another device than the inputs fails inside its
    first forward call with a message about its internals: say it up front."""
    if not isinstance(forward_func, torch.nn.Module):
        return
    parameter = next(forward_func.parameters(), None)
    if parameter is not None and parameter.device != device:
        raise ValueError(
            f"forward_func's parameters are on {parameter.device} but the inputs are on "
            f"{device}: move the model or the inputs (e.g. inputs.to({str(parameter.device)!r}))."
        )


def _modules_of(forward_func: Callable[..., Any]) -> list[torch.nn.Module]:
    """The modules a forward function evidently runs: itself, the module of a bound method,
    and modules held by a closure or a functools.partial (lambdas, adapters)."""
    found: list[torch.nn.Module] = []
    seen: set[int] = set()

    def visit(value: Any, depth: int) -> None:
        if id(value) in seen or depth > 2:
            return
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            found.append(value)
            return
        owner = getattr(value, "__self__", None)
        if isinstance(owner, torch.nn.Module):
            visit(owner, depth + 1)
        for cell in getattr(value, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, depth + 1)
        if isinstance(value, functools.partial):
            visit(value.func, depth + 1)
            for arg in (*value.args, *value.keywords.values()):
                visit(arg, depth + 1)

    visit(forward_func, 0)
    return found


def _warn_training_mode(forward_func: Callable[..., Any]) -> None:
    """Dropout or batch norm in training mode make v(S) random or batch-dependent: every
    coalition would see another model. Warn (the user may want it, e.g. MC dropout)."""
    stochastic = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)
    for module in _modules_of(forward_func):
        layers = [m for m in module.modules() if m.training and isinstance(m, stochastic)
                  and getattr(m, "p", 1.0) != 0]  # Dropout(p=0) does nothing
        if layers:
            warnings.warn(
                f"{type(module).__name__} is in training mode and has {len(layers)} dropout / "
                f"batch-norm layer(s) (e.g. {type(layers[0]).__name__}): every forward call "
                "sees another random model and the attributions are noise. Call model.eval() "
                "first.", RuntimeWarning, stacklevel=3)
            return


def _check_accepts_keyword(forward_func: Callable[..., Any], keyword: str, n_inputs: int,
                           additional_forward_args: Any) -> None:
    """Refuse, before any call, a forward function that cannot take ``keyword=`` (presence
    and mask-argument removal pass their masks that way), or that would also receive it
    positionally from ``additional_forward_args``."""
    # A module's __call__ takes (*args, **kwargs): its forward says what it accepts.
    target = forward_func.forward if isinstance(forward_func, torch.nn.Module) else forward_func
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins and some C extensions: nothing to check
        return
    parameters = signature.parameters.values()
    if keyword not in signature.parameters and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise TypeError(
            f"the removal calls forward_func(..., {keyword}=...), but forward_func{signature} "
            f"takes no {keyword!r} argument. Give the forward a {keyword}= keyword (a lambda "
            "that passes it on is enough; docs/usage.md, 'Removing players'), or remove "
            "players by baselines."
        )
    extra = _format_additional_forward_args(additional_forward_args) or ()
    try:
        signature.bind(*([None] * (n_inputs + len(extra))), **{keyword: None})
    except TypeError as error:
        if "multiple values" in str(error):
            raise TypeError(
                f"the removal passes {keyword}= as a keyword, but forward_func{signature} also "
                f"receives {keyword!r} positionally from the inputs and additional_forward_args "
                f"({n_inputs} + {len(extra)} positional values): drop it from "
                "additional_forward_args (the removal supplies it, edited per coalition)."
            ) from None


def _chunk_size(
    batch: int, perturbations_per_eval: int | None, max_rows_per_eval: int | None
) -> int:
    """Coalitions per example in one forward call, from either bound."""
    if perturbations_per_eval is not None and max_rows_per_eval is not None:
        raise ValueError("pass perturbations_per_eval or max_rows_per_eval, not both.")
    if max_rows_per_eval is None:
        if perturbations_per_eval is None:
            return DEFAULT_PERTURBATIONS_PER_EVAL
        return check_positive_int("perturbations_per_eval", perturbations_per_eval)
    max_rows = check_positive_int("max_rows_per_eval", max_rows_per_eval)
    if max_rows < batch:
        raise ValueError(
            f"max_rows_per_eval={max_rows} is smaller than the batch size {batch}: one forward "
            "call evaluates a coalition for every example. Raise max_rows_per_eval or pass "
            "fewer examples."
        )
    return max_rows // batch
