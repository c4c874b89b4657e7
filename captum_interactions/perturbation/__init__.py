"""The model as a game: :func:`model_game` builds a :class:`ModelGame` that evaluates v(S)."""

from captum_interactions.perturbation.game import Chunk, ModelGame, ShapiqGame, model_game

__all__ = ["Chunk", "ModelGame", "ShapiqGame", "model_game"]
