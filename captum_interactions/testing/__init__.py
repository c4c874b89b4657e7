"""Analytic games and tiny models with known interactions, for tests and benchmarks."""

from captum_interactions.testing.games import PolynomialGame, TableGame, random_polynomial_game
from captum_interactions.testing.toy_models import (
    TinyFusionTransformer,
    train_tiny_fusion,
)

__all__ = [
    "PolynomialGame",
    "TableGame",
    "TinyFusionTransformer",
    "random_polynomial_game",
    "train_tiny_fusion",
]
