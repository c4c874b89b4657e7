"""Whole datasets: :func:`explain_dataset` (one process or ``torchrun``) writes per-example
explanations into a resumable :class:`ResultStore`; the store gives dataset-level summaries."""

from captum_interactions.datasets.explainer import explain_dataset, rank_and_world
from captum_interactions.datasets.store import ResultStore, Shard

__all__ = ["ResultStore", "Shard", "explain_dataset", "rank_and_world"]
