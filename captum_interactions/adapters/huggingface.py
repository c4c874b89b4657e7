"""Hugging Face models as they are: contrastive image-text scores and token players.

* :func:`contrastive_score` turns a CLIP- or SigLIP-style model, whose output scores every
  text against every image of the batch, into a forward function with one score per (text,
  image) pair of the batch: ``scale · cos(text_b, image_b) + bias``, the diagonal of the
  model's ``logits_per_text``, without computing the off-diagonal entries.
* :func:`token_players` builds the feature mask of a tokenised text: one player per real
  token (or per word), and -1 ("not a player", kept in every coalition, no cost, exact zero)
  for padding and special tokens.
* :func:`token_names` names those players by their text (word pieces joined), for
  ``explain(..., player_names=...)``.

Nothing here imports transformers: the functions use only the model's outputs and the
tokenizer's tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn


def contrastive_score(model: nn.Module) -> Callable[..., Tensor]:
    """A forward function ``f(input_ids, pixel_values, attention_mask=None)`` -> (B,) scores
    of a contrastive image-text model (``CLIPModel``, ``SiglipModel``, ...).

    Row b scores text b against image b only. The scale is ``model.logit_scale.exp()``, the
    bias ``model.logit_bias`` when the model has one (SigLIP), so the score is the entry the
    model's own ``logits_per_text[b, b]`` would hold.

    Args:
        model (nn.Module): a model whose output has normalised ``text_embeds`` and
            ``image_embeds`` and which holds ``logit_scale``.

    Returns:
        a function to hand to :class:`~captum_interactions.ShapleyInteractionIndex` with
        ``inputs=(input_ids, pixel_values)`` and ``additional_forward_args=(attention_mask,)``.

    Examples::

        >>> score = contrastive_score(clip)
        >>> sii = ShapleyInteractionIndex(score).attribute(
        ...     (ids, pixels), additional_forward_args=(attention_mask,),
        ...     baselines=(tokenizer.pad_token_id, 0.0), feature_mask=masks)
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "logit_scale"):
        raise TypeError(
            f"model must be a contrastive image-text model with a logit_scale (CLIPModel, "
            f"SiglipModel), got {type(model).__name__}."
        )

    def score(input_ids: Tensor, pixel_values: Tensor, attention_mask: Tensor | None = None
              ) -> Tensor:
        out = model(input_ids=input_ids, pixel_values=pixel_values,
                    attention_mask=attention_mask)
        text, image = out.text_embeds, out.image_embeds
        scale: Any = model.logit_scale
        bias: Any = getattr(model, "logit_bias", None)
        value = (text * image).sum(-1) * scale.exp()
        return value + bias if bias is not None else value

    return score


def token_players(
    attention_mask: Tensor,
    special_tokens_mask: Tensor | None = None,
    *,
    word_ids: Sequence[Sequence[int | None]] | None = None,
    offset: int = 0,
) -> Tensor:
    """A (B, T) feature mask for token ids: one player per real token, -1 elsewhere.

    Padding (``attention_mask == 0``) and special tokens (``special_tokens_mask == 1``:
    ``[CLS]``, ``[SEP]``, ``<s>``, ...) are not players: they stay as they are in every
    coalition, get exact zeros and cost no budget. With ``word_ids`` (a fast tokenizer's
    ``encoding.word_ids(b)`` for every example) the pieces of one word form one player.

    Players are numbered per example from ``offset`` (example b's k-th real token or word is
    ``offset + k``), so F is the largest count over the batch; an example with fewer tokens
    simply has players that never appear (their values are exactly 0).

    Args:
        attention_mask (Tensor): (B, T), 1 for real tokens.
        special_tokens_mask (Tensor, optional): (B, T), 1 for special tokens (the tokenizer's
            ``return_special_tokens_mask=True``).
        word_ids (sequence, optional): per example, the word index of each token (None for
            special tokens).
        offset (int, optional): first player id (to follow other inputs' players).

    Returns:
        (B, T) long tensor of player ids, -1 for positions that are not players.

    Examples::

        >>> enc = tokenizer(["a cat", "a red dog"], padding=True, return_tensors="pt",
        ...                 return_special_tokens_mask=True)
        >>> token_players(enc["attention_mask"], enc["special_tokens_mask"])
        tensor([[-1,  0,  1, -1, -1],
                [-1,  0,  1,  2, -1]])
    """
    if not isinstance(attention_mask, Tensor) or attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be a (B, T) tensor, got {attention_mask!r}.")
    keep = attention_mask != 0
    if special_tokens_mask is not None:
        if not isinstance(special_tokens_mask, Tensor) or \
                special_tokens_mask.shape != attention_mask.shape:
            raise ValueError(
                f"special_tokens_mask must be a tensor of the attention mask's shape "
                f"{tuple(attention_mask.shape)}, got {special_tokens_mask!r}.")
        keep &= special_tokens_mask == 0
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}.")
    if word_ids is None:
        ids = keep.long().cumsum(1) - 1
    else:
        if len(word_ids) != attention_mask.shape[0]:
            raise ValueError(f"word_ids has {len(word_ids)} entries; expected one per example "
                             f"({attention_mask.shape[0]}).")
        words = torch.tensor([[-1 if w is None else int(w) for w in row] for row in word_ids],
                             device=attention_mask.device)
        if words.shape != attention_mask.shape:
            raise ValueError(f"word_ids gives {tuple(words.shape)} tokens; the attention mask "
                             f"has {tuple(attention_mask.shape)}.")
        keep &= words >= 0
        # Renumber the words that keep a token consecutively from 0 in each example.
        first = keep & torch.cat([torch.ones_like(keep[:, :1]),
                                  words[:, 1:] != words[:, :-1]], dim=1)
        ids = first.long().cumsum(1) - 1
    return torch.where(keep, ids + offset, torch.full_like(ids, -1))


