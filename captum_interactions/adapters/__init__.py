"""Adapters for model families: forward functions and player masks for Hugging Face models,
and token embeddings explained through a hook on the embedding layer."""

from captum_interactions.adapters.embeddings import EmbeddingInputs
from captum_interactions.adapters.huggingface import (
    contrastive_score,
    token_names,
    token_players,
)

__all__ = ["EmbeddingInputs", "contrastive_score", "token_names", "token_players"]
