"""``fl-i2moe demo``: planted data -> FL-I2MoE and dense baseline -> ``report/index.html``.

Everything is computed with the package's own pieces (the planted dataset entry, the run
builder and trainer of :mod:`.runs`, :class:`ExpertExplainer`, ``captum_interactions.metrics``);
this module only orchestrates them and lays the results out as a static HTML page with PNG
figures, rendered from the jinja2 template ``templates/report.html.j2`` (autoescaped: every
value is HTML-escaped). Both trained models are saved as runs (``out/runs/fl_i2moe``,
``out/runs/dense``: checkpoints and ``run.json``), so
``fl-i2moe evaluate --checkpoint report/runs/fl_i2moe`` works on them.
"""

from __future__ import annotations

import math
import platform
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_interactions.metrics import concentration, requested_pair_mask
from captum_interactions.metrics.pair_masking import N_NULL_DRAWS
from fl_i2moe_layer.data.planted import RULES
from fl_i2moe_layer.experiments.datasets import new_config, planted_splits
from fl_i2moe_layer.experiments.evaluation import (
    cue_cases,
    recover_pairs,
    recovery_masking,
    removal_sensitivity,
    routing_by_case,
)
from fl_i2moe_layer.experiments.runs import fit_run
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.explain.report import METHOD_TITLES
from fl_i2moe_layer.storage import atomic_write_text

TEMPLATE = "report.html.j2"
#: ExpertExplainer's default number of RG candidate pairs per example (the demo keeps it).
RG_CANDIDATES = 8
TITLE = "FL-I2MoE on the planted-interaction dataset"


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


#: What each :class:`DemoSettings` field means (the report's settings table).
SETTING_HELP = {
    "n": "planted examples (70 % train, 30 % test; the test split also stops training early)",
    "epochs": "maximum training epochs of each model",
    "n_samples": "model evaluations per example for SII and RG",
    "limit": "at most this many synergy / redundancy test examples scored for recovery",
    "n_show": "examples of each rule shown in detail",
    "seed": "seed of the data, initialisation, training and estimators",
}

# -- figure and page data ------------------------------------------------------------------


@dataclass
class Figure:
    """One figure of the report and its caption.

    Attributes:
        file: the PNG's file name, next to ``index.html``.
        title: a short heading.
        shows: what the figure shows (axes, colours, units).
        good: what a good result looks like.
        uncertainty: what the error bars are, or why there are none.
    """

    file: str
    title: str
    shows: str
    good: str
    uncertainty: str


@dataclass
class Example:
    """One example shown in detail: a heading, its routing weights and its figures."""

    title: str
    routing: list[tuple[str, float]]
    figures: list[Figure]


