"""Expert-wise explanations (``explainer``), their typed results (``report``) and figures
(``plots``)."""

from __future__ import annotations

from fl_i2moe_layer.explain.explainer import ExpertExplainer
from fl_i2moe_layer.explain.report import (
    ComponentExplanation,
    ExplanationReport,
    RoutingDistribution,
)

__all__ = ["ComponentExplanation", "ExpertExplainer", "ExplanationReport",
           "RoutingDistribution"]
