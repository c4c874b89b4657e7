"""Faithfulness and concentration metrics for pair interactions and feature attributions.

* :class:`PairMaskingFaithfulness`: do the top-ranked pairs (SII, RG, -SII, ...) matter more
  than random pairs? Ranked versus random pair removal, with a paired Wilcoxon test.
* :func:`topk_masking`: comprehensiveness, sufficiency and AOPC of per-feature attributions.
* :func:`concentration`: normalised entropy, Gini and top-k% mass of attributions or
  interaction matrices.
* :func:`player_attributions`, :func:`requested_pair_mask`: helpers to feed them.

Definitions and how to read the results: ``docs/metrics.md``.
"""

from captum_interactions.metrics.concentration import ConcentrationResult, concentration
from captum_interactions.metrics.pair_masking import PairMaskingFaithfulness, PairMaskingResult
from captum_interactions.metrics.player_scores import player_attributions, requested_pair_mask
from captum_interactions.metrics.topk_masking import TopKMaskingResult, topk_masking

__all__ = [
    "ConcentrationResult",
    "PairMaskingFaithfulness",
    "PairMaskingResult",
    "TopKMaskingResult",
    "concentration",
    "player_attributions",
    "requested_pair_mask",
    "topk_masking",
]
