"""Turn the benchmark records (``benchmarks/results/*.jsonl``) into ``docs/benchmarks.md``.

    python benchmarks/report.py [--results benchmarks/results] [--out docs/benchmarks.md]

The latest record of each test (and device) wins, so a re-run of one module replaces its rows.
The hand-written reading of the figures (what was met, what was missed and why) lives in
``benchmarks/analysis.md`` and is copied in verbatim after the headline.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
Record = dict[str, Any]


def load(results: Path) -> list[Record]:
    latest: dict[tuple[str, str], Record] = {}
    for path in sorted(results.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                if not rec.get("quick"):
                    latest[rec["test"], rec["device"]] = rec
    return list(latest.values())


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float | int) else str(value)


def by(records: list[Record], **match: Any) -> list[Record]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def grid(records: list[Record], row_key: str, col_key: str,
         cell: Callable[[Record], str]) -> tuple[list[Any], list[Any], dict[tuple, str]]:
    rows, cols, cells = [], [], {}
    for r in records:
        if r[row_key] not in rows:
            rows.append(r[row_key])
        if r[col_key] not in cols:
            cols.append(r[col_key])
        cells[r[row_key], r[col_key]] = cell(r)
    return rows, sorted(cols), cells


def accuracy_section(records: list[Record]) -> list[str]:
    out = ["## Accuracy at equal budget (error against exact SII)", "",
           "Relative L2 error over the scored pairs (mean over seeds and examples; lower is "
           "better) and, in brackets, top-5 recovery (share of the exact five largest-SII pairs "
           "found among the estimate's five). Budget = model rows per example for every "
           "estimator, all evaluated through the same perturbation engine.", ""]
    for case in dict.fromkeys(r["case"] for r in by(records, section="accuracy")):
        recs = by(records, section="accuracy", case=case)
        rows, budgets, cells = grid(recs, "estimator", "budget",
                                    lambda r: f"{r['rel_l2']:.3g} ({r['top5']:.2f})")
        first = recs[0]
        out += [f"### {case}", "", f"{first['case_note']}; {first['n_seeds']} seeds × "
                f"{first['n_examples']} example(s).", ""]
        out.append(table(["estimator", *map(str, budgets)],
                         ([e, *(cells.get((e, b), "—") for b in budgets)] for e in rows)))
        ratios = []
        for b in budgets:
            ours = [r["rel_l2"] for r in recs if r["budget"] == b
                    and r["estimator"] == "ours (default)"]
            theirs = [r["rel_l2"] for r in recs if r["budget"] == b
                      and r["estimator"].startswith("shapiq")]
            if ours and theirs:
                ratios.append(f"{b}: {min(theirs) / ours[0]:.2f}×")
        out += ["", "Best shapiq error / ours (default): " + ", ".join(ratios) + ".", ""]
    return out


def large_cell(r: Record) -> str:
    """rel L2 (p@10[, p@20][, hit@1]); ``skip`` / ``fail`` for runs that did not finish."""
    if "error" in r:
        return "skip" if r["error"].startswith("skipped") else "fail"
    rel = r["rel_l2"] if "rel_l2" in r else r["rel_l2_to_reference"]
    ranks = [fmt(r.get("precision_at_10"), ".1f")]
    if "precision_at_20" in r:
        ranks.append(fmt(r["precision_at_20"], ".2f"))
    if "rel_l2" not in r:
        ranks.append(fmt(r.get("hit_at_1"), ".2g"))
    return f"{rel:.3g} ({', '.join(ranks)})"


def cost_cell(r: Record) -> str:
    """own s / forward s, peak MiB of one call (records with the time split)."""
    if "error" in r:
        return "skip" if r["error"].startswith("skipped") else "fail"
    if "own_seconds" not in r:
        return "—"
    cell = f"{r['own_seconds']:.3g} / {r['forward_seconds']:.3g}"
    if r.get("peak_rss_mib") is not None:
        cell += f", {r['peak_rss_mib']:.0f}"
    return cell


def reference_check(recs: list[Record]) -> str:
    """Whether the reference's relative stderr is at most a third of every error compared."""
    rel_se = next((r["reference_rel_stderr"] for r in recs if "reference_rel_stderr" in r), None)
    errors = [(r["rel_l2_to_reference"], r["estimator"], r["budget"]) for r in recs
              if "rel_l2_to_reference" in r]
    if rel_se is None or not errors:
        return ""
    smallest, estimator, budget = min(errors)
    if rel_se <= smallest / 3:
        return (f"Reference relative stderr {rel_se:.3g} ≤ 1/3 of every error compared "
                f"(smallest: {smallest:.3g}, {estimator} at {budget}): yes.")
    below = sum(e < 3 * rel_se for e, _, _ in errors)
    return (f"Reference relative stderr {rel_se:.3g} ≤ 1/3 of every error compared: **no** — "
            f"{below} of {len(errors)} errors are below 3 × {rel_se:.3g} (smallest: "
            f"{smallest:.3g}, {estimator} at {budget}); those are bounded by the reference's "
            "own noise.")


