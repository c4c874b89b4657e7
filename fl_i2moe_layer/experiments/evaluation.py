"""How well explanations of a trained run hold up: pair-masking faithfulness on any dataset,
and recovery of the planted pairs (precision@k) on planted data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from captum_interactions.metrics import PairMaskingFaithfulness, PairMaskingResult
from fl_i2moe_layer.data.common import logger
from fl_i2moe_layer.data.planted import RULES, PlantedData
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.training import FusionDataset
from fl_i2moe_layer.training.data import SplitData
from fl_i2moe_layer.training.synthetic import SyntheticCueData


def sampling_budget(data: SplitData, n_samples: int) -> int:
    """``n_samples`` raised to the SII estimator's minimum (3 F) for F players, with a logged
    warning so that the change is never silent."""
    from captum_interactions.estimators.size_plan import min_sampling_budget

    needed = min_sampling_budget(sum(data.lengths))
    if n_samples < needed:
        logger.warning("n_samples=%d is below the SII estimator's minimum for these inputs; "
                       "using %d (3 rows per token).", n_samples, needed)
    return max(n_samples, needed)


def pair_masking(model: ProjectedFusion, data: FusionDataset, scores: Tensor,
                 target: Tensor | int, *, budgets: tuple[int, ...] = (1, 2, 4, 8),
                 n_random: int = 10, seed: int = 0) -> PairMaskingResult:
    """Ranked (by ``scores``, (B, F, F) over the tokens of all modalities) versus random
    cross-pair removal on the mixture, with presence masks, on the projected tokens."""
    with torch.no_grad():
        xs = tuple(p(x) for p, x in zip(model.projections, data.inputs, strict=True))
        forward = model.fusion.as_forward_func("mixture")
        return PairMaskingFaithfulness(forward).evaluate(
            xs, scores, budgets=budgets, n_random=n_random, target=target,
            additional_forward_args=tuple(data.masks), removal="presence", seed=seed)


def sii_pair_masking(model: ProjectedFusion, data: FusionDataset, *,
                     n_samples: int = 256, budgets: tuple[int, ...] = (1, 2, 4, 8),
                     n_random: int = 10, seed: int = 0) -> PairMaskingResult:
    """Rank every pair of the mixture by SII (explaining the predicted class: the argmax, or
    the single logit of a binary task) and compare ranked with random pair removal:
    :func:`pair_masking` of the SII maps."""
    report = ExpertExplainer(model).explain(
        data.inputs, data.masks, target="pred", methods=("sii",), components=("mixture",),
        n_samples=sampling_budget(data, n_samples), faithfulness=False, seed=seed)
    target = report.target
    scores = report["mixture"].pairs("sii").float().nan_to_num(nan=-1e9, neginf=-1e9,
                                                               posinf=1e9)
    return pair_masking(model, data, scores, target, budgets=budgets, n_random=n_random,
                        seed=seed)


@dataclass
class Recovery:
    """Where the planted pair ranks among the example's cross pairs.

    Attributes:
        method: ``"sii"`` or ``"redundancy_gap"``; ``rule``: the planted rule scored.
        ranks: (n,) 1-based rank of the planted pair (descending score).
        scores: (n, T, P) the token × patch maps.
        index: (n,) the examples' indices in the scored data.
    """

    method: str
    rule: str
    ranks: Tensor
    scores: Tensor
    index: Tensor

    def precision_at(self, k: int) -> float:
        """Share of examples whose planted pair is among their top-k pairs."""
        return float((self.ranks <= k).float().mean()) if self.ranks.numel() else float("nan")

    def pair_scores(self) -> Tensor:
        """The maps as (n, T + P, T + P) pair scores (padding ranked last)."""
        n, t, p = self.scores.shape
        scores = torch.zeros(n, t + p, t + p)
        block = self.scores.clamp_min(-1e9).nan_to_num(neginf=-1e9)
        scores[:, :t, t:] = block
        scores[:, t:, :t] = block.transpose(1, 2)
        return scores


def pair_examples(data: PlantedData, rule: str, *, limit: int | None = None) -> Tensor:
    """Indices of the examples of ``rule`` that carry a planted cross-modal pair and are
    positive (synergy: both cues; redundancy: both cues)."""
    r = RULES.index(rule)
    idx = torch.nonzero((data.rule == r) & (data.pair_token >= 0) & (data.labels > 0.5))[:, 0]
    return idx[:limit] if limit is not None else idx


def recover_pairs(model: ProjectedFusion, data: PlantedData, rule: str, *,
                  n_samples: int = 512, limit: int | None = 16, seed: int = 0,
                  component: str = "mixture") -> Recovery:
    """Rank the planted pair of ``rule`` examples by SII (synergy) or RG (redundancy),
    explaining the logit of ``component`` (the mixture, or an expert such as ``"synergy"``)
    with presence-mask removal."""
    method = {"synergy": "sii", "redundancy": "redundancy_gap"}[rule]
    idx = pair_examples(data, rule, limit=limit)
    sub = data.subset(idx)
    ds = sub.dataset()
    report = ExpertExplainer(model).explain(
        ds.inputs, ds.masks, target=0, methods=(method,), components=(component,),
        n_samples=sampling_budget(ds, n_samples), faithfulness=False, seed=seed)
    maps = torch.stack([report.cross_map(component, method, example=b)
                        for b in range(len(sub))])
    maps = maps.masked_fill(~sub.text_mask[:, :, None], -torch.inf)
    truth = maps[torch.arange(len(sub)), sub.pair_token, sub.pair_patch]
    ranks = (maps > truth[:, None, None]).flatten(1).sum(1) + 1
    return Recovery(method, rule, ranks, maps, idx)


def recovery_masking(model: ProjectedFusion, data: PlantedData, recovery: Recovery, *,
                     budgets: tuple[int, ...] = (1, 2, 4, 8), n_random: int = 10,
                     seed: int = 0) -> PairMaskingResult:
    """:func:`pair_masking` of the recovery's maps on its examples (the planted logit)."""
    sub = data.subset(recovery.index)
    return pair_masking(model, sub.dataset(), recovery.pair_scores(), 0, budgets=budgets,
                        n_random=n_random, seed=seed)


