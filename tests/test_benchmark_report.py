"""benchmarks/report.py: records -> docs/benchmarks.md tables (latest record wins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import report

DEVICE = "cpu: test, 2 cores"


def accuracy(estimator: str, budget: int, rel_l2: float) -> dict:
    return {"test": f"acc[{estimator}-{budget}]", "device": DEVICE, "torch": "x", "quick": False,
            "section": "accuracy", "case": "(a) game", "case_note": "note", "n_seeds": 3,
            "n_examples": 1, "estimator": estimator, "budget": budget, "rel_l2": rel_l2,
            "top5": 0.8}


def write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_accuracy_table_and_ratio(tmp_path: Path) -> None:
    write(tmp_path / "cpu.jsonl", [
        accuracy("ours (default)", 256, 0.5),
        accuracy("shapiq KernelSHAPIQ", 256, 0.75),
        accuracy("shapiq SVARMIQ", 256, 2.0),
        accuracy("ours (default)", 512, 0.1),
        accuracy("shapiq KernelSHAPIQ", 512, 0.4),
    ])
    text = report.render(report.load(tmp_path))
    assert "| ours (default) | 0.5 (0.80) | 0.1 (0.80) |" in text
    # best shapiq / ours: 0.75 / 0.5 and 0.4 / 0.1
    assert "256: 1.50×, 512: 4.00×" in text
    assert f"# Figures on `{DEVICE}`" in text


def test_latest_record_wins_and_quick_records_are_ignored(tmp_path: Path) -> None:
    old = accuracy("ours (default)", 256, 0.9)
    new = accuracy("ours (default)", 256, 0.3)
    quick = {**accuracy("ours (default)", 256, 7.0), "quick": True}
    write(tmp_path / "cpu.jsonl", [old, new, quick])
    records = report.load(tmp_path)
    assert [r["rel_l2"] for r in records] == [0.3]


def test_throughput_overhead_and_skipped_large_runs(tmp_path: Path) -> None:
    write(tmp_path / "cpu.jsonl", [
        {"test": "t1", "device": DEVICE, "torch": "x", "section": "throughput",
         "comparison": "ours vs bare", "players": 32, "hidden": 256, "rows": 2048,
         "examples": 1, "bare_s": 2.0, "ours_s": 2.1, "overhead": 0.05,
         "us_per_row_overhead": 48.8, "rounds": 3},
        {"test": "l1", "device": DEVICE, "torch": "x", "section": "large", "case": "(d) game",
         "case_note": "n", "estimator": "shapiq SVARMIQ", "budget": 1024, "players": 64,
         "error": "skipped: too slow"},
        {"test": "l2", "device": DEVICE, "torch": "x", "section": "large", "case": "(d) game",
         "case_note": "n", "estimator": "ours (default)", "budget": 1024, "players": 64,
         "rel_l2": 0.25, "precision_at_10": 0.9},
    ])
    text = report.render(report.load(tmp_path))
    assert "| 32 | 256 | 2048 | 1 | 2.000 | 2.100 | +5.0 % | — | — | 49 | 3 |" in text
    assert "| shapiq SVARMIQ | skip |" in text
    assert "| ours (default) | 0.25 (0.9) |" in text


def test_no_records_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["report.py", "--results", str(tmp_path),
                                     "--out", str(tmp_path / "out.md")])
    with pytest.raises(SystemExit, match="no benchmark records"):
        report.main()