@dataclass
class Table:
    """A table of formatted cells with a title and a note under it."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Page:
    """Everything :func:`render_report` lays out. ``running`` pages only need ``settings``
    and ``started``."""

    settings: dict[str, Any]
    started: str
    running: bool = False
    finished: str = ""
    wall_s: float | None = None
    versions: list[tuple[str, str]] = field(default_factory=list)
    headline: dict[str, Any] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)


# -- numbers and names ---------------------------------------------------------------------

MODEL_NAMES = {"fl_i2moe": "FL-I2MoE", "dense": "dense baseline"}
METRIC_NAMES = {"accuracy": "accuracy", "auroc": "AUROC", "macro_f1": "macro-F1",
                "micro_f1": "micro-F1", "loss": "loss"}
EXPERT_NAMES = {"mixture": "mixture", "unique_0": "unique_0 (text)",
                "unique_1": "unique_1 (image)", "synergy": "synergy", "redundancy": "redundancy",
                "dense": "dense"}
_RECOVERY = {"SII": ("SII", "synergy"), "RG": ("RG", "redundancy")}
_CONCENTRATION = {"sii_gini": "SII Gini", "sii_top10": "SII top-10 % mass",
                  "ig_gini": "IG Gini", "ig_top10": "IG top-10 % mass"}


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the page: integers as they are, floats to ``digits`` significant
    digits, NaN as an em dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "—" if math.isnan(value) else str(value)
    return f"{value:.{digits}g}"


def fmt_p(p: float) -> str:
    """A p-value of the exchange test, floored at its resolution (1 / (draws + 1))."""
    floor = 1 / (N_NULL_DRAWS + 1)
    return f"≤ {floor:.0e}" if p <= floor * (1 + 1e-9) else f"{p:.3g}"


def with_se(mean: float, se: float | None, digits: int = 3) -> str:
    """``mean ± se``, or the mean alone when there is no standard error."""
    if se is None or not math.isfinite(se):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(se, 2)}"


def standard_error(values: Tensor) -> float | None:
    """Standard error of the mean over dim 0 of a 1-D tensor (finite entries); None with
    fewer than two."""
    v = values.detach().double().flatten()
    v = v[torch.isfinite(v)]
    return float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else None


def readable_name(key: str) -> str:
    """A reader's name for a headline key, e.g. ``fl_i2moe_macro_f1`` ->
    "FL-I2MoE — macro-F1 (test split)", ``SII_p@1`` -> "SII on synergy examples —
    planted pair in the top 1 (precision@1)". Unknown keys get their words back."""
    model = re.fullmatch(r"(fl_i2moe|dense)[._](?:test_|val_)?(\w+)", key)
    if model and model.group(2) in METRIC_NAMES:
        return f"{MODEL_NAMES[model.group(1)]} — {METRIC_NAMES[model.group(2)]} (test split)"
    cue = re.fullmatch(r"cue_routing_(\w+?)_(unique_\d+|synergy|redundancy)", key)
    if cue:
        expert = EXPERT_NAMES.get(cue.group(2), cue.group(2))
        case = cue.group(1).replace("_", " ")
        return f"Routing weight of {expert} on cue-bearing examples: {case} (mean)"
    removal = re.fullmatch(r"removal_(text|image)_(unique_\d+|synergy|redundancy)", key)
    if removal:
        expert = EXPERT_NAMES.get(removal.group(2), removal.group(2))
        return (f"Removal sensitivity: |change of {expert}'s logit| when the "
                f"{removal.group(1)} is removed (mean)")
    routing = re.fullmatch(r"routing_([a-z]+)_(\w+)", key)
    if routing and routing.group(1) in RULES:
        expert = EXPERT_NAMES.get(routing.group(2), routing.group(2))
        return f"Routing weight of {expert} on {routing.group(1)} examples (mean)"
    recovery = re.fullmatch(r"(SII|RG)_(p@(\d+)|n|mask_gap@(\d+)|mask_p@(\d+))", key)
    if recovery:
        method, rule = _RECOVERY[recovery.group(1)]
        what = recovery.group(2)
        if recovery.group(3):
            k = recovery.group(3)
            detail = f"planted pair in the top {k} (precision@{k})"
        elif what == "n":
            detail = "examples scored"
        elif recovery.group(4):
            detail = f"pair-masking gap, {_pairs(recovery.group(4))} removed (ranked − random drop)"
        else:
            detail = f"pair-masking p-value, {_pairs(recovery.group(5))} removed"
        return f"{method} on {rule} examples — {detail}"
    topk = re.fullmatch(r"topk_aopc_(random_)?(\w+)", key)
    if topk:
        comp = EXPERT_NAMES.get(topk.group(2), topk.group(2))
        ranking = "random tokens" if topk.group(1) else "IG ranking"
        return f"Top-K% masking AOPC, {comp} — {ranking}"
    conc = re.fullmatch(r"concentration_(FL-I2MoE|dense)_(\w+)", key)
    if conc and conc.group(2) in _CONCENTRATION:
        model_name = "FL-I2MoE" if conc.group(1) == "FL-I2MoE" else "dense baseline"
        return f"Concentration, {model_name} mixture — {_CONCENTRATION[conc.group(2)]}"
    if key == "wall_s":
        return "Wall time of the run (s)"
    words = re.sub(r"[._]+", " ", key).strip()
    return words[:1].upper() + words[1:]


def _pairs(count: str) -> str:
    return f"{count} pair" if count == "1" else f"{count} pairs"


def environment_versions() -> list[tuple[str, str]]:
    """Versions of Python and of the packages the run used (transformers when importable)."""
    from importlib.metadata import PackageNotFoundError, version

    import fl_i2moe_layer

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return [
        ("Python", platform.python_version()),
        ("torch", torch.__version__),
        ("captum", installed("captum")),
        ("transformers", installed("transformers")),
        ("captum-interactions (this package)", fl_i2moe_layer.__version__),
        ("matplotlib", installed("matplotlib")),
        ("platform", f"{platform.system()} {platform.machine()}, "
                     f"{torch.get_num_threads()} torch threads, CPU"),
    ]