def large_section(records: list[Record]) -> list[str]:
    recs = by(records, section="large")
    if not recs:
        return []
    if any(r.get("schema", 1) >= 2 for r in recs):  # a run of the 64-1024 layout: drop older
        recs = [r for r in recs if r.get("schema", 1) >= 2]
    players = sorted({r["players"] for r in recs})
    out = [f"## {players[0]}-{players[-1]} players", "",
           "Polynomial games: relative L2 against the closed-form SII and, in brackets, "
           "precision@10 and @20 of the largest-|SII| pairs against the pairs with a non-zero "
           "exact SII. Trained Transformers: relative L2 against a long-run reference and, in "
           "brackets, precision@10 and @20 against the reference's largest-|SII| pairs and "
           "hit@1 of the planted synergy pair. One seed; `skip` = not run (cost cap), `fail` "
           "= the estimator raised (message in the records).", ""]
    timed = any("own_seconds" in r for r in recs)
    if timed:
        out += ["Cost tables: the estimator's own seconds / seconds inside the model's "
                "forwards, and the call's peak extra resident memory in MiB (in-process "
                "high-water mark; a lower bound). Own = wall − forwards for this project's "
                "estimator (its masking counts as its own), wall − time inside the game "
                "callable for shapiq's. Threads: "
                + ", ".join(str(t) for t in sorted({r.get("threads") for r in recs
                                                     if r.get("threads") is not None}))
                + ".", ""]
    for case in dict.fromkeys(r["case"] for r in recs):
        sub = by(recs, case=case)
        rows, budgets, cells = grid(sub, "estimator", "budget", large_cell)
        out += [f"### {case}", "", f"{sub[0]['case_note']}.", ""]
        check = reference_check(sub)
        if check:
            out += [check, ""]
        out.append(table(["estimator", *map(str, budgets)],
                         ([e, *(cells.get((e, b), "—") for b in budgets)] for e in rows)))
        out.append("")
        if any("own_seconds" in r for r in sub):
            rows, budgets, cells = grid(sub, "estimator", "budget", cost_cell)
            out.append(table(["own s / forward s, peak MiB", *map(str, budgets)],
                             ([e, *(cells.get((e, b), "—") for b in budgets)] for e in rows)))
            out.append("")
    return out


def throughput_section(records: list[Record]) -> list[str]:
    out = ["## Throughput: overhead over the bare model forwards", ""]
    ours = by(records, section="throughput", comparison="ours vs bare")
    if ours:
        out += ["`overhead` = attribution time / time of the bare forwards on the same rows in "
                "the same chunks − 1 (target ≤ 10 % at 2048+ rows), from the medians of "
                "interleaved rounds; `min / min` uses each side's fastest round; `in-run` is, "
                "within each attribution call, its total time over the time spent inside the "
                "model's forwards (the same run, so machine noise largely cancels).", ""]
        out.append(table(
            ["players", "hidden", "rows / example", "examples", "bare s", "ours s", "overhead",
             "overhead (min / min)", "overhead in-run", "overhead µs / row", "rounds"],
            ([str(r["players"]), str(r["hidden"]), str(r["rows"]), str(r.get("examples", 1)),
              f"{r['bare_s']:.3f}", f"{r['ours_s']:.3f}", f"{100 * r['overhead']:+.1f} %",
              f"{100 * r['overhead_min']:+.1f} %" if "overhead_min" in r else "—",
              f"{100 * r['overhead_in_run']:+.1f} %" if "overhead_in_run" in r else "—",
              f"{r['us_per_row_overhead']:.0f}", str(r["rounds"])]
             for r in sorted(ours, key=lambda r: (r["hidden"], r["players"], r["rows"],
                                                  r.get("examples", 1))))))
        out.append("")
    shapiq = by(records, section="throughput", comparison="shapiq vs bare")
    if shapiq:
        out += ["shapiq on the same model, example, budget and chunk size (its game callable "
                "runs our perturbation engine):", ""]
        out.append(table(
            ["approximator", "players", "hidden", "rows", "bare s", "shapiq s", "overhead"],
            ([r["approximator"], str(r["players"]), str(r["hidden"]), str(r["rows"]),
              fmt(r.get("bare_s"), ".3f"), fmt(r.get("shapiq_s"), ".3f"),
              f"{100 * r['overhead']:+.0f} %" if "overhead" in r else r["error"][:60]]
             for r in sorted(shapiq, key=lambda r: (r["players"], r["approximator"])))))
        out.append("")
    naive = by(records, section="throughput", comparison="naive captum")
    if naive:
        out += ["Naive Captum route (FeatureAblation + one forward per cross pair, full-context "
                "interaction only) against ours at 2048 rows:", ""]
        out.append(table(
            ["players", "hidden", "pairs", "naive rows", "naive s", "ours s (2048 rows)",
             "naive µs / row", "ours µs / row", "bare µs / row", "per-row ratio"],
            ([str(r["players"]), str(r["hidden"]), str(r["pairs"]), str(r["naive_rows"]),
              f"{r['naive_s']:.2f}", f"{r['ours_s']:.2f}", f"{r['naive_us_per_row']:.0f}",
              f"{r['ours_us_per_row']:.0f}", f"{r['bare_us_per_row']:.0f}",
              f"{r['naive_over_ours_per_row']:.1f}×"] for r in naive)))
        out.append("")
    return out


