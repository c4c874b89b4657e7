"""SII and RG maps of chosen examples of a run: one figure per (example, method) and an
``explanations.json`` summary, for any dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from fl_i2moe_layer.experiments.datasets import Split
from fl_i2moe_layer.experiments.evaluation import sampling_budget
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.training import FusionDataset

PAIR_METHODS = ("sii", "redundancy_gap")


def in_memory(split: Split) -> FusionDataset:
    """The split's data as an in-memory dataset (a subset of a streamed split is read)."""
    data = split.data
    return data if isinstance(data, FusionDataset) else data.select(torch.arange(len(data)))


def explain_examples(model: ProjectedFusion, split: Split, indices: list[int],
                     out: str | os.PathLike[str], *, n_samples: int = 256,
                     seed: int = 0) -> list[dict[str, Any]]:
    """SII and RG maps of the mixture for the examples ``indices`` of ``split`` (explaining
    the predicted class): ``out/example{i}_{method}.png`` and ``out/explanations.json`` with
    each example's id, label, target and routing weights.

    Examples::

        >>> config, model = load_run("runs/planted")
        >>> split = load_split(config, "test")
        >>> explain_examples(model, split, [0, 3], "explanations")[0]["routing"]
    """
    import matplotlib.pyplot as plt

    sub = split.subset(indices)  # checks the indices first
    data = in_memory(sub)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExpertExplainer(model).explain(  # target "pred": argmax, or the binary logit
        data.inputs, data.masks, target="pred", methods=PAIR_METHODS,
        components=("mixture",), n_samples=sampling_budget(data, n_samples),
        faithfulness=False, seed=seed)
    summaries = []
    for b, i in enumerate(indices):
        rows, cols = sub.token_labels(b, 0), sub.token_labels(b, 1)
        files = []
        for method in PAIR_METHODS:
            fig = report.plot_interactions("mixture", method, example=b, row_labels=rows,
                                           col_labels=cols)
            path = out / f"example{i}_{method}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            files.append(str(path))
        label = data.labels[b]
        weights = report.weights[b].tolist()
        summaries.append({"index": i, "id": sub.ids[b],
                          "label": label.tolist() if label.dim() else label.item(),
                          "target": int(report.target[b]),
                          "routing": dict(zip(report.expert_names, weights, strict=True)),
                          "figures": files})
    (out / "explanations.json").write_text(json.dumps(summaries, indent=2) + "\n")
    return summaries


def explain_split(model: ProjectedFusion, split: Split, out: str | os.PathLike[str], *,
                  components: tuple[str, ...] = ("mixture",), n_samples: int = 512,
                  seed: int = 0, batch_size: int = 8, shard_size: int = 64,
                  limit: int | None = None, class_names: list[str] | None = None,
                  masking: bool = True) -> dict[str, Any]:
    """SII of every example of ``split`` (explaining the predicted class) for each component
    (the mixture and/or experts), into one resumable result store per component under
    ``out/<component>``; under ``torchrun`` the shards are spread over the ranks
    (:func:`captum_interactions.datasets.explain_dataset`). Rank 0 then summarises the split
    (:mod:`~fl_i2moe_layer.experiments.split_summary`): per component the strongest token ×
    patch pairs (mean ± standard error, count), those of the first component within each
    label, the per-expert routing statistics (mean,
    spread, dominance, mean weight by label), and pair masking pooled over the split (with
    ``masking``, when the mixture is explained), into ``summary.json``, ``summary.md``,
    figures and ``report.html``.

    Args:
        class_names: label names for the routing-by-label table (default ``"0"``, ...).
        masking: compute the pooled pair masking (about 45 forward rows per example).

    Returns:
        The summary (what ``summary.json`` holds): ``strongest_pairs`` (component -> rows),
        ``routing`` (None without experts), ``pair_masking`` (or None), ``title``.

    Examples::

        >>> config, model = load_run("runs/planted")
        >>> summary = explain_split(model, load_split(config, "test"), "explained",
        ...                         components=("mixture", "synergy"))
        >>> summary["strongest_pairs"]["mixture"][0]
        {'first': 'red', 'second': '3,4', 'mean': 0.41, 'stderr': 0.05, 'count': 12}
    """
    from captum_interactions import ShapleyInteractionIndex
    from captum_interactions.datasets import explain_dataset, rank_and_world
    from fl_i2moe_layer.experiments.split_summary import (
        masking_summary,
        routing_statistics,
        split_pair_masking,
        strongest_by_label,
        write_summary,
    )

    explainer = ExpertExplainer(model)
    names = explainer._components(components)
    n_samples = sampling_budget(split.data, n_samples)
    data: Any = split.data if limit is None else split.subset(
        list(range(min(limit, len(split))))).data
    device = next(model.parameters()).device
    lengths = data.lengths

    def labels_of(index: int) -> list[str]:
        return [*split.token_labels(index, 0)[:lengths[0]],
                *split.token_labels(index, 1)[:lengths[1]]]

    def prepare_for(name: str) -> Any:
        def prepare(batch: Any) -> dict[str, Any]:
            inputs, masks, _ = batch
            xs = explainer._project([x.to(device) for x in inputs])
            _, keep = explainer.layer._prepare(list(xs), [m.to(device) for m in masks], None)
            masks_t = tuple(k.clone() for k in keep)
            with torch.no_grad():
                logits = explainer.layer(list(xs), list(masks_t),
                                         compute_interactions=False).logits
            return {"inputs": xs, "additional_forward_args": masks_t,
                    "target": logits.argmax(1)}
        prepare.__qualname__ = f"prepare[{name}]"
        return prepare

    out = Path(out)
    stores = {}
    model.eval()
    for name in names:
        sii = ShapleyInteractionIndex(explainer.layer.as_forward_func(name))
        stores[name] = explain_dataset(sii, data, out / name, prepare=prepare_for(name),
                                       names=labels_of, batch_size=batch_size,
                                       shard_size=shard_size, device=device,
                                       removal="presence", n_samples=n_samples, seed=seed)
    summary: dict[str, Any] = {
        "title": f"{len(data)} examples explained (SII of the predicted class, {n_samples} "
                 f"coalitions per example, seed {seed})",
        "strongest_pairs": {name: store.strongest_pairs(10) for name, store in stores.items()},
        "strongest_by_label": {}, "routing": None, "pair_masking": None}
    rank, _ = rank_and_world()
    if rank == 0:
        summary["strongest_by_label"] = strongest_by_label(
            stores[names[0]], data.labels, class_names=class_names)
        summary["routing"] = routing_statistics(model, data, data.labels,
                                                class_names=class_names)
        if masking and "mixture" in stores:
            pooled = split_pair_masking(model, data, stores["mixture"], seed=seed)
            summary["pair_masking"] = masking_summary(pooled) if pooled is not None else None
        write_summary(out, summary)
    return summary
