"""Explain token embeddings of a model that takes token ids, through a forward hook.

Explaining a text through its token ids restricts the removal of a token to swapping its id
for another id (a [PAD] or [MASK] id). Explaining the token *embeddings* ``E`` (a float
(B, T, H) input) allows any baseline vector: for a coalition S of players, the game is

    v(S) = f(ids, E_S ⊕ b_{T∖S}),    (E_S ⊕ b)_t = E_t if token t is present, else b_t,

with, e.g., ``b`` = the embedding of the [PAD] id, a mean training embedding or zeros. When
``b_t = embed(pad)_t`` the two games coincide: replacing token t's embedding by the pad
embedding is what the embedding layer computes for ids whose t-th id is the pad id, so the
attributions on embeddings then equal those on ids with the pad id as baseline (for players
the model reads only through their embeddings: not CLIP's EOS, which it locates by id).

Why a hook rather than ``inputs_embeds``: many models cannot be called with embeddings alone.
CLIP's text model (transformers 5) accepts no ``inputs_embeds``, and it pools the text at the
EOS position that it finds in ``input_ids``; encoder-decoder models call their shared
embedding for the decoder ids too. So the ids must still reach the model and only the output
of the token embedding layer is replaced. :class:`EmbeddingInputs` does that, in the spirit of
Captum's ``configure_interpretable_embedding_layer``, without touching the model's forward:
its :meth:`~EmbeddingInputs.forward` turns a forward function of ids into one of embeddings,
and while that function runs, a forward hook on the layer returns the given embeddings for
the call whose ids are the explained ids (repeated to the number of rows), and leaves every
other call (a decoder's ids, another batch) alone. Outside such a call the hook does nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn


def _describe(layer: nn.Module) -> str:
    """A short name for a layer in messages: its repr when it fits on a line, else its type."""
    text = repr(layer)
    return text if "\n" not in text and len(text) <= 80 else type(layer).__name__


def _ids_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    """The token ids a layer was called with: its first positional tensor argument, or the
    keyword ``input_ids`` / ``input``."""
    if args and isinstance(args[0], Tensor):
        return args[0]
    for key in ("input_ids", "input"):
        value = kwargs.get(key)
        if isinstance(value, Tensor):
            return value
    return None


def _check_ids(name: str, ids: Any) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype.is_complex \
            or ids.dtype == torch.bool:
        kind = f"a {ids.dtype} tensor" if isinstance(ids, Tensor) else type(ids).__name__
        raise TypeError(
            f"{name} must be an integer tensor of token ids (e.g. a tokenizer's input_ids), "
            f"got {kind}."
        )
    return ids


class EmbeddingInputs:
    """Explain the token embeddings of a model whose forward takes token ids.

    Registers a forward hook on ``layer`` (the token embedding layer) once; the hook is inert
    except while a function returned by :meth:`forward` runs. Use it as a context manager, or
    call :meth:`remove` when done.

    Args:
        layer (nn.Module): the module that maps token ids to token embeddings, e.g.
            ``model.get_input_embeddings()``, or ``model.text_model.embeddings.token_embedding``
            for CLIP. Its output for ``input_ids`` must be a float (B, T, H) tensor.
        input_ids (Tensor): (B, T) integer token ids, on the layer's device: the ids the
            explained embeddings belong to. They still reach the model (for attention masks
            built from ids, EOS pooling, ...).

    Attributes:
        embeddings (Tensor): ``layer(input_ids)``, detached, (B, T, H): the input to explain.
        input_ids (Tensor): the ids given.
        layer (nn.Module): the layer given.

    Examples::

        >>> with EmbeddingInputs(clip.text_model.embeddings.token_embedding, ids) as emb:
        ...     sii = ShapleyInteractionIndex(emb.forward(contrastive_score(clip))).attribute(
        ...         (emb.embeddings, pixels), additional_forward_args=(attention,),
        ...         baselines=(emb.embed(torch.zeros_like(ids)), 0.0),
        ...         feature_mask=(masks[0].unsqueeze(-1), masks[1]))

    A token's embedding replaced by the embedding of the pad id is exactly the model's view
    of ids with that id replaced by the pad id, except for tokens that the model also finds
    by id (CLIP pools at the EOS id: :func:`token_players` makes special tokens non-players);
    other baselines (zeros, a mean embedding) are what embeddings add. The (B, T) token
    feature mask needs a trailing dim to broadcast to (B, T, H): ``mask.unsqueeze(-1)``.
    If the model calls ``layer`` a second time with the very same ids
    (an encoder-decoder given ``decoder_input_ids`` equal to ``input_ids``), that call's
    output is replaced too: only the ids tell the calls apart.
    """

    def __init__(self, layer: nn.Module, input_ids: Tensor) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"layer must be the model's token embedding module (an nn.Module such as "
                f"model.get_input_embeddings()), got {type(layer).__name__}."
            )
        input_ids = _check_ids("input_ids", input_ids)
        if input_ids.dim() != 2 or input_ids.numel() == 0:
            raise ValueError(
                f"input_ids must have shape (B, T) with B, T >= 1, got {tuple(input_ids.shape)}: "
                "pass the batch of token ids the tokenizer returned (input_ids[None] for one "
                "text)."
            )
        self.layer = layer
        self.input_ids = input_ids
        self._name = _describe(layer)
        self._pending: tuple[Tensor, Tensor] | None = None
        self._calls = 0
        self._matched = 0
        self._removed = False
        with torch.no_grad():
            embeddings = layer(input_ids)
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 3 or \
                not embeddings.dtype.is_floating_point or \
                embeddings.shape[:2] != input_ids.shape:
            got = (f"{embeddings.dtype} {tuple(embeddings.shape)}"
                   if isinstance(embeddings, Tensor) else type(embeddings).__name__)
            raise ValueError(
                f"layer {self._name} returned {got} for input_ids of shape "
                f"{tuple(input_ids.shape)}; expected float embeddings (B, T, H) = "
                f"({input_ids.shape[0]}, {input_ids.shape[1]}, H). Pass the token embedding "
                "layer (model.get_input_embeddings())."
            )
        self.embeddings: Tensor = embeddings.detach()
        self._handle = layer.register_forward_hook(self._hook, with_kwargs=True)

    def embed(self, ids: Tensor) -> Tensor:
        """The layer's embeddings of other ids, detached, e.g. a baseline: the embeddings of
        [PAD] or [MASK] ids (``torch.full_like(input_ids, pad_id)``).

        Args:
            ids (Tensor): integer token ids that the layer accepts ((B, T), or (T,), ...).

        Returns:
            ``layer(ids)`` without gradient: (B, T, H) for (B, T) ids.

        Examples::

            >>> baseline = emb.embed(torch.full_like(ids, tokenizer.pad_token_id))
        """
        ids = _check_ids("ids", ids)
        with torch.no_grad():
            out = self.layer(ids)
        if not isinstance(out, Tensor):
            raise TypeError(f"layer {self._name} returned {type(out).__name__}, not a tensor.")
        return out.detach()

    def forward(self, forward_func: Callable[..., Any]) -> Callable[..., Any]:
        """A forward function of embeddings, to hand to an attribution method.

        ``f(embeddings, *rest, **kwargs)`` calls ``forward_func(ids_rows, *rest, **kwargs)``,
        where ``ids_rows = input_ids.repeat(R, 1)`` has as many rows as ``embeddings``
        (R * B rows in Captum's perturbation layout: row r * B + b belongs to example b), and
        while that call runs the layer's output for ``ids_rows`` is ``embeddings``.

        Args:
            forward_func (Callable): the model's forward function of token ids first, then any
                other inputs and additional forward arguments, e.g.
                ``contrastive_score(clip)`` or ``lambda ids, mask: model(ids, mask).logits``.

        Returns:
            the function of embeddings (R * B, T, H) with the same other arguments.

        Raises:
            ValueError: embeddings of the wrong shape; TypeError: of another dtype or device
                than the layer's output; RuntimeError: the layer was not called with
                ``ids_rows`` during ``forward_func`` (wrong layer), or this helper was
                removed.

        Examples::

            >>> f = emb.forward(lambda ids, mask: model(input_ids=ids, attention_mask=mask))
            >>> f(emb.embeddings, attention_mask)  # the model's own output
        """
        self._check_open()
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}.")

        @functools.wraps(forward_func)
        def embedding_forward(embeddings: Tensor, *args: Any, **kwargs: Any) -> Any:
            self._check_open()
            ids_rows = self._ids_rows(embeddings)
            if self._pending is not None:
                raise RuntimeError(
                    "EmbeddingInputs: a forward function of embeddings was called while another "
                    "one of the same helper is running; call them one after the other."
                )
            self._pending = (ids_rows, embeddings)
            self._calls = self._matched = 0
            try:
                out = forward_func(ids_rows, *args, **kwargs)
            finally:
                self._pending = None
            if self._matched == 0:
                seen = (f"was called {self._calls} time(s), never with" if self._calls
                        else "was never called, so not with")
                raise RuntimeError(
                    f"layer {self._name} {seen} the ids passed to forward_func (input_ids "
                    f"repeated to {ids_rows.shape[0]} rows, shape {tuple(ids_rows.shape)}), so "
                    "the embeddings were not used. Pass the layer that embeds those ids "
                    "(model.get_input_embeddings(), or model.text_model.embeddings."
                    "token_embedding for CLIP), and make forward_func give its first argument "
                    "to the model unchanged."
                )
            return out

        return embedding_forward

    def remove(self) -> None:
        """Remove the hook (idempotent). Functions from :meth:`forward` raise afterwards."""
        if not self._removed:
            self._handle.remove()
            self._removed = True
            self._pending = None

    def __enter__(self) -> EmbeddingInputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def _check_open(self) -> None:
        if self._removed:
            raise RuntimeError(
                f"this EmbeddingInputs was removed (remove() or the end of its with block): its "
                f"hook on layer {self._name} is gone. Create a new EmbeddingInputs(layer, "
                "input_ids) and call its forward()."
            )

    def _ids_rows(self, embeddings: Tensor) -> Tensor:
        """Check the embeddings against the explained ones; the ids repeated to their rows."""
        ref = self.embeddings
        batch, length, hidden = ref.shape
        if not isinstance(embeddings, Tensor):
            raise TypeError(
                f"embeddings must be a tensor (R * B, T, H) = (R * {batch}, {length}, {hidden}), "
                f"got {type(embeddings).__name__}: pass EmbeddingInputs.embeddings as the input."
            )
        if embeddings.dim() != 3 or embeddings.shape[0] == 0 or embeddings.shape[0] % batch \
                or embeddings.shape[1:] != ref.shape[1:]:
            raise ValueError(
                f"embeddings has shape {tuple(embeddings.shape)}; expected (R * B, T, H) = "
                f"(R * {batch}, {length}, {hidden}) with R >= 1: the explained embeddings "
                "(EmbeddingInputs.embeddings) or rows of them in Captum's layout (row r * B + b "
                "is example b)."
            )
        if embeddings.dtype != ref.dtype or embeddings.device != ref.device:
            raise TypeError(
                f"embeddings are {embeddings.dtype} on {embeddings.device}, but layer "
                f"{self._name} returns {ref.dtype} on {ref.device}; convert them with "
                f"embeddings.to(dtype={ref.dtype}, device='{ref.device}') (no silent casts)."
            )
        return self.input_ids.repeat(embeddings.shape[0] // batch, 1)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
              output: Any) -> Any:
        pending = self._pending
        if pending is None:
            return None
        self._calls += 1
        ids_rows, embeddings = pending
        ids = _ids_argument(args, kwargs)
        if ids is None or ids.shape != ids_rows.shape or \
                not torch.equal(ids, ids_rows.to(ids.device)):
            return None  # another call (a decoder's ids, ...): left alone
        if not isinstance(output, Tensor) or output.shape != embeddings.shape:
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise RuntimeError(
                f"layer {self._name} returned {got} for the explained ids, but the embeddings "
                f"to substitute have shape {tuple(embeddings.shape)}; was the layer changed "
                "since EmbeddingInputs was created? Create it again."
            )
        if output.dtype != embeddings.dtype or output.device != embeddings.device:
            raise TypeError(
                f"layer {self._name} now returns {output.dtype} on {output.device}, but the "
                f"embeddings are {embeddings.dtype} on {embeddings.device} (was the model "
                "converted after EmbeddingInputs was created?); convert them with "
                f"embeddings.to(dtype={output.dtype}, device='{output.device}')."
            )
        self._matched += 1
        return embeddings
