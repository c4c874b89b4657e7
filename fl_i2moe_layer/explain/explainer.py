"""Expert-wise explanations of a fusion layer: token / patch attributions, SII and RG maps,
routing weights, and top-K% faithfulness and concentration, for the mixture and every expert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from captum.attr import IntegratedGradients
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.metrics import concentration, requested_pair_mask, topk_masking
from captum_interactions.validation import check_bool, check_positive_int
from fl_i2moe_layer.explain.attention_gradient import rollout
from fl_i2moe_layer.explain.report import (
    METHODS,
    PAIR_METHODS,
    TOKEN_METHODS,
    ComponentExplanation,
    ExplanationReport,
    RoutingDistribution,
)
from fl_i2moe_layer.model.base import FusionBase


@contextmanager
def _eval_mode(module: nn.Module) -> Any:
    """Explanations need a deterministic forward (no dropout); restore the mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _names(option: str, given: str | Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """A name or a sequence of names, each from ``allowed`` (a single string is one name,
    never a sequence of characters)."""
    names = (given,) if isinstance(given, str) else given
    if not isinstance(names, Sequence) or not names:
        raise TypeError(f"{option} must be a name or a non-empty sequence of names from "
                        f"{tuple(allowed)}, got {given!r}.")
    for name in names:
        if name not in allowed:
            raise ValueError(f"{option} must be drawn from {tuple(allowed)}, got {name!r}.")
    return tuple(names)


def _split(scores: Tensor, lengths: Sequence[int]) -> tuple[Tensor, ...]:
    return tuple(scores.split(list(lengths), dim=-1))


class ExpertExplainer:
    r"""Explain an :class:`~fl_i2moe_layer.FLI2MoE` layer expert by expert.

    For the mixture and each expert it computes, on the layer's (projected) token inputs:

    * ``"integrated_gradients"``: Captum IntegratedGradients per token (zero baseline),
      summed over the hidden dimension;
    * ``"attention_gradient"``: attention × gradient rollout per token;
    * ``"sii"`` and ``"redundancy_gap"``: cross-modal token-pair maps from
      ``captum_interactions`` with presence-mask removal (absent tokens are dropped from
      attention and pooling, not replaced);

    plus the routing weights (local explanation), and, for the token methods, top-K% masking
    faithfulness and the concentration of every map (``captum_interactions.metrics``).
    :meth:`routing_distribution` gives the routing weights over a dataset (global explanation).

    Args:
        layer (FLI2MoE, DenseFusion or ProjectedFusion): the model. A ``ProjectedFusion`` is
            explained on its projected features.
        ig_steps (int, optional): IntegratedGradients steps. Default: 32.

    Examples::

        >>> explainer = ExpertExplainer(layer)
        >>> report = explainer.explain([text, image], [text_mask, image_mask], target="pred",
        ...                            n_samples=512)
        >>> report.weights.shape                       # (B, M + 2) routing weights
        torch.Size([4, 4])
        >>> report["synergy"].sii.shape                # (B, F, F), F = T + P
        torch.Size([4, 20, 20])
        >>> report.plot_interactions("synergy", "sii", example=0, path="synergy.png")
    """

    def __init__(self, layer: nn.Module, *, ig_steps: int = 32) -> None:
        projections = getattr(layer, "projections", None)
        fusion = getattr(layer, "fusion", layer)
        if not isinstance(fusion, FusionBase):
            raise TypeError(
                "layer must be an FLI2MoE, a DenseFusion or a ProjectedFusion, got "
                f"{type(layer).__name__}."
            )
        check_positive_int("ig_steps", ig_steps)
        self.model = layer
        self.layer: FusionBase = fusion
        self.projections = projections
        self.ig_steps = ig_steps

    # -- inputs ---------------------------------------------------------------------------
    def _project(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if self.projections is None:
            return tuple(x.detach() for x in inputs)
        with torch.no_grad():
            return tuple(p(x) for p, x in zip(self.projections, inputs, strict=True))

    def _target(self, target: Any, logits: Tensor) -> Tensor:
        batch = logits.shape[0]
        if isinstance(target, str):
            if target != "pred":
                raise ValueError(f"target must be 'pred', an int or a tensor, got {target!r}.")
            return logits.argmax(1)  # one logit (binary) gives index 0
        if isinstance(target, bool):
            raise TypeError("target must be 'pred', an int or a tensor, not a bool.")
        if isinstance(target, int):
            t = torch.full((batch,), target, dtype=torch.long, device=logits.device)
        elif isinstance(target, Tensor):
            if target.dtype.is_floating_point or target.dtype == torch.bool:
                raise TypeError(f"target must hold integer indices, got {target.dtype}.")
            t = target.to(logits.device).long().reshape(-1)
            if t.numel() == 1:
                t = t.expand(batch).clone()
            if t.numel() != batch:
                raise ValueError(f"target has {t.numel()} entries, expected 1 or {batch}.")
        else:
            raise TypeError(f"target must be 'pred', an int or a tensor, got {type(target)}.")
        if bool(((t < 0) | (t >= logits.shape[1])).any()):
            raise ValueError(f"target must index the {logits.shape[1]} outputs.")
        return t

    def _components(self, components: Sequence[str] | None) -> tuple[str, ...]:
        names = ("mixture", *self.layer.expert_names)
        if components is None:
            return names
        return _names("components", components, names)

    # -- methods --------------------------------------------------------------------------
    def _integrated_gradients(self, component: str, xs: tuple[Tensor, ...],
                              masks: tuple[Tensor, ...], target: Tensor) -> tuple[Tensor, ...]:
        ig = IntegratedGradients(self.layer.as_forward_func(component))
        attr = ig.attribute(xs, target=target, additional_forward_args=masks,
                            n_steps=self.ig_steps)
        return tuple(a.sum(-1).detach() for a in attr)

    def _attention_gradient(self, xs: tuple[Tensor, ...], masks: tuple[Tensor, ...],
                            target: Tensor, weights: Tensor) -> dict[str, Tensor]:
        """One backward pass for all experts: expert e's logit depends on its own attention
        only, so the gradient of the sum of the experts' target logits separates them."""
        out = self.layer(list(xs), list(masks), compute_interactions=False,
                         return_attentions=True)
        assert out.attentions is not None
        e = out.expert_logits.shape[1]
        picked = out.expert_logits.gather(2, target.view(-1, 1, 1).expand(-1, e, 1)).sum()
        grads = torch.autograd.grad(picked, out.attentions)
        to_batch = [a.detach().transpose(0, 1) for a in out.attentions]
        keep = torch.cat(masks, 1)
        relevance = rollout(to_batch, [g.transpose(0, 1) for g in grads], keep)  # (B, E, L)
        result = {name: relevance[:, i] for i, name in enumerate(self.layer.expert_names)}
        # The mixture's relevance: each expert's, weighted by its routing weight.
        result["mixture"] = (weights[:, :, None] * relevance).sum(1)
        return result

    def explain(self, inputs: Sequence[Tensor], masks: Sequence[Tensor] | None = None, *,
                target: str | int | Tensor = "pred", methods: Sequence[str] = METHODS,
                components: Sequence[str] | None = None, n_samples: int | None = None,
                perturbations_per_eval: int = 64, rg_candidates: int = 8,
                faithfulness: bool = True, ks: Sequence[float] = (10, 25), n_random: int = 5,
                seed: int = 0, show_progress: bool = False) -> ExplanationReport:
        r"""Explain a batch, component by component.

        Args:
            inputs (list of Tensor): M token tensors (B, T_m, H) (or backbone features for a
                ``ProjectedFusion``).
            masks (list of Tensor, optional): M padding masks (B, T_m). Default: all real.
            target (str, int or Tensor, optional): ``"pred"`` (the mixture's predicted class,
                index 0 for a binary layer), a class index, or one per example. The same
                output is explained for the mixture and every expert. Default: ``"pred"``.
            methods (sequence of str, optional): any of ``"integrated_gradients"``,
                ``"attention_gradient"``, ``"sii"``, ``"redundancy_gap"``. Default: all.
            components (sequence of str, optional): ``"mixture"`` and/or expert names.
                Default: the mixture and every expert.
            n_samples (int, optional): coalitions per example for SII and RG. Default:
                max(256, 8 F) with F = Σ T_m.
            perturbations_per_eval (int, optional): coalitions per forward call. Default: 64.
            rg_candidates (int, optional): RG is scored on each example's k most negative-SII
                cross pairs. Default: 8.
            faithfulness (bool, optional): top-K% masking of the token methods' scores
                (comprehensiveness, sufficiency, AOPC against a random control) with
                presence-mask removal. Default: True.
            ks (sequence of float, optional): K values (percent) for faithfulness.
                Default: (10, 25).
            n_random (int, optional): random repeats of the faithfulness control. Default: 5.
            seed (int, optional): seed of the samplers. Default: 0.
            show_progress (bool, optional): progress bars of the samplers. Default: False.

        Returns:
            :class:`ExplanationReport`: per component (``report["synergy"]``) the token
            scores, pair maps, faithfulness and concentration, plus the routing weights.
        """
        methods = _names("methods", methods, METHODS)
        faithfulness = check_bool("faithfulness", faithfulness)
        show_progress = check_bool("show_progress", show_progress)
        check_positive_int("rg_candidates", rg_candidates)
        check_positive_int("n_random", n_random)
        if n_samples is not None:
            check_positive_int("n_samples", n_samples)
        names = self._components(components)
        xs = self._project(inputs)
        _, keep = self.layer._prepare(list(xs), masks, None)
        masks_t = tuple(k.clone() for k in keep)
        lengths = tuple(x.shape[1] for x in xs)
        n_players = sum(lengths)
        if n_samples is None:
            n_samples = max(256, 8 * n_players)
        with _eval_mode(self.model):
            with torch.no_grad():
                out = self.layer(list(xs), list(masks_t), compute_interactions=False)
            tgt = self._target(target, out.logits)
            weights = out.weights.detach()
            comps = {name: ComponentExplanation(name) for name in names}
            if "attention_gradient" in methods:
                rel = self._attention_gradient(xs, masks_t, tgt, weights)
                for name in names:
                    comps[name].attention_gradient = _split(rel[name], lengths)
            for name in names:
                comp = comps[name]
                f = self.layer.as_forward_func(name)
                if "integrated_gradients" in methods:
                    comp.integrated_gradients = self._integrated_gradients(name, xs, masks_t,
                                                                           tgt)
                common: dict[str, Any] = {"additional_forward_args": masks_t, "target": tgt,
                          "removal": "presence", "n_samples": n_samples,
                          "perturbations_per_eval": perturbations_per_eval, "seed": seed,
                          "show_progress": show_progress}
                with torch.no_grad():
                    if "sii" in methods:
                        comp.sii = ShapleyInteractionIndex(f).attribute(xs, **common)
                    if "redundancy_gap" in methods:
                        # RG's candidates come from this component's SII: computed once.
                        comp.redundancy_gap = RedundancyGap(f).attribute(
                            xs, candidates=rg_candidates, sii=comp.sii, **common)
                self._metrics(comp, f, xs, masks_t, tgt, faithfulness=faithfulness, ks=ks,
                              n_random=n_random, seed=seed)
        return ExplanationReport(
            components=comps, expert_names=self.layer.expert_names, weights=weights,
            logits=out.logits.detach(), target=tgt, lengths=lengths, masks=masks_t,
        )

    def _metrics(self, comp: ComponentExplanation, f: Any, xs: tuple[Tensor, ...],
                 masks: tuple[Tensor, ...], target: Tensor, *, faithfulness: bool,
                 ks: Sequence[float], n_random: int, seed: int) -> None:
        """Faithfulness (top-K% masking) and concentration through captum_interactions.metrics.

        Padding tokens are players too (the presence mask cannot add tokens back), but they
        never carry attribution; concentration counts real tokens (and pairs of them) only.
        """
        valid = torch.cat(masks, 1)
        for method in TOKEN_METHODS:
            scores = getattr(comp, method)
            if scores is None:
                continue
            flat = torch.cat(scores, 1).to(xs[0].dtype)
            comp.concentration[method] = concentration(flat, valid)
            if faithfulness:
                with torch.no_grad():
                    comp.faithfulness[method] = topk_masking(
                        f, xs, flat, ks=ks, target=target, additional_forward_args=masks,
                        removal="presence", n_random=n_random, seed=seed)
        pair_mask = requested_pair_mask(xs)[None] & valid[:, :, None] & valid[:, None, :]
        if not bool(pair_mask.flatten(1).any(1).all()):
            pair_mask = requested_pair_mask(xs)  # some example has one modality only
        for method in PAIR_METHODS:
            values = getattr(comp, method)
            if values is not None:
                comp.concentration[method] = concentration(values, pair_mask)

    def routing_distribution(self, data: Dataset | Iterable[Any], *,
                             batch_size: int = 64) -> RoutingDistribution:
        """Routing weights over a dataset: the global explanation.

        Args:
            data (Dataset or iterable of batches): a dataset of ``(inputs, masks[, label])``
                items (e.g. :class:`~fl_i2moe_layer.training.FusionDataset`), or a loader
                yielding such batches.
            batch_size (int, optional): when ``data`` is a dataset. Default: 64.

        Returns:
            :class:`RoutingDistribution` (weights (N, E), mean, std, dominant counts) with
            a ``plot()`` helper.

        Examples::

            >>> dist = explainer.routing_distribution(val_data)
            >>> dict(zip(dist.expert_names, dist.mean.tolist()))
            {'unique_0': 0.21, 'unique_1': 0.18, 'synergy': 0.42, 'redundancy': 0.19}
        """
        check_positive_int("batch_size", batch_size)
        loader = DataLoader(data, batch_size=batch_size) if isinstance(data, Dataset) else data
        device = next(self.model.parameters()).device
        weights = []
        with _eval_mode(self.model), torch.no_grad():
            for batch in loader:
                if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3):
                    raise TypeError("batches must be (inputs, masks) or (inputs, masks, labels).")
                inputs, masks = batch[0], batch[1]
                out = self.model([x.to(device) for x in inputs], [m.to(device) for m in masks],
                                 compute_interactions=False)
                weights.append(out.weights.cpu())
        if not weights:
            raise ValueError("data holds no batch.")
        return RoutingDistribution.from_weights(torch.cat(weights), self.layer.expert_names)
