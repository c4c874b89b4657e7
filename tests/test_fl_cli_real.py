"""`fl-i2moe train|evaluate|explain` on tiny MM-IMDb, ENRICO and MMHS150K trees, with the
real packaged MiniLM and EfficientNet-Lite0 backbones."""

from __future__ import annotations

import json
import math

import pytest
from fl_fixtures import enrico_tree, mmhs150k_tree, mmimdb_tree

from fl_i2moe_layer.cli import main

TREES = {"mmimdb": mmimdb_tree, "enrico": enrico_tree, "mmhs150k": mmhs150k_tree}
TASKS = {"mmimdb": ("multilabel", 23), "enrico": ("multiclass", 20),
         "mmhs150k": ("binary", 1)}


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")


@pytest.mark.parametrize("dataset", sorted(TREES))
def test_train_evaluate_explain(dataset, tmp_path, capsys) -> None:
    data = TREES[dataset](tmp_path / dataset)
    run, cache = tmp_path / "run", tmp_path / "cache"
    common = ["--data-dir", str(data), "--cache-dir", str(cache)]
    assert main(["train", "--dataset", dataset, *common, "--out", str(run), "--epochs", "2",
                 "--hidden-dim", "8", "--max-length", "12", "--batch-size", "4"]) == 0
    assert (run / "best.safetensors").is_file()
    config = json.loads((run / "run.json").read_text())
    assert (config["task"], config["num_classes"]) == TASKS[dataset]
    assert config["dataset"] == dataset and config["hidden_dim"] == 8
    assert all(math.isfinite(v) for k, v in config["metrics"].items() if k != "auroc")
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run), *common, "--faithfulness",
                 "--n-faithfulness", "2", "--n-samples", "48"]) == 0
    out = capsys.readouterr().out
    assert f"{dataset} test" in out and "SII pair masking" in out and "loss" in out

    figures = tmp_path / "figures"
    index = [0] if dataset == "enrico" else [0, 1]  # ENRICO: 98 players, the slowest SII
    assert main(["explain", "--checkpoint", str(run / "best.safetensors"), *common,
                 "--index", *map(str, index), "--n-samples", "48", "--out",
                 str(figures)]) == 0
    for i in index:
        for method in ("sii", "redundancy_gap"):
            assert (figures / f"example{i}_{method}.png").stat().st_size > 1000
    summary = json.loads((figures / "explanations.json").read_text())
    assert [s["index"] for s in summary] == index
    capsys.readouterr()
    assert main(["explain", "--checkpoint", str(run), *common, "--index", "99", "--out",
                 str(figures)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fl-i2moe: error: index 99 is outside the split")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_real_evaluate_needs_data_dir(tmp_path, capsys) -> None:
    from fl_i2moe_layer.experiments import new_config

    config = new_config("enrico")
    config.feature_dims = [1280, 1280]
    config.save(tmp_path)
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fl-i2moe: error: no checkpoint at") and err.count("\n") == 1