#: Word-piece markers removed when pieces of one player are joined: BERT's continuation
#: prefix, and the word-start marks of byte-level BPE (GPT-2, RoBERTa, CLIP) and SentencePiece.
_CONTINUATION = "##"
_WORD_START = ("\u0120", "\u2581")  # "Ġ", "▁"
_WORD_END = "</w>"  # CLIP's BPE end-of-word mark


def token_names(tokens: Sequence[Sequence[str]], feature_mask: Tensor) -> list[dict[int, str]]:
    """Names of token players: per example, player id -> its text.

    The pieces of one player are joined in order: BERT's ``##`` continuation prefix and the
    word-start marks of BPE / SentencePiece vocabularies (``Ġ``, ``▁``, ``</w>``) are dropped.
    Positions with id -1 are skipped.

    Args:
        tokens (sequence of sequences of str): per example, the token strings of every
            position, e.g. ``[tokenizer.convert_ids_to_tokens(row) for row in input_ids]``.
        feature_mask (Tensor): (B, T) (or (1, T)) player ids of the same positions, e.g. from
            :func:`token_players` (with its ``offset``).

    Returns:
        *list[dict[int, str]]*, one per example, for ``explain(player_names=...)``.

    Examples::

        >>> token_names([["[CLS]", "play", "##ing", "cats", "[SEP]"]],
        ...             torch.tensor([[-1, 0, 0, 1, -1]]))
        [{0: 'playing', 1: 'cats'}]
    """
    if not isinstance(feature_mask, Tensor) or feature_mask.dim() != 2 or \
            feature_mask.dtype.is_floating_point or feature_mask.dtype == torch.bool:
        raise ValueError(f"feature_mask must be a (B, T) integer tensor, got {feature_mask!r}.")
    if isinstance(tokens, str) or not all(
            isinstance(row, Sequence) and not isinstance(row, str) for row in tokens):
        raise TypeError("tokens must hold one list of token strings per example.")
    mask = feature_mask.expand(len(tokens), -1) if feature_mask.shape[0] == 1 else feature_mask
    if mask.shape[0] != len(tokens):
        raise ValueError(f"tokens has {len(tokens)} examples but feature_mask has "
                         f"{mask.shape[0]}.")
    names = []
    for b, row in enumerate(tokens):
        if len(row) != mask.shape[1]:
            raise ValueError(f"tokens[{b}] has {len(row)} tokens; feature_mask has "
                             f"{mask.shape[1]} positions.")
        pieces: dict[int, list[str]] = {}
        for token, player in zip(row, mask[b].tolist(), strict=True):
            if player >= 0:
                pieces.setdefault(int(player), []).append(_clean_piece(str(token)))
        names.append({p: "".join(parts) or "?" for p, parts in pieces.items()})
    return names


def _clean_piece(token: str) -> str:
    if token.startswith(_CONTINUATION) and len(token) > len(_CONTINUATION):
        token = token[len(_CONTINUATION):]
    if token.startswith(_WORD_START):
        token = token[1:]
    if token.endswith(_WORD_END):
        token = token[: -len(_WORD_END)]
    return token
