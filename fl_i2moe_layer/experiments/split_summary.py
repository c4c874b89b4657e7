"""Dataset-level summaries of an explained split, computed from its result stores.

For a split explained by :func:`~fl_i2moe_layer.experiments.explanations.explain_split`
(one store per component under ``out/<component>``), this module computes:

* **strongest pairs** per component: the token × patch name pairs whose SII, averaged over
  the examples where they occur, is largest (mean, standard error of that mean, count), and
  the same within the examples of each label;
* **per-expert statistics** (FL-I2MoE): the routing weights w_e(x) over the split, their mean
  and spread, how many examples each expert dominates (argmax_e w_e), and the mean weight per
  label, ``mean_{x: y_c(x)=1} w_e(x)`` for every class c (a one-hot of the label for
  single-label tasks);
* **pair masking over the split**: the stored SII of the mixture ranks each example's
  cross-modal pairs; removing the top-b pairs (presence masks) is compared with removing b
  random pairs, example by example, and the per-example drops of all shards are pooled
  into one paired test (:meth:`PairMaskingResult.concatenate`), read shard by shard so memory
  stays bounded by the shard size;

and writes them as ``summary.json``, ``summary.md``, figures and an HTML page
``report.html``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_interactions.datasets import ResultStore
from captum_interactions.metrics import PairMaskingResult
from fl_i2moe_layer.experiments.evaluation import pair_masking
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.storage import atomic_write_text
from fl_i2moe_layer.training.data import SplitData

BUDGETS = (1, 2, 4, 8)


def routing_statistics(model: ProjectedFusion, data: SplitData, labels: Tensor, *,
                       class_names: list[str] | None = None,
                       batch_size: int = 64) -> dict[str, Any] | None:
    """Per-expert routing statistics over ``data`` (None for a model without experts).

    Args:
        labels: (N,) class indices, (N,) 0/1 for a binary task, or (N, C) multi-hot.
        class_names: names of the C classes (default ``"0"``, ``"1"``, ...).

    Returns:
        ``{"experts", "mean", "std", "dominant", "by_label": {class: {"count", "mean"}}}``.
    """
    from fl_i2moe_layer.explain import ExpertExplainer

    explainer = ExpertExplainer(model)
    if len(getattr(explainer.layer, "expert_names", ())) < 2:  # the dense baseline: no routing
        return None
    dist = explainer.routing_distribution(data, batch_size=batch_size)
    onehot = _label_matrix(labels)  # (N, C) float
    counts = onehot.sum(0)
    by_class = (onehot.t() @ dist.weights.double()) / counts.clamp_min(1)[:, None]  # (C, E)
    names = class_names or [str(c) for c in range(onehot.shape[1])]
    return {
        "experts": list(dist.expert_names),
        "mean": dist.mean.tolist(), "std": dist.std.tolist(),
        "dominant": dist.dominant.tolist(),
        "by_label": {names[c]: {"count": int(counts[c]), "mean": by_class[c].tolist()}
                     for c in range(onehot.shape[1]) if counts[c] > 0},
    }


def strongest_by_label(store: ResultStore, labels: Tensor, *,
                       class_names: list[str] | None = None, k: int = 5
                       ) -> dict[str, list[dict[str, Any]]]:
    """The ``k`` strongest pairs (by name) among the examples of each label, in one pass over
    the store (:meth:`ResultStore.strongest_pairs_by`); labels without examples are left
    out."""
    onehot = _label_matrix(labels) > 0
    names = class_names or [str(c) for c in range(onehot.shape[1])]
    groups = store.strongest_pairs_by(onehot, k)
    return {names[c]: rows for c, rows in enumerate(groups) if rows}


def _label_matrix(labels: Tensor) -> Tensor:
    if labels.dim() == 2:
        return (labels > 0.5).double()
    if labels.dtype.is_floating_point:  # binary: 0 / 1
        return torch.stack([labels <= 0.5, labels > 0.5], 1).double()
    n_classes = int(labels.max()) + 1 if labels.numel() else 1
    return torch.nn.functional.one_hot(labels.long(), n_classes).double()


def split_pair_masking(model: ProjectedFusion, data: SplitData, store: ResultStore, *,
                       budgets: tuple[int, ...] = BUDGETS, n_random: int = 10,
                       seed: int = 0) -> PairMaskingResult | None:
    """Ranked (by the stored SII) versus random pair removal on the mixture, pooled over
    every example of ``store`` (None when the store holds no example)."""
    parts = []
    for shard in store.shards():
        sub = data.select(shard.index)
        n = sum(sub.lengths)
        scores = shard.values[:, :n, :n].float()
        target = shard.target if shard.target is not None else 0
        parts.append(pair_masking(model, sub, scores, target, budgets=budgets,
                                  n_random=n_random, seed=seed + int(shard.index[0])))
    return PairMaskingResult.concatenate(parts, seed=seed) if parts else None


def _figures(out: Path, summary: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, str] = {}
    for name, rows in summary["strongest_pairs"].items():
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(rows) + 1.2))
        labels = [f"{r['first']} × {r['second']} (n={r['count']})" for r in rows][::-1]
        ax.barh(labels, [r["mean"] for r in rows][::-1],
                xerr=[r["stderr"] for r in rows][::-1], color="#3b75af")
        ax.set_xlabel("mean SII over the examples where the pair occurs (± s.e.)")
        ax.set_title(f"{name}: strongest pairs")
        path = out / f"strongest_{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        figures[f"strongest_{name}"] = path.name
    routing = summary.get("routing")
    if routing and routing["by_label"]:
        classes = list(routing["by_label"])
        matrix = torch.tensor([routing["by_label"][c]["mean"] for c in classes])
        fig, ax = plt.subplots(figsize=(1.2 * len(routing["experts"]) + 2,
                                        0.4 * len(classes) + 1.5))
        image = ax.imshow(matrix.numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(routing["experts"])), routing["experts"])
        ax.set_yticks(range(len(classes)),
                      [f"{c} (n={routing['by_label'][c]['count']})" for c in classes])
        for i, row in enumerate(matrix.tolist()):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                        color="white" if v < 0.6 else "black", fontsize=8)
        fig.colorbar(image, ax=ax, label="mean routing weight")
        ax.set_title("routing weight by label")
        path = out / "routing_by_label.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        figures["routing_by_label"] = path.name
    masking = summary.get("pair_masking")
    if masking:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        b = masking["budgets"]
        for key, label in (("ranked", "top pairs by SII"), ("random", "random pairs")):
            mean, se = masking[f"{key}_mean"], masking[f"{key}_se"]
            ax.errorbar(b, mean, yerr=se, marker="o", capsize=3, label=label)
        ax.set_xlabel("pairs removed per example")
        ax.set_ylabel("drop of the explained logit")
        ax.set_title(f"pair masking over {masking['examples']} examples")
        ax.legend()
        path = out / "pair_masking.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        figures["pair_masking"] = path.name
    return figures


def masking_summary(result: PairMaskingResult) -> dict[str, Any]:
    """The pooled pair masking as JSON-ready lists (mean and s.e. over examples)."""
    n = result.ranked_drop.shape[0]
    random_mean = result.random_drop.mean(-1)

    def se(values: Tensor) -> list[float]:
        if n < 2:
            return [0.0] * values.shape[1]
        return (values.std(0) / n ** 0.5).tolist()

    return {"examples": n, "budgets": list(result.budgets),
            "ranked_mean": result.ranked_drop.mean(0).tolist(), "ranked_se": se(
                result.ranked_drop),
            "random_mean": random_mean.mean(0).tolist(), "random_se": se(random_mean),
            "gap": result.gap.tolist(), "p_value": result.p_value.tolist(),
            "wins": result.wins.tolist(), "test": result.test}


def write_summary(out: str | os.PathLike[str], summary: dict[str, Any]) -> Path:
    """``summary.json``, ``summary.md``, the figures and ``report.html`` in ``out``; returns
    the HTML page."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(out, summary)
    atomic_write_text(out / "summary.json", json.dumps({**summary, "figures": figures},
                                                       indent=2) + "\n")
    md = [f"# {summary['title']}", ""]
    page = [f"<h1>{html.escape(summary['title'])}</h1>"]
    for name, rows in summary["strongest_pairs"].items():
        md += [f"## {name}: strongest pairs", "", "| first | second | mean SII | ± se | count |",
               "|---|---|---|---|---|"]
        md += [f"| {r['first']} | {r['second']} | {r['mean']:+.4f} | {r['stderr']:.4f} "
               f"| {r['count']} |" for r in rows]
        md.append("")
        page.append(f"<h2>{html.escape(name)}: strongest pairs</h2>")
        page.append(_table(["first", "second", "mean SII", "± s.e.", "count"],
                           [[r["first"], r["second"], f"{r['mean']:+.4f}",
                             f"{r['stderr']:.4f}", str(r["count"])] for r in rows]))
        page.append(_img(figures.get(f"strongest_{name}")))
    by_label = summary.get("strongest_by_label") or {}
    if by_label:
        md += ["## Strongest pairs by label", "", "| label | first | second | mean SII | ± se "
               "| count |", "|---|---|---|---|---|---|"]
        rows = [[label, r["first"], r["second"], f"{r['mean']:+.4f}", f"{r['stderr']:.4f}",
                 str(r["count"])] for label, group in by_label.items() for r in group]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
        page += ["<h2>Strongest pairs by label</h2>",
                 _table(["label", "first", "second", "mean SII", "± s.e.", "count"], rows)]
    routing = summary.get("routing")
    if routing:
        experts = routing["experts"]
        md += ["## Routing (per-expert statistics)", "",
               "| | " + " | ".join(experts) + " |", "|---|" + "---|" * len(experts),
               "| mean ± sd | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in
                                             zip(routing["mean"], routing["std"], strict=True))
               + " |",
               "| dominant in | " + " | ".join(str(d) for d in routing["dominant"]) + " |"]
        md += [f"| label {c} (n={v['count']}) | " + " | ".join(f"{m:.3f}" for m in v["mean"])
               + " |" for c, v in routing["by_label"].items()]
        md.append("")
        rows = [["mean ± sd", *(f"{m:.3f} ± {s:.3f}" for m, s in
                                zip(routing["mean"], routing["std"], strict=True))],
                ["dominant in", *(str(d) for d in routing["dominant"])]]
        rows += [[f"label {c} (n={v['count']})", *(f"{m:.3f}" for m in v["mean"])]
                 for c, v in routing["by_label"].items()]
        page += ["<h2>Routing (per-expert statistics)</h2>", _table(["", *experts], rows),
                 _img(figures.get("routing_by_label"))]
    masking = summary.get("pair_masking")
    if masking:
        head = ["pairs removed", "drop, top pairs by SII", "drop, random pairs", "gap",
                "p-value", "wins"]
        rows = [[str(b), f"{rm:.4f} ± {rs:.4f}", f"{qm:.4f} ± {qs:.4f}", f"{g:+.4f}",
                 f"{p:.3g}", f"{w}/{masking['examples']}"]
                for b, rm, rs, qm, qs, g, p, w in zip(
                    masking["budgets"], masking["ranked_mean"], masking["ranked_se"],
                    masking["random_mean"], masking["random_se"], masking["gap"],
                    masking["p_value"], masking["wins"], strict=True)]
        title = f"Pair masking over the split ({masking['examples']} examples, mixture)"
        md += [f"## {title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
        page += [f"<h2>{html.escape(title)}</h2>", _table(head, rows),
                 _img(figures.get("pair_masking"))]
    atomic_write_text(out / "summary.md", "\n".join(md))
    document = ("<!doctype html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(summary['title'])}</title><style>body{{font-family:sans-serif;"
                "max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:"
                "1px solid #ccc;padding:2px 8px}img{max-width:100%}</style></head><body>"
                + "\n".join(page) + "</body></html>\n")
    return atomic_write_text(out / "report.html", document)


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _img(name: str | None) -> str:
    return f"<p><img src='{html.escape(name)}' alt='{html.escape(name)}'></p>" if name else ""
