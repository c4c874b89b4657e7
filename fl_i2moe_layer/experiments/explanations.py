"""SII and RG maps of chosen examples of a run: one figure per (example, method) and an
``explanations.json`` summary, for any dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fl_i2moe_layer.experiments.datasets import Split
from fl_i2moe_layer.experiments.evaluation import sampling_budget
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.model.projected import ProjectedFusion

PAIR_METHODS = ("sii", "redundancy_gap")


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExpertExplainer(model).explain(  # target "pred": argmax, or the binary logit
        sub.data.inputs, sub.data.masks, target="pred", methods=PAIR_METHODS,
        components=("mixture",), n_samples=sampling_budget(sub.data, n_samples),
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
        label = sub.data.labels[b]
        weights = report.weights[b].tolist()
        summaries.append({"index": i, "id": sub.ids[b],
                          "label": label.tolist() if label.dim() else label.item(),
                          "target": int(report.target[b]),
                          "routing": dict(zip(report.expert_names, weights, strict=True)),
                          "figures": files})
    (out / "explanations.json").write_text(json.dumps(summaries, indent=2) + "\n")
    return summaries
