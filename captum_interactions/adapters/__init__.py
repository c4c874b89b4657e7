"""Adapters for model families: forward functions and player masks for Hugging Face models."""

from captum_interactions.adapters.huggingface import contrastive_score, token_players

__all__ = ["contrastive_score", "token_players"]
