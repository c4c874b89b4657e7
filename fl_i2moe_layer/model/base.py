"""What FL-I2MoE and the dense baseline share: input handling, the loss entry point and the
Captum-facing forward function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.inputs import check_inputs, check_labels
from fl_i2moe_layer.model.losses import task_loss
from fl_i2moe_layer.model.output import FusionOutput, LossTerms
from fl_i2moe_layer.model.pretrained import PretrainedMixin

Component = None | int | str


class FusionBase(PretrainedMixin, nn.Module):
    """Base class of the fusion layers (not used directly).

    ``save_pretrained(folder)`` / ``from_pretrained(folder)`` (see
    :mod:`fl_i2moe_layer.model.pretrained`) store the :class:`FusionConfig` in
    ``config.json`` and the weights in ``model.safetensors``.
    """

    config: FusionConfig

    @classmethod
    def from_config(cls, config: FusionConfig) -> FusionBase:  # pragma: no cover - abstract
        raise NotImplementedError

    def pretrained_config(self) -> dict[str, Any]:
        """The constructor configuration written to ``config.json``."""
        return self.config.to_dict()

    @classmethod
    def _from_pretrained_config(cls, config: dict[str, Any]) -> Any:
        return cls.from_config(FusionConfig.from_dict(config))

    @property
    def num_experts(self) -> int:
        raise NotImplementedError

    @property
    def monitors_objective(self) -> bool:
        """True when early stopping on ``"loss"`` should watch the whole training objective on
        the validation data rather than the task loss alone (FL-I2MoE with
        ``objective="specialised"``: the mixture's task loss is reached long before the
        routing has learnt the interaction types)."""
        return False

    @property
    def expert_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _prepare(self, inputs: Any, masks: Any, presence: Any
                 ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        reference = next(self.parameters(), None)
        return check_inputs(inputs, masks, presence, self.config, reference)

    def loss_terms(self, out: FusionOutput, labels: Tensor) -> LossTerms:
        """Task loss only; FL-I2MoE adds its interaction losses."""
        labels = check_labels(labels, self.config, out.logits.shape[0])
        task = task_loss(out.logits, labels, self.config.task)
        zero = task.new_zeros(())
        return LossTerms(total=task, task=task, interaction=zero, per_expert=None)

    def loss(self, out: FusionOutput, labels: Tensor) -> Tensor:
        """The scalar training loss of ``out`` against ``labels`` (see :meth:`loss_terms`).

        Labels: (B,) class indices for ``task="multiclass"``, (B, C) 0/1 for ``"multilabel"``,
        (B,) or (B, 1) 0/1 for ``"binary"``; any other shape raises a ValueError.
        """
        return self.loss_terms(out, labels).total

    def component_index(self, component: Component) -> int | None:
        """None for the mixture, else the expert index named by ``component``."""
        if component is None or component == "mixture":
            return None
        if isinstance(component, bool):
            raise TypeError("component must be None, 'mixture', an expert index or name.")
        if isinstance(component, int):
            if not 0 <= component < self.num_experts:
                raise ValueError(
                    f"component must be in [0, {self.num_experts}), got {component}."
                )
            return component
        if isinstance(component, str):
            if component not in self.expert_names:
                raise ValueError(
                    f"component must be 'mixture' or one of {self.expert_names}, got "
                    f"{component!r}."
                )
            return self.expert_names.index(component)
        raise TypeError(f"component must be None, an int or a str, got {type(component)}.")

    def as_forward_func(self, component: Component = None) -> LayerForward:
        """A Captum-compatible forward function ``f(*inputs, *masks, presence=None)``.

        Pass the masks through ``additional_forward_args`` so that Captum and
        ``captum_interactions`` repeat them with the perturbed rows.

        Args:
            component (None, int or str, optional): ``None`` / ``"mixture"`` for the layer's
                prediction, or an expert index or name (see ``expert_names``).

        Examples::

            >>> from captum_interactions import ShapleyInteractionIndex
            >>> f = layer.as_forward_func("synergy")
            >>> sii = ShapleyInteractionIndex(f).attribute(
            ...     (text, image), additional_forward_args=(text_mask, image_mask),
            ...     target=0, removal="presence")
        """
        return LayerForward(self, self.component_index(component))


class LayerForward(nn.Module):
    """``f(x_1, ..., x_M[, mask_1, ..., mask_M], presence=None) -> (rows, C)`` for one
    component (the mixture or one expert) of a fusion layer."""

    def __init__(self, layer: FusionBase, expert: int | None) -> None:
        super().__init__()
        self.layer = layer
        self.expert = expert

    def forward(self, *args: Tensor, presence: Sequence[Tensor] | None = None) -> Tensor:
        m = self.layer.config.num_modalities
        if len(args) not in (m, 2 * m):
            raise ValueError(
                f"expected {m} inputs optionally followed by {m} masks, got {len(args)} tensors."
            )
        inputs, masks = list(args[:m]), (list(args[m:]) if len(args) == 2 * m else None)
        out = self.layer(inputs, masks, presence=presence, compute_interactions=False)
        if self.expert is None:
            return out.logits
        return out.expert_logits[:, self.expert]


def batch_first(t: Tensor) -> Tensor:
    """(E, N, ...) -> (N, E, ...)."""
    return t.transpose(0, 1)
