"""Validated hyper-parameters of the fusion layers, kept as one dataclass so that a checkpoint
can record them and refuse to load into a model built differently."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from captum_interactions.validation import check_float, check_positive_int

TASKS = ("multiclass", "multilabel", "binary")
REPLACEMENTS = ("noise", "mean", "zero")
OBJECTIVES = ("specialised", "i2moe")
#: Values of the fields added after the first release that reproduce the earlier behaviour: a
#: configuration recorded before a field existed (an older ``config.json`` or checkpoint)
#: is read with these values, so an old model loads as the model it was.
LEGACY_VALUES: dict[str, Any] = {"objective": "i2moe", "routing_weight": 1.0,
                                  "balance_weight": 0.0, "invariance_weight": 1.0,
                                  "sufficiency_scale": 0.1}


@dataclass(frozen=True)
class FusionConfig:
    """Everything that determines the shape and behaviour of a fusion layer.

    See :class:`~fl_i2moe_layer.FLI2MoE` for the meaning of each field. :meth:`from_dict`
    reads a recorded configuration that lacks a field added later (``objective`` and the
    weights of the specialised objective) with the value that reproduces the earlier
    behaviour (:data:`LEGACY_VALUES`: ``objective="i2moe"``), and :meth:`to_dict` leaves
    out the fields that hold those values, so that the earlier layer's configuration is
    recorded (config.json, checkpoints) exactly as before.
    """

    num_modalities: int
    hidden_dim: int
    num_classes: int
    task: str = "multiclass"
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int | None = None
    dropout: float = 0.1
    max_len: int = 512
    temperature: float = 1.0
    interaction_weight: float = 0.5
    replacement: str = "noise"
    router_hidden: int | None = None
    objective: str = "specialised"
    routing_weight: float = 1.0
    balance_weight: float = 0.0
    invariance_weight: float = 1.0
    sufficiency_scale: float = 0.1

    def __post_init__(self) -> None:
        for name in ("num_modalities", "hidden_dim", "num_classes", "num_layers", "num_heads",
                     "max_len"):
            check_positive_int(name, getattr(self, name))
        if self.num_modalities < 2:
            raise ValueError(
                f"num_modalities must be >= 2 (a fusion layer needs two inputs), "
                f"got {self.num_modalities}."
            )
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}.")
        if self.task == "binary" and self.num_classes != 1:
            raise ValueError(
                f"task='binary' predicts one logit: num_classes must be 1, got "
                f"{self.num_classes} (use task='multiclass' for two softmax classes)."
            )
        if self.task == "multiclass" and self.num_classes < 2:
            raise ValueError(
                f"task='multiclass' needs num_classes >= 2, got {self.num_classes} "
                "(use task='binary' for one logit)."
            )
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be divisible by num_heads "
                f"({self.num_heads})."
            )
        for name in ("ffn_dim", "router_hidden"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, strict_maximum=True)
        check_float("temperature", self.temperature, minimum=0.0, strict_minimum=True)
        check_float("interaction_weight", self.interaction_weight, minimum=0.0)
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {OBJECTIVES}, got {self.objective!r}: "
                "'specialised' (the default: masked uniqueness experts, max-pooled routing, "
                "sufficiency routing targets) or 'i2moe' (the paper's objective)."
            )
        for name in ("routing_weight", "balance_weight", "invariance_weight"):
            check_float(name, getattr(self, name), minimum=0.0)
        check_float("sufficiency_scale", self.sufficiency_scale, minimum=0.0,
                    strict_minimum=True)
        if self.replacement not in REPLACEMENTS:
            raise ValueError(
                f"replacement must be one of {REPLACEMENTS}, got {self.replacement!r}."
            )

    @property
    def feedforward_dim(self) -> int:
        return self.ffn_dim if self.ffn_dim is not None else 2 * self.hidden_dim

    @property
    def router_dim(self) -> int:
        return self.router_hidden if self.router_hidden is not None else self.hidden_dim

    @property
    def specialised(self) -> bool:
        """True for ``objective="specialised"``."""
        return self.objective == "specialised"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, without those that hold their :data:`LEGACY_VALUES`: a
        configuration of the earlier layer is recorded exactly as before (so checkpoints
        written before these fields existed still match it), and :meth:`from_dict` restores
        the omitted values."""
        return {k: v for k, v in asdict(self).items()
                if not (k in LEGACY_VALUES and v == LEGACY_VALUES[k])}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FusionConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown FusionConfig fields {sorted(unknown)}.")
        return cls(**{**LEGACY_VALUES, **values})