# -- rendering ----------------------------------------------------------------------------


def render_report(page: Page) -> str:
    """The HTML of ``page`` from the packaged template, with autoescape on."""
    import jinja2

    # one name per joinpath: Python 3.10's Traversable takes a single child
    source = resources.files("fl_i2moe_layer.experiments").joinpath("templates").joinpath(
        TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt
    headline_rows = _task_table(page.metrics), _recovery_table(page.headline, page.stderr)
    numbers = [(readable_name(k), k, fmt(v), fmt(page.stderr.get(k, math.nan), 2))
               for k, v in page.headline.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    settings = [(k, fmt(v), SETTING_HELP.get(k, "")) for k, v in page.settings.items()]
    return env.from_string(source).render(
        title=TITLE, page=page, settings=settings, summary=[t for t in headline_rows if t.rows],
        numbers=numbers, wall=_duration(page.wall_s))


def write_report(path: str | Path, page: Page) -> Path:
    """Render ``page`` and write it atomically to ``path``."""
    return atomic_write_text(path, render_report(page))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(seconds, 60)
    return f"{seconds:.1f} s" if minutes < 1 else f"{int(minutes)} min {rest:.0f} s " \
                                                  f"({seconds:.1f} s)"


def _task_table(metrics: Mapping[str, Mapping[str, float]]) -> Table:
    columns = ("accuracy", "auroc", "macro_f1")
    rows = [[MODEL_NAMES.get(kind, kind), *(fmt(m.get(c, math.nan), 3) for c in columns)]
            for kind, m in metrics.items()]
    return Table("Task metrics (test split)", ["model", *(METRIC_NAMES[c] for c in columns)],
                 rows, "One training run per model and one split: no standard error is "
                       "available for these numbers (run other seeds to see their spread). The "
                       "test split also served for early stopping.")


def _recovery_table(headline: Mapping[str, Any], stderr: Mapping[str, float]) -> Table:
    rows = []
    for key, (method, rule) in _RECOVERY.items():
        if f"{key}_n" not in headline:
            continue
        gap = headline.get(f"{key}_mask_gap@1")
        rows.append([
            f"{method} on {rule} examples", fmt(headline[f"{key}_n"]),
            with_se(headline[f"{key}_p@1"], stderr.get(f"{key}_p@1")),
            with_se(headline[f"{key}_p@5"], stderr.get(f"{key}_p@5")),
            "—" if gap is None else with_se(gap, stderr.get(f"{key}_mask_gap@1")),
            "—" if gap is None else fmt_p(float(headline[f"{key}_mask_p@1"]))])
    return Table("Planted-pair recovery (FL-I2MoE mixture, test split)",
                 ["ranking", "examples", "precision@1", "precision@5",
                  "masking gap @ 1 pair (logit)", "p (ranked > random)"], rows,
                 "precision@k: share of the examples whose planted token × patch pair is among "
                 "their k highest-scoring pairs (1 is perfect; a random ranking of the ~490 "
                 "pairs scores about k / 490). Gap: how much more removing the top pair lowers "
                 "the logit than removing a random pair. ± one standard error over the "
                 "examples.")


def masking_table(name: str, res: Any) -> Table:
    """A :class:`Table` of a ``PairMaskingResult``: one row per budget, means ± standard
    error over the examples."""
    batch = int(res.ranked_drop.shape[0])
    rows = []
    for k, budget in enumerate(res.budgets):
        ranked, random = res.ranked_drop[:, k], res.random_mean[:, k]
        rows.append([str(budget), with_se(float(ranked.mean()), standard_error(ranked)),
                     with_se(float(random.mean()), standard_error(random)),
                     f"{float(res.gap[k]):+.4g}", f"{int(res.wins[k])}/{batch}",
                     fmt_p(float(res.p_value[k]))])
    note = (f"{batch} examples, {res.n_pairs} cross pairs each, {res.random_drop.shape[-1]} "
            f"random draws per example; drop = original − masked logit; wins: examples whose "
            f"ranked drop beats their mean random drop; p: one-sided {res.test} test that the "
            "ranked drop is larger.")
    return Table(name, ["pairs removed", "ranked drop", "random drop", "gap", "wins",
                        "p (ranked > random)"], rows, note)


# -- figures -----------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _bar(path: Path, groups: Mapping[str, Sequence[float]],
         errors: Mapping[str, Sequence[float | None]], labels: Sequence[str], *, ylabel: str,
         xlabel: str, title: str, ylim: tuple[float, float] | None = None) -> str:
    """Grouped bars with ±1 SE error bars (an error of None draws none)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / max(len(groups), 1)
    for i, (name, values) in enumerate(groups.items()):
        err = [math.nan if e is None else e for e in errors.get(name, [None] * len(values))]
        ax.bar([x + i * width for x in range(len(values))], values, width, label=name,
               yerr=err, capsize=3, error_kw={"elinewidth": 1, "ecolor": "0.15"})
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _heatmap(path: Path, values: Tensor, rows: Sequence[str], columns: Sequence[str], *,
             title: str) -> str:
    """A rows × columns matrix of values in [0, 1] as an annotated heatmap."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(rows), 1) + 1.6))
    image = ax.imshow(values.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    for (r, c), v in zip(((r, c) for r in range(len(rows)) for c in range(len(columns))),
                         values.flatten().tolist(), strict=True):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=9,
                color="white" if v > 0.55 else "black")
    ax.set_xlabel("expert")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="mean routing weight (0–1)")
    return _save(fig, path)


