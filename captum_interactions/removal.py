"""Removal operators: how an absent player is taken out of the model's input.

A coalition S keeps the players in S and removes the others. How a player is removed is part
of the definition of v(S) (docs/design.md §2), and a multimodal model often wants a different
rule per input:

* **baseline** (default): absent features are replaced by Captum-style ``baselines``.
* **presence**: the inputs pass unchanged and the model receives, per perturbed row, one
  boolean *presence* tensor per input, shaped (rows, T_m), ``True`` where the token is present
  (keyword ``presence``). The model drops absent tokens itself, e.g. as an attention
  key-padding mask, and must cope with rows where every token of a modality is absent.
* **a mask argument** (:class:`MaskArgumentRemoval`): the input passes unchanged and a mask
  argument of the forward is edited: a Transformer's ``attention_mask`` gets 0 at absent
  tokens, ViT's ``bool_masked_pos`` gets True at absent patches, a ``pixel_mask`` 0 at absent
  pixels. This is how a Hugging Face model ignores tokens natively.

``removal=`` takes one rule for every input (``"baseline"``, ``"presence"``, a
:class:`MaskArgumentRemoval` when there is one input, or a whole-batch
:class:`RemovalOperator`), or a tuple with one rule per input: ``"baseline"`` or an
:class:`InputRemoval` such as :class:`MaskArgumentRemoval` (e.g. text through its attention
mask, the image by a baseline).

Every operator receives the coalitions as a boolean tensor ``present`` of shape (R, B, F): R
coalitions for each of the B examples over F players, and lays the perturbed batch out as
(R, B) flattened, the layout Captum uses for ``perturbations_per_eval`` (so additional forward
args and targets are expanded by repetition).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from captum_interactions.modes import RemovalMode
from captum_interactions.players import Players, broadcastable
from captum_interactions.validation import is_number

BaselineInput = (None | int | float | Tensor | tuple[int | float | Tensor | None, ...]
                 | list[int | float | Tensor | None])


def presence_of_input(mask: Tensor, present: Tensor) -> Tensor:
    """Expand coalitions (R, B, F') to one input's mask shape: (R, B, *mask.shape[1:]).

    ``present`` must cover every id of ``mask`` (see :meth:`Players.with_fixed`)."""
    n_rows, batch, _ = present.shape
    ids = mask.expand((batch,) + tuple(mask.shape[1:])).reshape(batch, -1)
    gathered = present.gather(2, ids.unsqueeze(0).expand(n_rows, -1, -1))
    return gathered.view((n_rows, batch) + tuple(mask.shape[1:]))


def repeat_rows(inp: Tensor, n_rows: int) -> Tensor:
    """The input unchanged for each of ``n_rows`` coalitions: (n_rows * B, ...)."""
    return inp.unsqueeze(0).expand((n_rows,) + tuple(inp.shape)).reshape(
        (n_rows * inp.shape[0],) + tuple(inp.shape[1:]))


@runtime_checkable
class RemovalOperator(Protocol):
    """Builds the perturbed forward batch for a set of coalitions (all inputs at once)."""

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        """Validate against the inputs once, before any forward call."""

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        """Return the (R*B, ...) inputs and extra keyword arguments for the forward call."""


@runtime_checkable
class InputRemoval(Protocol):
    """Removes the absent players of one input (an entry of a per-input ``removal=`` tuple).

    Attributes:
        keyword: the forward keyword argument it sets, or None.
    """

    keyword: str | None

    def prepare_input(self, index: int, inp: Tensor, mask: Tensor, players: Players) -> None:
        """Validate against input ``index`` and its (internal) player mask, before any call."""

    def remove_input(
        self, inp: Tensor, mask: Tensor, present: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The input for R coalitions (``present``: (R, B, F'), see :meth:`Players.with_fixed`)
        as (R*B, ...) rows, and the keyword arguments it adds to the forward call."""


class PerInputRemoval:
    """One :class:`InputRemoval` per input; their keyword arguments are merged.

    Args:
        removals: one rule per input.
    """

    def __init__(self, removals: Sequence[InputRemoval]) -> None:
        self.removals = tuple(removals)

    @property
    def keywords(self) -> tuple[str, ...]:
        """The forward keyword arguments the rules set."""
        return tuple(r.keyword for r in self.removals if r.keyword is not None)

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        if len(self.removals) != len(inputs):
            raise ValueError(
                f"removal has {len(self.removals)} entries but inputs has {len(inputs)}: give "
                "one rule per input ('baseline' or e.g. MaskArgumentRemoval('attention_mask'))."
            )
        keywords = self.keywords
        twice = sorted({k for k in keywords if keywords.count(k) > 1})
        if twice:
            raise ValueError(
                f"removal sets the forward argument {twice[0]!r} for several inputs; each "
                "mask argument can belong to one input only."
            )
        for m, (rule, inp, mask) in enumerate(
                zip(self.removals, inputs, players.masks, strict=True)):
            rule.prepare_input(m, inp, mask, players)

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        present = players.with_fixed(present)
        out, kwargs = [], {}
        for rule, inp, mask in zip(self.removals, inputs, players.masks, strict=True):
            rows, extra = rule.remove_input(inp, mask, present)
            out.append(rows)
            kwargs.update(extra)
        return tuple(out), kwargs


class _Baseline:
    """Absent features of one input take the values of a baseline."""

    keyword: str | None = None

    def __init__(self, baseline: Any) -> None:
        self.baseline = baseline
        self._value: Tensor | None = None

    def prepare_input(self, index: int, inp: Tensor, mask: Tensor, players: Players) -> None:
        self._value = _baseline_tensor(f"baselines[{index}]", self.baseline, inp,
                                       f"inputs[{index}]")

    def remove_input(
        self, inp: Tensor, mask: Tensor, present: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self._value is None:
            raise RuntimeError("prepare_input() must run before remove_input().")
        keep = presence_of_input(mask, present)
        mixed = torch.where(keep, inp.unsqueeze(0), self._value)
        return mixed.reshape((present.shape[0] * inp.shape[0],) + tuple(inp.shape[1:])), {}


def _per_input_baselines(baselines: BaselineInput, n_inputs: int) -> tuple[Any, ...]:
    """Captum's ``baselines`` as one entry per input (None: 0)."""
    if baselines is None:
        baselines = 0.0
    if isinstance(baselines, list):
        baselines = tuple(baselines)  # a list works like a tuple: one entry per input
    if not isinstance(baselines, tuple):
        baselines = (baselines,) * n_inputs
    if len(baselines) != n_inputs:
        raise ValueError(
            f"baselines has {len(baselines)} entries but inputs has {n_inputs}: "
            "pass one baseline per input tensor (or a single scalar)."
        )
    return baselines


class BaselineRemoval(PerInputRemoval):
    """Replace absent features by baselines (Captum ``baselines`` semantics).

    Args:
        baselines: a scalar, a tensor broadcastable to the input (e.g. a per-modality mean
            token of shape (H,)), or a tuple with one such entry per input. ``None`` means 0.
    """

    def __init__(self, baselines: BaselineInput = None) -> None:
        super().__init__(())
        self.baselines = baselines

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        entries = _per_input_baselines(self.baselines, len(inputs))
        self.removals = tuple(_Baseline(0.0 if b is None else b) for b in entries)
        super().prepare(inputs, players)


def _baseline_tensor(name: str, base: Any, inp: Tensor, input_name: str) -> Tensor:
    """A baseline as a tensor in the input's dtype and device, checked: a real number, a numpy
    value or a tensor, broadcastable to the input, finite, and exactly representable in the
    input's dtype (a float baseline on integer ids would be silently truncated)."""
    if isinstance(base, np.ndarray | np.generic):
        base = torch.as_tensor(np.asarray(base))
    elif is_number(base):
        base = torch.tensor(int(base) if isinstance(base, numbers.Integral) else float(base))
    if not isinstance(base, Tensor) or base.dtype == torch.bool or base.dtype.is_complex:
        kind = type(base).__name__ if not isinstance(base, Tensor) else f"{base.dtype} tensor"
        raise TypeError(f"{name} must be a real number or a real tensor, got {kind}.")
    if base.dim() > inp.dim() or not broadcastable(base.shape, inp.shape):
        raise ValueError(
            f"{name} has shape {tuple(base.shape)}, which does not broadcast to "
            f"{input_name} of shape {tuple(inp.shape)}."
        )
    if base.dtype.is_floating_point and not bool(torch.isfinite(base).all()):
        raise ValueError(f"{name} holds NaN or Inf; baselines must be finite.")
    cast = base.to(device=inp.device, dtype=inp.dtype)
    if not inp.dtype.is_floating_point and base.dtype.is_floating_point and not bool(
            (cast.to(base.dtype) == base.to(inp.device)).all()):
        raise ValueError(
            f"{name} holds non-integer values but {input_name} has dtype {inp.dtype} (e.g. "
            "token ids): they would be truncated. Pass an integer baseline (such as a [PAD] or "
            "[MASK] id), or explain float embeddings instead."
        )
    return cast


def token_mask(mask: Tensor, inp: Tensor, index: int, rule: str) -> Tensor:
    """The players of one input's positions along dim 1: (B or 1, T). Refuses a mask that
    varies along the later dims, since ``rule`` removes whole positions."""
    if inp.dim() < 2:
        raise ValueError(
            f"{rule} removes whole positions of inputs shaped (B, T, ...); inputs[{index}] has "
            f"shape {tuple(inp.shape)}."
        )
    token = mask
    for dim in range(2, mask.dim()):
        first = token.narrow(dim, 0, 1)
        if not bool((token == first).all()):
            raise ValueError(
                f"{rule} removes whole positions along dim 1, but feature_mask[{index}] varies "
                f"along dim {dim}; players must be whole positions along dim 1 (or pass the "
                "position players to MaskArgumentRemoval(players=...))."
            )
        token = first
    token = token.reshape(token.shape[0], -1)
    return token.expand(token.shape[0], inp.shape[1])


class PresenceMaskRemoval:
    """Pass a boolean presence tensor per input; the model drops absent tokens itself.

    Every player must be a set of positions along dim 1 (the feature mask is constant along
    the other non-batch dims), so that presence can be given per token.

    Args:
        keyword: name of the forward keyword argument that receives the tuple of presence
            tensors, each (rows, T_m) with ``True`` for present tokens.
    """

    def __init__(self, keyword: str = "presence") -> None:
        self.keyword = keyword
        self._token_masks: tuple[Tensor, ...] = ()

    @property
    def keywords(self) -> tuple[str, ...]:
        """The forward keyword argument it sets."""
        return (self.keyword,)

    def prepare(self, inputs: tuple[Tensor, ...], players: Players) -> None:
        self._token_masks = tuple(
            token_mask(mask, inp, m, "removal='presence'")
            for m, (mask, inp) in enumerate(zip(players.masks, inputs, strict=False)))

    def perturb(
        self, inputs: tuple[Tensor, ...], players: Players, present: Tensor
    ) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        n_rows, batch, _ = present.shape
        repeated = tuple(repeat_rows(inp, n_rows) for inp in inputs)
        present = players.with_fixed(present)
        presence = tuple(
            presence_of_input(mask, present).reshape(n_rows * batch, -1)
            for mask in self._token_masks
        )
        return repeated, {self.keyword: presence}


class MaskArgumentRemoval:
    """Remove the players of one input by editing a mask argument of the forward.

    The input passes unchanged; the forward receives ``argument=mask_rows`` as a keyword:
    for each perturbed row, ``mask`` where the position's player is present and ``absent``
    where it is removed. Positions that are not players (id -1) keep ``mask``.

    * ``MaskArgumentRemoval("attention_mask", mask=enc["attention_mask"])``: a Transformer
      ignores absent tokens (padding is already 0 in the tokenizer's mask and stays 0).
    * ``MaskArgumentRemoval("bool_masked_pos", absent=True, players=patch_ids)``: ViT-style
      models replace absent patches by their mask token; ``patch_ids`` (L,) gives the player
      of each of the L patches, in the model's (row-major) order.
    * ``MaskArgumentRemoval("pixel_mask", players=...)``: a pixel mask, 0 at absent pixels.

    The mask reaches the forward **as a keyword**. A model that takes it positionally needs a
    lambda that takes it by name (``lambda ids, px, attention_mask: model(ids, px,
    attention_mask)``), and it must not also be passed in ``additional_forward_args``.

    Args:
        argument (str): the forward keyword to edit.
        mask (Tensor, optional): (B, L) or (L,) values of the argument when every player is
            present. Default: ``not absent`` everywhere (ones for an attention mask, False
            for ``bool_masked_pos``).
        absent (int, float or bool, optional): the value at removed positions. Default: 0.
        players (Tensor, optional): (L,) or (B, L) player id of each position of the mask
            argument (-1: not a player), with the ids of ``feature_mask``. Default: the
            input's players along dim 1 (one mask entry per token).

    Examples::

        >>> enc = tokenizer(texts, padding=True, return_tensors="pt",
        ...                 return_special_tokens_mask=True)
        >>> text_removal = MaskArgumentRemoval("attention_mask", mask=enc["attention_mask"])
        >>> sii = ShapleyInteractionIndex(
        ...     lambda ids, pixels, attention_mask: model(input_ids=ids, pixel_values=pixels,
        ...                                               attention_mask=attention_mask))
        >>> values = sii.attribute((enc["input_ids"], pixels), removal=(text_removal,
        ...                        "baseline"), baselines=(None, 0.0), feature_mask=masks)
    """

    def __init__(self, argument: str, mask: Tensor | None = None, *,
                 absent: int | float | bool = 0, players: Tensor | None = None) -> None:
        if not isinstance(argument, str) or not argument.isidentifier():
            raise ValueError(
                f"argument must be the name of a forward keyword argument (e.g. "
                f"'attention_mask'), got {argument!r}.")
        if mask is not None and (not isinstance(mask, Tensor) or mask.dim() not in (1, 2)):
            raise ValueError(f"mask must be a (B, L) or (L,) tensor, got {mask!r}.")
        if not (isinstance(absent, bool) or is_number(absent)):
            raise TypeError(f"absent must be an int, float or bool, got {absent!r}.")
        if players is not None and (
                not isinstance(players, Tensor) or players.dim() not in (1, 2)
                or players.dtype.is_floating_point or players.dtype == torch.bool):
            raise ValueError(
                f"players must be a (L,) or (B, L) integer tensor of player ids, got "
                f"{players!r}.")
        self.keyword: str | None = argument
        self.argument = argument
        self.mask = mask
        self.absent = absent
        self.players = players
        self._ids: Tensor | None = None  # (B or 1, L) internal player ids
        self._base: Tensor | None = None  # (B, L)

    def prepare_input(self, index: int, inp: Tensor, mask: Tensor, players: Players) -> None:
        batch = inp.shape[0]
        rule = f"MaskArgumentRemoval({self.argument!r})"
        if self.players is None:
            ids = token_mask(mask, inp, index, rule)
        else:
            ids = self.players.to(device=inp.device, dtype=torch.long)
            ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
            if ids.shape[0] not in (1, batch):
                raise ValueError(
                    f"{rule}: players has batch size {ids.shape[0]}; expected 1 or {batch}.")
            if ids.numel() and (int(ids.min()) < -1 or int(ids.max()) >= players.n_players):
                raise ValueError(
                    f"{rule}: players holds ids outside -1..{players.n_players - 1} (the ids "
                    "of feature_mask).")
            ids = torch.where(ids < 0, torch.full_like(ids, players.n_players), ids)
        length = ids.shape[1]
        if self.mask is None:
            dtype = torch.bool if isinstance(self.absent, bool) else torch.long
            base = torch.full((batch, length), not self.absent, dtype=dtype, device=inp.device)
        else:
            base = self.mask.to(inp.device)
            base = base.unsqueeze(0).expand(batch, -1) if base.dim() == 1 else base
            if tuple(base.shape) != (batch, length):
                raise ValueError(
                    f"{rule}: mask has shape {tuple(self.mask.shape)}; expected ({batch}, "
                    f"{length}): one entry per position of inputs[{index}] (or of players).")
        if not base.dtype.is_floating_point and not isinstance(self.absent, bool) and \
                float(self.absent) != int(self.absent):
            raise ValueError(
                f"{rule}: absent={self.absent!r} is fractional but the mask is {base.dtype}.")
        self._ids, self._base = ids, base

    def remove_input(
        self, inp: Tensor, mask: Tensor, present: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self._ids is None or self._base is None:
            raise RuntimeError("prepare_input() must run before remove_input().")
        n_rows, batch = present.shape[0], inp.shape[0]
        keep = presence_of_input(self._ids, present)  # (R, B, L)
        absent = torch.tensor(self.absent, dtype=self._base.dtype, device=self._base.device)
        edited = torch.where(keep, self._base.unsqueeze(0), absent)
        return repeat_rows(inp, n_rows), {self.argument: edited.reshape(n_rows * batch, -1)}


#: What ``removal=`` accepts: one rule for every input, or one per input.
RemovalSpec = (RemovalMode | RemovalOperator | InputRemoval
               | tuple[RemovalMode | InputRemoval, ...] | list[RemovalMode | InputRemoval])


def make_removal(removal: RemovalSpec, baselines: BaselineInput, n_inputs: int = 1
                 ) -> RemovalOperator:
    """Turn the ``removal`` argument of ``attribute`` into an operator."""
    if isinstance(removal, tuple | list):
        if len(removal) != n_inputs:
            raise ValueError(
                f"removal has {len(removal)} entries but inputs has {n_inputs}: give one rule "
                "per input ('baseline' or e.g. MaskArgumentRemoval('attention_mask')).")
        entries = _per_input_baselines(baselines, n_inputs)
        rules: list[InputRemoval] = []
        for m, (rule, base) in enumerate(zip(removal, entries, strict=True)):
            if isinstance(rule, str) and rule == "baseline":
                rules.append(_Baseline(0.0 if base is None else base))
            elif isinstance(rule, InputRemoval) and not isinstance(rule, str):
                if base is not None and isinstance(baselines, tuple | list):
                    raise ValueError(
                        f"baselines[{m}] is given but removal[{m}] is {type(rule).__name__}, "
                        f"which does not use a baseline: pass None there.")
                rules.append(rule)
            else:
                raise ValueError(
                    f"removal[{m}] must be 'baseline' or a per-input rule such as "
                    f"MaskArgumentRemoval('attention_mask'), got {rule!r} ('presence' applies "
                    "to every input at once: removal='presence').")
        return PerInputRemoval(rules)
    if isinstance(removal, str):
        if removal == "baseline":
            return BaselineRemoval(baselines)
        if removal == "presence":
            if baselines is not None:
                raise ValueError(
                    "baselines are unused with removal='presence': the model drops absent "
                    "tokens itself. Pass baselines=None or removal='baseline'."
                )
            return PresenceMaskRemoval()
        raise ValueError(
            f"removal must be 'baseline', 'presence', a removal operator or one rule per input, "
            f"got {removal!r}."
        )
    if isinstance(removal, InputRemoval):
        if n_inputs != 1:
            raise ValueError(
                f"removal={type(removal).__name__}(...) removes one input's players but there "
                f"are {n_inputs} inputs: pass one rule per input, e.g. removal=(rule, "
                "'baseline').")
        return make_removal((removal,), baselines, 1)
    if not isinstance(removal, RemovalOperator):
        raise TypeError(
            "removal must be 'baseline', 'presence', an object with prepare() and perturb(), "
            f"or one rule per input; got {type(removal).__name__}."
        )
    return removal


def removal_keywords(operator: RemovalOperator) -> tuple[str, ...]:
    """The forward keyword arguments an operator sets (empty when unknown)."""
    keywords = getattr(operator, "keywords", ())
    return tuple(keywords) if isinstance(keywords, tuple) else ()
