"""Typed results of :class:`~fl_i2moe_layer.ExpertExplainer`, with plotting shortcuts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_interactions.validation import check_int
from fl_i2moe_layer.explain import plots

TOKEN_METHODS = ("integrated_gradients", "attention_gradient")
PAIR_METHODS = ("sii", "redundancy_gap")
METHODS = TOKEN_METHODS + PAIR_METHODS

#: Display names of the methods (figure titles).
METHOD_TITLES = {"integrated_gradients": "Integrated Gradients",
                 "attention_gradient": "attention × gradient", "sii": "SII",
                 "redundancy_gap": "Redundancy Gap"}
#: What a method's colour means (colour-bar labels); scores are in units of the explained
#: output (a logit), except the rollout relevance, which has none.
COLOUR_LABELS = {
    "integrated_gradients": "IG attribution (logit units)\nred raises the output, blue lowers it",
    "attention_gradient": "relevance (unitless, ≥ 0)",
    "sii": "SII (logit units)\nred: synergy, blue: substitution",
    "redundancy_gap": "RG (logit units, ≥ 0)\ndarker red: more redundant",
}


@dataclass
class ComponentExplanation:
    """Explanations of one component: the mixture or one expert.

    With B examples, M modalities of T_m tokens and F = Σ T_m players (token t of modality
    m is player Σ_{m' < m} T_m' + t):

    Attributes:
        name: ``"mixture"`` or an expert name (``"unique_0"``, ..., ``"synergy"``,
            ``"redundancy"``).
        integrated_gradients: per modality (B, T_m): Captum IntegratedGradients on the
            projected tokens (zero baseline), summed over the hidden dimension.
        attention_gradient: per modality (B, T_m): attention × gradient rollout.
        sii: (B, F, F) Shapley Interaction Index of cross-modal token pairs (synergy > 0).
        redundancy_gap: (B, F, F) Redundancy Gap of cross-modal token pairs.
        faithfulness: per token method, a ``captum_interactions.metrics.TopKMaskingResult``
            (top-K% masking: comprehensiveness, sufficiency, AOPC, random control).
        concentration: per method, a ``captum_interactions.metrics.ConcentrationResult``
            (normalised entropy, Gini, top-k% mass).
    """

    name: str
    integrated_gradients: tuple[Tensor, ...] | None = None
    attention_gradient: tuple[Tensor, ...] | None = None
    sii: Tensor | None = None
    redundancy_gap: Tensor | None = None
    faithfulness: dict[str, Any] = field(default_factory=dict)
    concentration: dict[str, Any] = field(default_factory=dict)

    def tokens(self, method: str) -> tuple[Tensor, ...]:
        """Per-modality token scores of ``method`` (a token method)."""
        return self._computed(method, TOKEN_METHODS)

    def pairs(self, method: str) -> Tensor:
        """The (B, F, F) matrix of ``method`` (a pair method)."""
        return self._computed(method, PAIR_METHODS)

    def _computed(self, method: str, allowed: tuple[str, ...]) -> Any:
        if method not in allowed:
            raise ValueError(f"method must be one of {allowed}, got {method!r}.")
        value = getattr(self, method)
        if value is None:
            raise ValueError(f"{method!r} was not computed for {self.name!r}.")
        return value


@dataclass
class ExplanationReport:
    """Everything :meth:`ExpertExplainer.explain` computed for a batch.

    Attributes:
        components: ``"mixture"`` and each expert name -> :class:`ComponentExplanation`.
        expert_names: the experts, in the order of ``weights``' columns.
        weights: (B, E) routing weights: the local explanation of which interaction type
            the prediction relies on.
        logits: (B, C) the layer's prediction.
        target: (B,) the explained output index.
        lengths: tokens per modality (T_1, ..., T_M).
        masks: per modality (B, T_m) bool, the real tokens.
    """

    components: dict[str, ComponentExplanation]
    expert_names: tuple[str, ...]
    weights: Tensor
    logits: Tensor
    target: Tensor
    lengths: tuple[int, ...]
    masks: tuple[Tensor, ...]

    def __getitem__(self, name: str) -> ComponentExplanation:
        if name not in self.components:
            raise KeyError(f"no component {name!r}; have {list(self.components)}.")
        return self.components[name]

    def _example(self, example: int) -> int:
        """A valid example index (negative indices are refused: they hide mistakes)."""
        n = int(self.weights.shape[0])
        check_int("example", example)
        if not 0 <= example < n:
            raise IndexError(f"example {example} is out of range: the report explains {n} "
                             f"example(s), indices 0..{n - 1}.")
        return example

    def _modality(self, name: str, modality: int) -> int:
        check_int(name, modality)
        if not 0 <= modality < len(self.lengths):
            raise IndexError(f"{name} {modality} is out of range: the report has "
                             f"{len(self.lengths)} modalities.")
        return modality

    def cross_map(self, component: str = "mixture", method: str = "sii", *, example: int = 0,
                  modalities: tuple[int, int] = (0, 1)) -> Tensor:
        """The (T_a, T_b) block of a pair map between two modalities (e.g. token × patch)."""
        a, b = (self._modality("modalities", m) for m in modalities)
        starts = [0, *torch.tensor(self.lengths).cumsum(0).tolist()]
        matrix = self[component].pairs(method)[self._example(example)]
        return matrix[starts[a] : starts[a + 1], starts[b] : starts[b + 1]]

    # -- plotting shortcuts ---------------------------------------------------------------
    def plot_routing(self, *, example: int | None = None,
                     path: str | os.PathLike[str] | None = None) -> Any:
        """Bar chart of the routing weights of one example, or their mean ± std over the
        batch (``example=None``)."""
        w = self.weights if example is None else self.weights[self._example(example)]
        return plots.plot_routing_weights(w, self.expert_names, path=path)

    def plot_interactions(self, component: str = "mixture", method: str = "sii", *,
                          example: int = 0, modalities: tuple[int, int] = (0, 1),
                          row_labels: list[str] | None = None,
                          col_labels: list[str] | None = None,
                          xlabel: str | None = None, ylabel: str | None = None,
                          path: str | os.PathLike[str] | None = None) -> Any:
        """Heatmap of the token × patch block of a pair map; the axes default to
        "modality m token" and the colour bar says what the colour means."""
        block = self.cross_map(component, method, example=example, modalities=modalities)
        title = f"{METHOD_TITLES[method]} ({component}), example {example}"
        return plots.plot_interaction_heatmap(
            block, row_labels=row_labels, col_labels=col_labels, title=title,
            xlabel=f"modality {modalities[1]} token" if xlabel is None else xlabel,
            ylabel=f"modality {modalities[0]} token" if ylabel is None else ylabel,
            colorbar_label=COLOUR_LABELS[method], signed=method != "redundancy_gap", path=path)

    def plot_text(self, tokens: list[str], component: str = "mixture",
                  method: str = "integrated_gradients", *, example: int = 0,
                  modality: int = 0, width: float = 10.0,
                  path: str | os.PathLike[str] | None = None) -> Any:
        """Text with each token highlighted by its score (wrapped to ``width`` inches)."""
        modality = self._modality("modality", modality)
        scores = self[component].tokens(method)[modality][self._example(example)]
        return plots.plot_text_attributions(tokens, scores[: len(tokens)],
                                            title=f"{METHOD_TITLES[method]} ({component})",
                                            colorbar_label=COLOUR_LABELS[method],
                                            width=width, path=path)

    def plot_image(self, image: Tensor, component: str = "mixture",
                   method: str = "integrated_gradients", *, example: int = 0,
                   modality: int = 1, path: str | os.PathLike[str] | None = None) -> Any:
        """The image with its patch scores overlaid."""
        modality = self._modality("modality", modality)
        scores = self[component].tokens(method)[modality][self._example(example)]
        return plots.plot_image_patches(image, scores,
                                        title=f"{METHOD_TITLES[method]} ({component})",
                                        colorbar_label=COLOUR_LABELS[method], path=path)


@dataclass
class RoutingDistribution:
    """Routing weights over a dataset: the global explanation.

    Attributes:
        weights: (N, E) routing weights of every example.
        expert_names: the experts.
        mean, std: (E,) over examples.
        dominant: (E,) long, how many examples route most weight to each expert.
    """

    weights: Tensor
    expert_names: tuple[str, ...]
    mean: Tensor
    std: Tensor
    dominant: Tensor

    @classmethod
    def from_weights(cls, weights: Tensor, names: tuple[str, ...]) -> RoutingDistribution:
        std = weights.std(0) if weights.shape[0] > 1 else torch.zeros_like(weights[0])
        dominant = torch.bincount(weights.argmax(1), minlength=weights.shape[1])
        return cls(weights, names, weights.mean(0), std, dominant)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Box plot of the weight distribution of each expert."""
        return plots.plot_routing_distribution(self.weights, self.expert_names, path=path)