def _slug(text: str) -> str:
    """``"synergy, both cues"`` -> ``"synergy_both_cues"``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _masking_curve(path: Path, results: Mapping[str, Any], title: str) -> str:
    """Mean drop against the number of pairs removed, ranked (solid) and random (dashed),
    ±1 SE over the examples; the series are nudged sideways so that their bars stay apart."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    n_series = 2 * len(results)
    budgets: list[int] = []
    for i, (name, res) in enumerate(results.items()):
        budgets = sorted(set(budgets) | set(res.budgets))
        for j, (values, style, label) in enumerate(((res.ranked_drop, "o-", "ranked"),
                                                    (res.random_mean, "x--", "random"))):
            nudge = 1.05 ** (2 * i + j - (n_series - 1) / 2)
            se = [standard_error(values[:, k]) for k in range(values.shape[1])]
            ax.errorbar([b * nudge for b in res.budgets], values.mean(0).tolist(),
                        yerr=[math.nan if e is None else e for e in se], fmt=style,
                        color=f"C{i}", capsize=3, label=f"{name}: {label} pairs")
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("token × patch pairs removed (log scale)")
    ax.set_ylabel("drop of the explained logit\n(original − masked, logit units)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    return _save(fig, path)


def _se_note(counts: Mapping[str, int], what: str = "examples") -> str:
    """The caption's sentence about the error bars, honest about groups of one."""
    n = ", ".join(f"{v} for {k}" for k, v in counts.items()) if len(counts) > 1 else \
        str(next(iter(counts.values())))
    if all(v > 1 for v in counts.values()):
        return f"Error bars: ± one standard error of the mean over the {what} (n = {n})."
    return (f"Error bars: ± one standard error of the mean over the {what} (n = {n}); a group "
            "with a single example has no standard error and is drawn without a bar.")


# -- the run -------------------------------------------------------------------------------


def run_demo(out_dir: str | Path = "report", *, settings: DemoSettings | None = None,
             cache_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo and write ``out_dir/index.html``; return the headline numbers.

    Examples::

        >>> headline = run_demo("report", settings=DemoSettings.quick())
        >>> sorted(headline)[:3]
    """
    s = settings or DemoSettings()
    start = time.perf_counter()
    page = Page(settings=asdict(s), started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                running=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Until the run finishes, index.html says so: a killed or failed run never leaves an
    # earlier report that looks current.
    write_report(out / "index.html", page)
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
    figures: list[Figure] = []
    stderr: dict[str, float] = {}

    def put_se(key: str, values: Tensor) -> None:
        se = standard_error(values)
        if se is not None:
            stderr[key] = se

    # Routing by rule type (global explanation).
    dist = ExpertExplainer(fl).routing_distribution(test.dataset())
    names = list(dist.expert_names)
    headline: dict[str, Any] = {}
    for r, rule in enumerate(RULES):  # every example of a rule (negatives included)
        w = dist.weights[test.rule == r]
        if not w.shape[0]:
            continue
        for e, name in enumerate(names):
            headline[f"routing_{rule}_{name}"] = float(w[:, e].mean())
            put_se(f"routing_{rule}_{name}", w[:, e])
    cases = {case: mask for case, mask in cue_cases(test).items() if bool(mask.any())}
    by_case = routing_by_case(dist.weights, cases)
    for case, w in by_case.items():
        for e, name in enumerate(names):
            headline[f"cue_routing_{_slug(case)}_{name}"] = float(w[e])
            put_se(f"cue_routing_{_slug(case)}_{name}", dist.weights[cases[case], e])
    sensitivity = removal_sensitivity(fl, test.dataset())  # (M, N, E)
    for m, modality in enumerate(("text", "image")):
        for e, name in enumerate(names):
            headline[f"removal_{modality}_{name}"] = float(sensitivity[m, :, e].mean())
            put_se(f"removal_{modality}_{name}", sensitivity[m, :, e])
    figures.append(Figure(
        _heatmap(out / "routing_by_rule.png",
                 torch.stack(list(by_case.values())) if by_case else torch.zeros(0, len(names)),
                 [f"{case} (n = {int(cases[case].sum())})" for case in by_case],
                 [EXPERT_NAMES.get(n, n) for n in names],
                 title="Mean routing weight by cue case (cue-bearing test examples)"),
        "Routing weights by cue case (FL-I2MoE, test split)",
        "Each cell is the mean weight FL-I2MoE's router gives an expert (columns; the weights "
        "of an example sum to 1, so every row sums to 1) over the test examples of one cue "
        "case (rows): text-cue and image-cue positives, synergy positives (both cues), "
        "redundancy positives with both cues and with one. Only cue-bearing examples count: "
        "the negatives of the text, image and redundancy rules carry no cue. unique_0 sees "
        "the text alone, unique_1 the image alone.",
        "a dark diagonal: text cue on unique_0, image cue on unique_1, synergy on the "
        "synergy expert, redundancy with both cues on the redundancy expert (a redundancy "
        "example with one cue belongs to the unique expert of that cue's modality). "
        "Identical rows mean the router ignores the interaction type (the paper's objective "
        "tends to collapse onto one expert here: docs/fl_i2moe.md). What is identifiable: "
        "text-only, image-only and synergy examples differ in which modality suffices, so "
        "the data decide their expert; a redundancy example with both cues is solved by "
        "either unique expert as well, and goes to the redundancy expert only through the "
        "prior that 'two sufficient modalities' means redundancy; a redundancy example with "
        "one cue is, by its data, a unique example. The numbers table also gives each "
        "expert's removal sensitivity (its logit change when the text or the image is "
        "removed): 0 for the unique expert of the other modality.",
        "No error bars: one training run; the mean of each cell comes with a standard error "
        "over the examples in the report's numbers table (rows have "
        + ", ".join(f"{int(m.sum())}" for m in cases.values()) + " examples)."))

    # Recovery and pair masking.
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
        put_se(f"{method}_p@1", (rec.ranks <= 1).float())
        put_se(f"{method}_p@5", (rec.ranks <= 5).float())
        if rec.ranks.numel():
            res = recovery_masking(fl, test, rec, seed=s.seed)
            masking[f"{method} ranking on {rule} examples"] = res
            headline[f"{method}_mask_gap@1"] = float(res.gap[0])
            headline[f"{method}_mask_p@1"] = float(res.p_value[0])
            put_se(f"{method}_mask_gap@1", res.ranked_drop[:, 0] - res.random_mean[:, 0])
    if masking:
        figures.append(Figure(
            _masking_curve(out / "pair_masking.png", masking, "Pair masking, FL-I2MoE mixture"),
            "Pair masking: ranked vs random pairs (FL-I2MoE mixture)",
            "How much the explained logit drops (original − masked, in logit units) when the "
            "b highest-ranked token × patch pairs are removed (solid lines, circles) or b "
            "random cross pairs (dashed, crosses; mean of 10 draws per example). SII ranks "
            "the pairs of the synergy examples, RG those of the redundancy examples. The "
            "x-axis is logarithmic.",
            "each solid line well above the dashed line of its colour, most of all at 1 pair "
            "removed: the top-ranked pair carries the planted evidence. Overlapping lines "
            "mean the ranking does no better than chance.",
            _se_note({k.split(" ranking")[0]: int(r.ranked_drop.shape[0])
                      for k, r in masking.items()}, "scored examples")))

    # Chosen examples: all methods, every expert (top-K% masking and concentration too).
    chosen = torch.cat([recoveries[r].index[: s.n_show] for r in recoveries])
    examples: list[Example] = []
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
        topk: dict[str, list[float]] = {"IG ranking": [], "random tokens": []}
        topk_se: dict[str, list[float | None]] = {"IG ranking": [], "random tokens": []}
        comps = []
        for comp in report.components:
            f = report[comp].faithfulness.get("integrated_gradients")
            if f is None:
                continue
            comps.append(comp)
            for label, values, key in (
                    ("IG ranking", f.aopc_comprehensiveness, f"topk_aopc_{comp}"),
                    ("random tokens", f.random_aopc_comprehensiveness,
                     f"topk_aopc_random_{comp}")):
                topk[label].append(float(values.mean()))
                topk_se[label].append(standard_error(values))
                headline[key] = topk[label][-1]
                put_se(key, values)
        n_ex = len(sub)
        figures.append(Figure(
            _bar(out / "topk_per_expert.png", topk, topk_se,
                 [EXPERT_NAMES.get(c, c) for c in comps],
                 ylabel="AOPC comprehensiveness\n(mean logit drop)", xlabel="component",
                 title="Top-K% masking per component (Integrated Gradients)"),
            "Top-K% masking per component (Integrated Gradients)",
            "AOPC comprehensiveness of each component's own Integrated Gradients ranking: "
            "the mean drop of the component's logit (logit units) when its top 10 % and 25 % "
            "tokens are removed, against the same numbers of random tokens (mean of 5 "
            f"draws), over the {n_ex} examples shown below.",
            "the IG bar clearly above the random bar for the mixture and the experts that "
            "carry the prediction; small bars for experts with little routing weight are "
            "expected (their logit hardly depends on the input).",
            _se_note({"examples": n_ex})))
        pair_mask = requested_pair_mask(tuple(ds.inputs))
        conc: dict[str, list[float]] = {}
        conc_se: dict[str, list[float | None]] = {}
        for label, rep in (("FL-I2MoE", report), ("dense", dense_report)):
            sii = rep["mixture"].sii
            assert sii is not None  # "sii" is among the explained methods
            c_sii = concentration(sii, pair_mask)
            c_ig = rep["mixture"].concentration["integrated_gradients"]
            parts = (c_sii.gini, c_sii.top_mass, c_ig.gini, c_ig.top_mass)
            conc[label] = [float(v.mean()) for v in parts]
            conc_se[label] = [standard_error(v) for v in parts]
            for name, values in zip(_CONCENTRATION, parts, strict=True):
                headline[f"concentration_{label}_{name}"] = float(values.mean())
                put_se(f"concentration_{label}_{name}", values)
        figures.append(Figure(
            _bar(out / "concentration.png",
                 {MODEL_NAMES["fl_i2moe"]: conc["FL-I2MoE"], MODEL_NAMES["dense"]: conc["dense"]},
                 {MODEL_NAMES["fl_i2moe"]: conc_se["FL-I2MoE"],
                  MODEL_NAMES["dense"]: conc_se["dense"]},
                 list(_CONCENTRATION.values()), ylabel="concentration (0–1)",
                 xlabel="measure", title="Concentration of the mixture's explanations",
                 ylim=(0, 1.05)),
            "Concentration: FL-I2MoE vs dense baseline (mixture)",
            "How concentrated each model's explanations are: the Gini coefficient of the "
            "absolute scores (0: spread evenly, near 1: all on one entry) and the share of the "
            "absolute mass in the top 10 % of entries, for SII over the token × patch pairs and "
            f"for IG over the tokens, averaged over the {n_ex} examples shown below.",
            "on planted data, where one pair or one cue decides, higher values: a concentrated "
            "map points at few features. Equal bars mean FL-I2MoE's explanations are no "
            "sharper than the dense model's.",
            _se_note({"examples": n_ex})))
        images = sub.images()
        for b in range(n_ex):
            examples.append(_example(out, report, sub, images[b], b, s.n_samples))
    headline["wall_s"] = time.perf_counter() - start
    page.running = False
    page.finished = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    page.wall_s = headline["wall_s"]
    page.versions = environment_versions()
    page.headline, page.stderr, page.metrics = headline, stderr, metrics
    page.figures = figures
    page.tables = [masking_table(name, res) for name, res in masking.items()]
    page.examples = examples
    write_report(out / "index.html", page)
    print(format_headline(headline))
    print(f"report: {out / 'index.html'}")
    return headline


def _example(out: Path, report: Any, sub: Any, image: Tensor, b: int,
             n_samples: int) -> Example:
    """The figures of example ``b`` of the chosen subset (``sub``)."""
    rule = RULES[int(sub.rule[b])]
    tok, pat = int(sub.pair_token[b]), int(sub.pair_patch[b])
    tokens = sub.tokens(b)
    word = tokens[tok] if 0 <= tok < len(tokens) else "?"
    stem = f"ex{b}"
    single = ("One example: these are point estimates, no standard error is shown "
              f"(SII and RG are Monte Carlo estimates from {n_samples} evaluations).")
    figs = [
        Figure(_save(report.plot_text(tokens, "mixture", example=b, width=5.5),
                     out / f"{stem}_text.png"),
               "Text tokens, Integrated Gradients (mixture)",
               "The example's text tokens ([CLS], 8 words, [SEP]), each on a background "
               "coloured by its Integrated Gradients attribution to the mixture's logit (red "
               "raises it, blue lowers it; colour bar in logit units). Text is white on dark "
               "backgrounds.",
               f"the planted cue word (token {tok}, “{word}”) is the most strongly coloured "
               "(red for a positive example); the distractor words stay pale.",
               "One example: point estimates, no standard error."),
        Figure(_save(report.plot_image(image, "mixture", example=b), out / f"{stem}_image.png"),
               "Image patches, Integrated Gradients (mixture)",
               "The 224 × 224 image with the Integrated Gradients attribution of each of its "
               "7 × 7 patches (32 × 32 tiles) overlaid, half transparent: red raises the "
               "mixture's logit, blue lowers it (colour bar in logit units).",
               f"the planted cue tile (patch {pat}: row {pat // 7}, column {pat % 7}, counted "
               "from 0 at the top left) is the strongest red.",
               "One example: point estimates, no standard error."),
    ]
    for method, what, good in (
            ("sii", "Shapley Interaction Index (SII)",
             "on a synergy example the circled cell is the deepest red of the map (the two "
             "cues count only together); on a redundancy example it is blue (either cue "
             "alone suffices, so together they add less than apart)."),
            ("redundancy_gap", "Redundancy Gap (RG, ≥ 0)",
             "on a redundancy example the circled cell is the darkest of the map; on a "
             "synergy example the planted pair need not stand out. An empty circled cell on a "
             "redundancy example means the planted pair was not among the scored pairs: its "
             "SII was not negative enough.")):
        fig = report.plot_interactions(
            "mixture", method, example=b, row_labels=tokens, ylabel="text token",
            xlabel="image patch (row-major index in the 7 × 7 grid)")
        ax = fig.axes[0]
        ax.set_title(f"{METHOD_TITLES[method]} (mixture), example {b + 1}")
        ax.scatter([pat], [tok], s=170, facecolors="none", edgecolors="black", linewidths=3.5)
        ax.scatter([pat], [tok], s=170, facecolors="none", edgecolors="lime", linewidths=2,
                   label="planted pair")
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.16), fontsize=8, frameon=False)
        scale = ("the scale is symmetric around 0" if method == "sii" else
                 f"the palest colour is 0; RG is scored only on the {RG_CANDIDATES} pairs with "
                 "the most negative SII, every other pair is left at 0")
        figs.append(Figure(
            _save(fig, out / f"{stem}_{method}.png"),
            f"Token × patch {what.split(' (')[0]} (mixture)",
            f"The {what} of every text-token × image-patch pair for the mixture's logit, in "
            f"logit units (colour bar; {scale}). Rows: text tokens; columns: image patches. "
            "The planted pair is circled in green.",
            good, single))
    routing = [(EXPERT_NAMES.get(n, n), float(v))
               for n, v in zip(report.expert_names, report.weights[b].tolist(), strict=True)]
    title = (f"Example {b + 1}: {rule} rule, “{sub.texts[b]}”, planted pair token {tok} "
             f"× patch {pat}")
    return Example(title, routing, figs)


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


__all__ = ["DemoSettings", "Example", "Figure", "Page", "Table", "format_headline",
           "readable_name", "render_report", "run_demo", "write_report"]
