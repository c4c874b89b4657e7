"""``fl-i2moe demo``: planted data -> FL-I2MoE and dense baseline -> ``report/index.html``.

Everything is computed with the package's own pieces (the planted dataset entry, the run
builder and trainer of :mod:`.runs`, :class:`ExpertExplainer`, ``captum_interactions.metrics``);
this module only orchestrates them and lays the results out as static HTML with PNG figures.
Both trained models are saved as runs (``out/runs/fl_i2moe``, ``out/runs/dense``: checkpoints
and ``run.json``), so ``fl-i2moe evaluate --checkpoint report/runs/fl_i2moe`` works on them.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from captum_interactions.metrics import concentration, requested_pair_mask
from fl_i2moe_layer.data.planted import RULES
from fl_i2moe_layer.experiments.datasets import new_config, planted_splits
from fl_i2moe_layer.experiments.evaluation import recover_pairs, recovery_masking
from fl_i2moe_layer.experiments.runs import fit_run
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.storage import atomic_write_text

_PAGE = ("<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
         "<body style='font-family:sans-serif'>{body}</body></html>")


@dataclass
class DemoSettings:
    """Sizes of a demo run (``quick`` shrinks everything for a smoke run)."""

    n: int = 800
    epochs: int = 40
    n_samples: int = 512
    limit: int = 16
    n_show: int = 2
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> DemoSettings:
        return cls(n=240, epochs=10, n_samples=256, limit=6, n_show=1, seed=seed)


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _bar(path: Path, groups: dict[str, list[float]], labels: list[str], title: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(groups), 1)
    for i, (name, values) in enumerate(groups.items()):
        ax.bar([x + i * width for x in range(len(values))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _masking_curve(path: Path, results: dict[str, Any], title: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, res in results.items():
        ax.plot(res.budgets, res.ranked_drop.mean(0).tolist(), "o-", label=f"{name} ranked")
        ax.plot(res.budgets, res.random_mean.mean(0).tolist(), "x--", label=f"{name} random")
    ax.set_xlabel("pairs removed")
    ax.set_ylabel("mean drop of the logit")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def run_demo(out_dir: str | Path = "report", *, settings: DemoSettings | None = None,
             cache_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo and write ``out_dir/index.html``; return the headline numbers.

    Examples::

        >>> headline = run_demo("report", settings=DemoSettings.quick())
        >>> sorted(headline)[:3]
    """
    s = settings or DemoSettings()
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Until the run finishes, index.html says so: a killed or failed run never leaves an
    # earlier report that looks current.
    atomic_write_text(out / "index.html", _PAGE.format(
        title="FL-I2MoE demo: running", body=(
            f"<h1>FL-I2MoE demo: not finished</h1><p>A run started at "
            f"{html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))} and has not written its report "
            "yet. If it is no longer running, it failed or was stopped: see its output, and "
            "run <code>fl-i2moe demo</code> again.</p>")))
    configs = {kind: new_config("planted", model=kind, n=s.n, epochs=s.epochs, seed=s.seed)
               for kind in ("fl_i2moe", "dense")}
    train, test = planted_splits(configs["fl_i2moe"], cache_dir=cache_dir, progress=progress)
    models, metrics = {}, {}
    for kind, config in configs.items():
        print(f"training {kind} on {len(train)} examples ...", flush=True)
        models[kind] = fit_run(config, train.dataset(), test.dataset(), out / "runs" / kind,
                               progress=progress)
        metrics[kind] = config.metrics
    fl = models["fl_i2moe"]
    figures: list[tuple[str, str]] = []

    # Routing by rule type (global explanation).
    dist = ExpertExplainer(fl).routing_distribution(test.dataset())
    names = list(dist.expert_names)
    headline_routing: dict[str, float] = {}
    by_rule = {rule: dist.weights[test.rule == r].mean(0).tolist() for r, rule in enumerate(RULES)
               if bool((test.rule == r).any())}
    for rule, values in by_rule.items():
        for name, value in zip(names, values, strict=True):
            headline_routing[f"routing_{rule}_{name}"] = value
    figures.append(("Routing weights by rule type (FL-I2MoE, test split)",
                    _bar(out / "routing_by_rule.png", by_rule, names, "mean routing weight")))

    # Recovery and pair masking.
    headline: dict[str, Any] = dict(headline_routing)
    headline |= {f"{k}_{m}": v for k in metrics for m, v in metrics[k].items()
                                if m in ("accuracy", "auroc", "macro_f1")}
    recoveries, masking = {}, {}
    for rule in ("synergy", "redundancy"):
        rec = recover_pairs(fl, test, rule, n_samples=s.n_samples, limit=s.limit, seed=s.seed)
        recoveries[rule] = rec
        method = "SII" if rule == "synergy" else "RG"
        headline[f"{method}_p@1"] = rec.precision_at(1)
        headline[f"{method}_p@5"] = rec.precision_at(5)
        headline[f"{method}_n"] = int(rec.ranks.numel())
        if rec.ranks.numel():
            res = recovery_masking(fl, test, rec, seed=s.seed)
            masking[f"{method} ({rule})"] = res
            headline[f"{method}_mask_gap@1"] = float(res.gap[0])
            headline[f"{method}_mask_p@1"] = float(res.p_value[0])
    if masking:
        figures.append(("Pair masking: ranked vs random (FL-I2MoE mixture)",
                        _masking_curve(out / "pair_masking.png", masking, "pair masking")))

    # Chosen examples: all methods, every expert (top-K% masking and concentration too).
    chosen = torch.cat([recoveries[r].index[: s.n_show] for r in recoveries])
    example_html = []
    topk_rows: dict[str, list[float]] = {}
    conc: dict[str, list[float]] = {}
    if chosen.numel():
        sub = test.subset(chosen)
        ds = sub.dataset()
        report = ExpertExplainer(fl, ig_steps=16).explain(
            ds.inputs, ds.masks, target=0, n_samples=s.n_samples, seed=s.seed,
            methods=("integrated_gradients", "sii", "redundancy_gap"))
        dense_report = ExpertExplainer(models["dense"], ig_steps=16).explain(
            ds.inputs, ds.masks, target=0, n_samples=s.n_samples, seed=s.seed,
            methods=("integrated_gradients", "sii"), components=("mixture",),
            faithfulness=False)
        for comp in report.components:
            f = report[comp].faithfulness.get("integrated_gradients")
            if f is not None:
                topk_rows[comp] = [float(f.aopc_comprehensiveness.mean()),
                                   float(f.random_aopc_comprehensiveness.mean())]
                headline[f"topk_aopc_{comp}"] = topk_rows[comp][0]
                headline[f"topk_aopc_random_{comp}"] = topk_rows[comp][1]
        figures.append(("Top-K% masking per expert (IG, AOPC comprehensiveness vs random)",
                        _bar(out / "topk_per_expert.png",
                             {"IG": [v[0] for v in topk_rows.values()],
                              "random": [v[1] for v in topk_rows.values()]},
                             list(topk_rows), "AOPC comprehensiveness")))
        pair_mask = requested_pair_mask(tuple(ds.inputs))
        for label, rep in (("FL-I2MoE", report), ("dense", dense_report)):
            sii = rep["mixture"].sii
            assert sii is not None  # "sii" is among the explained methods
            c_sii = concentration(sii, pair_mask)
            c_ig = rep["mixture"].concentration["integrated_gradients"]
            conc[label] = [float(c_sii.gini.mean()), float(c_sii.top_mass.mean()),
                           float(c_ig.gini.mean()), float(c_ig.top_mass.mean())]
            for name, value in zip(("sii_gini", "sii_top10", "ig_gini", "ig_top10"),
                                   conc[label], strict=True):
                headline[f"concentration_{label}_{name}"] = value
        figures.append(("Concentration: FL-I2MoE vs dense (mixture)",
                        _bar(out / "concentration.png", conc,
                             ["SII gini", "SII top10%", "IG gini", "IG top10%"],
                             "concentration (higher = more concentrated)")))
        images = sub.images()
        for b in range(len(sub)):
            rule = RULES[int(sub.rule[b])]
            tok, pat = int(sub.pair_token[b]), int(sub.pair_patch[b])
            tokens = sub.tokens(b)
            stem = f"ex{b}"
            files = [
                _save(report.plot_text(tokens, "mixture", example=b), out / f"{stem}_text.png"),
                _save(report.plot_image(images[b], "mixture", example=b),
                      out / f"{stem}_image.png"),
            ]
            for method in ("sii", "redundancy_gap"):
                fig = report.plot_interactions("mixture", method, example=b, row_labels=tokens)
                fig.axes[0].scatter([pat], [tok], s=120, facecolors="none", edgecolors="lime",
                                    linewidths=2, label="planted pair")
                files.append(_save(fig, out / f"{stem}_{method}.png"))
            w = ", ".join(f"{n}={v:.2f}" for n, v in zip(report.expert_names,
                                                          report.weights[b].tolist(),
                                                          strict=True))
            example_html.append(
                f"<h3>Example {b}: rule {rule}, text “{html.escape(sub.texts[b])}”, planted "
                f"token {tok} × patch {pat}</h3><p>routing: {w}</p>"
                + "".join(f'<img src="{f}" style="max-height:300px">' for f in files))
    headline["wall_s"] = time.perf_counter() - start
    _write_html(out / "index.html", headline, metrics, figures, example_html, masking)
    print(format_headline(headline))
    print(f"report: {out / 'index.html'}")
    return headline


