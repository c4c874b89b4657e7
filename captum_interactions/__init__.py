"""captum-interactions: cross-modal feature-pair interactions for Captum.

Public API:

* :class:`ShapleyInteractionIndex`: synergy (SII > 0) and substitution (SII < 0) of pairs.
* :class:`RedundancyGap`: how much of a pair's evidence is redundant (backups).
* :func:`patch_grid_mask`, :func:`group_mask`: feature masks for images and flat vectors.
* :class:`BaselineRemoval`, :class:`PresenceMaskRemoval`, :class:`MaskArgumentRemoval`: how
  absent players are removed (``removal=`` takes one rule per input too).
"""

from captum_interactions.attr.redundancy_gap import RedundancyGap
from captum_interactions.attr.shapley_interaction_index import ShapleyInteractionIndex
from captum_interactions.estimators.exact import MAX_EXACT_PLAYERS
from captum_interactions.players import default_feature_mask, group_mask, patch_grid_mask
from captum_interactions.removal import (
    BaselineRemoval,
    InputRemoval,
    MaskArgumentRemoval,
    PresenceMaskRemoval,
    RemovalOperator,
)

__all__ = [
    "MAX_EXACT_PLAYERS",
    "BaselineRemoval",
    "InputRemoval",
    "MaskArgumentRemoval",
    "PresenceMaskRemoval",
    "RedundancyGap",
    "RemovalOperator",
    "ShapleyInteractionIndex",
    "default_feature_mask",
    "group_mask",
    "patch_grid_mask",
]
__version__ = "0.1.0"
