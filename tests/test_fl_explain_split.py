"""`fl-i2moe explain --all`: every example of a split into one result store per component,
equal to the explainer's own SII, with a dataset-level summary."""

from __future__ import annotations

import json

import pytest
import torch
from fl_fixtures import mmhs150k_tree

from captum_interactions.datasets import ResultStore
from fl_i2moe_layer.cli import main


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")


def test_explain_all_writes_stores_equal_to_the_explainer(tmp_path, capsys) -> None:
    from fl_i2moe_layer.experiments import load_run, load_split
    from fl_i2moe_layer.experiments.evaluation import sampling_budget
    from fl_i2moe_layer.explain import ExpertExplainer

    data = mmhs150k_tree(tmp_path / "mmhs150k")
    run, cache, out = tmp_path / "run", tmp_path / "cache", tmp_path / "explained"
    common = ["--data-dir", str(data), "--cache-dir", str(cache)]
    assert main(["train", "--dataset", "mmhs150k", *common, "--out", str(run), "--epochs", "1",
                 "--hidden-dim", "8", "--max-length", "8", "--batch-size", "4"]) == 0
    capsys.readouterr()
    assert main(["explain", "--checkpoint", str(run), *common, "--all", "--n-samples", "48",
                 "--batch-size", "2", "--shard-size", "3", "--components", "mixture",
                 "synergy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mixture: strongest pair over the split" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["strongest_pairs"]) == {"mixture", "synergy"}
    assert (out / "summary.md").is_file() and (out / "report.html").is_file()

    config, model = load_run(run)
    split = load_split(config, "test", data_dir=data, cache_dir=cache)
    manifest = json.loads((out / "mixture" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["settings"]["dataset_size"] == len(split)
    store = ResultStore(out / "mixture", manifest["settings"], manifest["n_shards"])
    first = next(store.shards())
    sub = split.subset([0, 1])
    report = ExpertExplainer(model).explain(
        sub.data.inputs, sub.data.masks, target="pred", methods=("sii",),
        components=("mixture",), n_samples=sampling_budget(sub.data, 48),
        faithfulness=False, seed=0)
    expected = report["mixture"].sii
    n = expected.shape[-1]
    torch.testing.assert_close(first.values[:2, :n, :n], expected.float(), rtol=0, atol=1e-6)
    names = first.player_names[0]
    assert names[: len(sub.token_labels(0, 0))] == sub.token_labels(0, 0)
    assert summary["strongest_pairs"]["mixture"][0]["count"] >= 1
    # Dataset-level summaries: routing by label over every example (binary: two labels),
    # pair masking pooled over every example, strongest pairs per label; all in the report.
    by_label = summary["routing"]["by_label"]
    assert set(by_label) <= {"not hateful", "hateful"}
    assert sum(v["count"] for v in by_label.values()) == len(split)
    assert summary["pair_masking"]["examples"] == len(split)
    assert summary["pair_masking"]["budgets"] == [1, 2, 4, 8]
    assert set(summary["strongest_by_label"]) == set(by_label)
    page = (out / "report.html").read_text()
    for heading in ("Pair masking over the split", "Routing (per-expert statistics)",
                    "Strongest pairs by label", "mixture: strongest pairs"):
        assert heading in page
    assert (out / "pair_masking.png").is_file() and (out / "routing_by_label.png").is_file()