def format_headline(h: dict[str, Any]) -> str:
    """The headline table printed by the demo."""
    lines = ["model      accuracy  AUROC   macro-F1"]
    for k, name in (("fl_i2moe", "FL-I2MoE"), ("dense", "dense")):
        lines.append(f"{name:<10} {h.get(f'{k}_accuracy', float('nan')):>8.3f}  "
                     f"{h.get(f'{k}_auroc', float('nan')):>6.3f}  "
                     f"{h.get(f'{k}_macro_f1', float('nan')):>8.3f}")
    lines.append("recovery   p@1     p@5     n   mask gap@1   p")
    for m in ("SII", "RG"):
        lines.append(f"{m:<10} {h.get(f'{m}_p@1', float('nan')):.3f}   "
                     f"{h.get(f'{m}_p@5', float('nan')):.3f}  {h.get(f'{m}_n', 0):>3}   "
                     f"{h.get(f'{m}_mask_gap@1', float('nan')):+.4f}     "
                     f"{h.get(f'{m}_mask_p@1', float('nan')):.3g}")
    lines.append(f"wall time  {h['wall_s']:.1f} s")
    return "\n".join(lines)


def _write_html(path: Path, headline: dict[str, Any], metrics: dict[str, Any],
                figures: list[tuple[str, str]], examples: list[str],
                masking: dict[str, Any]) -> None:
    rows = "".join(f"<tr><td>{k}</td>" + "".join(f"<td>{v:.3f}</td>" for v in (
        m["accuracy"], m["auroc"], m["macro_f1"])) + "</tr>" for k, m in metrics.items())
    masks = "".join(f"<h3>{html.escape(k)}</h3><pre>{html.escape(r.summary())}</pre>"
                    for k, r in masking.items())
    numbers = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>"
                      for k, v in headline.items() if isinstance(v, (int, float)))
    figs = "".join(f'<h2>{html.escape(t)}</h2><img src="{f}">' for t, f in figures)
    body = (
        "<h1>FL-I2MoE on the planted-interaction dataset</h1>"
        f"<pre>{html.escape(format_headline(headline))}</pre>"
        "<h2>Task metrics (test split)</h2><table border=1><tr><th>model</th><th>accuracy</th>"
        f"<th>AUROC</th><th>macro-F1</th></tr>{rows}</table>"
        f"{figs}<h2>All numbers</h2><table border=1>{numbers}</table>"
        f"<h2>Pair-masking tables</h2>{masks}<h2>Chosen examples</h2>"
        "<p>Text tokens and image patches coloured by Integrated Gradients; token × patch SII "
        "and RG maps with the planted pair circled in green.</p>" + "".join(examples)
    )
    atomic_write_text(path, _PAGE.format(title="FL-I2MoE demo", body=body))


__all__ = ["DemoSettings", "format_headline", "run_demo"]
