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


def large_section(records: list[Record]) -> list[str]:
    recs = by(records, section="large")
    if not recs:
        return []
    out = ["## 64-256 players", "",
           "Polynomial games: relative L2 against the closed-form SII and, in brackets, "
           "precision@10 of the largest-|SII| pairs against the planted pairs. Trained "
           "Transformers: relative L2 against a long-run reference and, in brackets, hit@1 "
           "of the planted synergy pair. One seed; `skip` = not run (cost cap), `fail` = "
           "shapiq raised (message in the records).", ""]
    for case in dict.fromkeys(r["case"] for r in recs):
        sub = by(recs, case=case)

        def cell(r: Record) -> str:
            if "error" in r:
                return "skip" if r["error"].startswith("skipped") else "fail"
            if "rel_l2" in r:
                return f"{r['rel_l2']:.3g} ({r['precision_at_10']:.1f})"
            return f"{r['rel_l2_to_reference']:.3g} ({r['hit_at_1']:.1f})"

        rows, budgets, cells = grid(sub, "estimator", "budget", cell)
        out += [f"### {case}", "", f"{sub[0]['case_note']}.", ""]
        out.append(table(["estimator", *map(str, budgets)],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    records = load(Path(args.results))
    if not records:
        raise SystemExit(f"no benchmark records in {args.results}: run `make bench` first.")
    Path(args.out).write_text(render(records))
    print(f"wrote {args.out} from {len(records)} records")


if __name__ == "__main__":
    main()