def memory_section(records: list[Record]) -> list[str]:
    recs = by(records, section="memory")
    if not recs:
        return []
    out = ["## Memory", "", f"Peak extra memory of one call ({recs[0]['measure']}; model: "
           f"{recs[0]['model']}, {recs[0]['n_players']} players, {recs[0]['n_examples']} "
           "examples).", ""]
    for sweep in ("budget", "perturbations_per_eval"):
        sub = sorted((r for r in recs if sweep in r["sweeps"]),
                     key=lambda r: (r["method"], r[sweep]))
        out += [f"Against `{sweep}`:", ""]
        out.append(table(
            ["method", "budget", "perturbations_per_eval", "rows / example",
             "largest forward (rows / example)", "peak MiB"],
            ([r["method"], str(r["budget"]), str(r["perturbations_per_eval"]), str(r["rows"]),
              str(r["forward_rows"]), f"{r['peak_mib']:.1f}"] for r in sub)))
        out.append("")
    return out


def kernels_section(records: list[Record]) -> list[str]:
    recs = by(records, section="kernels")
    if not recs:
        return []
    out = ["## Training and evaluation kernels", "",
           "Vectorised / batched code against the sequential reference or the per-K, "
           "per-repeat loop (same numbers checked first); median of interleaved rounds.", ""]
    out.append(table(["kernel", "configuration", "batched ms", "loop ms", "speed-up", "rounds"],
                     ([r["kernel"], r["config"], f"{r['batched_ms']:.1f}",
                       f"{r['loop_ms']:.1f}", f"{r['speedup']:.2f}×", str(r["rounds"])]
                      for r in recs)))
    out.append("")
    return out


def render(records: list[Record]) -> str:
    devices = sorted({r["device"] for r in records})
    per_device: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        per_device[r["device"]].append(r)
    parts = ["# Benchmarks", "",
             "Generated by `python benchmarks/report.py` from the records that `make bench` "
             "writes (`benchmarks/results/<device>.jsonl`); do not edit by hand — the reading "
             "of the figures is `benchmarks/analysis.md`.", "",
             "Devices: " + "; ".join(f"`{d}`" for d in devices) + ". torch "
             + ", ".join(sorted({r["torch"] for r in records})) + ".", ""]
    analysis = HERE / "analysis.md"
    if analysis.exists():
        parts += [analysis.read_text().rstrip(), ""]
    for device in devices:
        recs = per_device[device]
        parts += [f"# Figures on `{device}`", ""]
        for section in (accuracy_section, large_section, throughput_section, memory_section,
                        kernels_section):
            parts += section(recs)
    return "\n".join(parts).rstrip() + "\n"


SECTIONS: dict[str, Callable[[list[Record]], list[str]]] = {
    "accuracy": accuracy_section, "large": large_section, "throughput": throughput_section,
    "memory": memory_section, "kernels": kernels_section}


def render_section(records: list[Record], section: str) -> str:
    """One section's tables per device (no headline, no analysis)."""
    parts: list[str] = []
    for device in sorted({r["device"] for r in records}):
        body = SECTIONS[section]([r for r in records if r["device"] == device])
        if body:
            parts += [f"# Figures on `{device}`", "", *body]
    if not parts:
        raise SystemExit(f"no {section!r} records: run its benchmark first.")
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    parser.add_argument("--section", choices=sorted(SECTIONS), default=None,
                        help="write only this section's tables (e.g. large: `make "
                             "compare-large`). Default: the whole report")
    args = parser.parse_args()
    records = load(Path(args.results))
    if not records:
        raise SystemExit(f"no benchmark records in {args.results}: run `make bench` first.")
    text = render(records) if args.section is None else render_section(records, args.section)
    Path(args.out).write_text(text)
    print(f"wrote {args.out} from {len(records)} records")


if __name__ == "__main__":
    main()