#: Cue cases of planted data: (name, the expert that should carry it or None).
CUE_CASES = (
    ("text cue", "unique_0"),
    ("image cue", "unique_1"),
    ("synergy, both cues", "synergy"),
    ("redundancy, both cues", "redundancy"),
    ("redundancy, one cue", None),
)


def cue_cases(data: PlantedData | SyntheticCueData) -> dict[str, Tensor]:
    """Boolean masks (N,) of the cue-bearing examples of planted data (or of its synthetic
    miniature), by cue case.

    Only examples that carry a cue are kept: text / image positives (the negatives of the
    text, image and redundancy rules carry no cue at all), synergy positives (both cues; a
    synergy negative holds one of them), and redundancy positives with both cues or with one.

    Examples::

        >>> cases = cue_cases(test)                    # test: a PlantedData split
        >>> int(cases["text cue"].sum())
    """
    rule = data.rule
    word, tile = data.cue_token >= 0, data.cue_patch >= 0  # (N, 3): text/image, synergy, red.
    red = rule == RULES.index("redundancy")
    both = word[:, 2] & tile[:, 2]
    return {
        "text cue": (rule == RULES.index("text")) & word[:, 0],
        "image cue": (rule == RULES.index("image")) & tile[:, 0],
        "synergy, both cues": (rule == RULES.index("synergy")) & word[:, 1] & tile[:, 1],
        "redundancy, both cues": red & both,
        "redundancy, one cue": red & (word[:, 2] ^ tile[:, 2]),
    }


def routing_by_case(weights: Tensor, cases: dict[str, Tensor]) -> dict[str, Tensor]:
    """Mean routing weight (E,) of each non-empty cue case; ``weights`` is (N, E)."""
    return {name: weights[mask].mean(0) for name, mask in cases.items() if bool(mask.any())}


@torch.no_grad()
def removal_sensitivity(model: ProjectedFusion, data: FusionDataset) -> Tensor:
    """(M, N, E) absolute change of each expert's first logit when modality m is removed
    (every token of it absent, through presence masks), per example: how much each expert
    depends on each modality. A uniqueness expert of the specialised objective changes by
    exactly 0 when another modality is removed."""
    was_training = model.training
    model.eval()
    try:
        xs, masks = list(data.inputs), list(data.masks)
        full = model(xs, masks).expert_logits[..., 0]  # (N, E)
        changes = []
        for m in range(len(xs)):
            presence = [torch.ones_like(k, dtype=torch.bool) for k in masks]
            presence[m] = torch.zeros_like(presence[m])
            removed = model(xs, masks, presence=presence).expert_logits[..., 0]
            changes.append((full - removed).abs())
        return torch.stack(changes)
    finally:
        model.train(was_training)
