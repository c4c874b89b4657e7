"""Planted-interaction dataset, the honest science check on its small variant, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fl_i2moe_layer.data.planted import (
    CUE_REGIONS,
    CUE_WORDS,
    RULES,
    TILE,
    generate_planted,
    render_images,
)


def test_generate_is_deterministic_and_consistent() -> None:
    a, b = generate_planted(64, seed=3), generate_planted(64, seed=3)
    assert a.texts == b.texts
    assert torch.equal(a.tiles, b.tiles) and torch.equal(a.labels, b.labels)
    assert generate_planted(64, seed=4).texts != a.texts
    rule, labels = a.rule, a.labels
    assert torch.bincount(rule, minlength=4).tolist() == [16] * 4
    tok, pat = a.cue_token, a.cue_patch
    # y = T or I or (S_w and S_t) or R_w or R_t, from the recorded cue positions.
    present_t, present_p = tok >= 0, pat >= 0
    expected = (present_t[:, 0] | present_p[:, 0] | (present_t[:, 1] & present_p[:, 1])
                | present_t[:, 2] | present_p[:, 2]).float()
    assert torch.equal(expected, labels)
    for i, text in enumerate(a.texts):
        words = text.split()
        for cue, name in enumerate(("text", "synergy", "redundancy")):
            t = int(tok[i, cue])
            assert (t >= 0) == (CUE_WORDS[name] in words)
            if t >= 0:
                assert words[t - 1] == CUE_WORDS[name]  # token t = word t - 1 after [CLS]
        if int(a.pair_token[i]) >= 0:
            assert RULES[int(rule[i])] in ("synergy", "redundancy")
    # synergy negatives carry exactly one of the two cues
    neg = (rule == RULES.index("synergy")) & (labels == 0)
    assert bool(((present_t[neg, 1].long() + present_p[neg, 1].long()) == 1).all())


def test_cue_tile_sits_in_its_patch() -> None:
    spec = generate_planted(16, seed=0)
    images = render_images(spec.tiles[:16])
    i = int(torch.nonzero(spec.cue_patch[:, 0] >= 0)[0, 0])
    k = int(spec.cue_patch[i, 0])
    r, c = divmod(k, 7)
    tile = images[i, :, r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
    spec_j = generate_planted(16, seed=0).tiles[i, k, 0]
    assert int(spec_j) == 1 + list(CUE_REGIONS).index("image")
    assert tile.shape == (3, TILE, TILE) and 0 <= float(tile.min()) <= float(tile.max()) <= 1


def test_bad_arguments() -> None:
    from fl_i2moe_layer.data.planted import load_planted

    with pytest.raises(ValueError, match="n must"):
        generate_planted(0)
    with pytest.raises(ValueError, match="patch_encoding"):
        load_planted(8, patch_encoding="pixels")
    with pytest.raises(ValueError, match="token_encoding"):
        load_planted(8, token_encoding="chars")


def _cache(factory: pytest.TempPathFactory):
    path = factory.getbasetemp() / "planted_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    from fl_i2moe_layer.data.planted import load_planted
    from fl_i2moe_layer.experiments import build_model, new_config
    from fl_i2moe_layer.experiments.runs import fit_model

    cache = _cache(tmp_path_factory)  # cold: the test covers the encode
    data = load_planted(480, seed=1, cache_dir=cache)
    again = load_planted(480, seed=1, cache_dir=cache)  # read back from the cache
    assert torch.equal(data.image_features, again.image_features)
    train, test = data.subset(list(range(320))), data.subset(list(range(320, 480)))
    config = new_config("planted", model="fl_i2moe", seed=0, epochs=30)
    model = build_model(config)
    metrics = fit_model(model, config, train.dataset(), test.dataset())
    return model, test, metrics


def test_small_variant_is_learned(small) -> None:
    _, _, metrics = small
    assert metrics["accuracy"] > 0.9


@pytest.mark.parametrize("rule", ["synergy", "redundancy"])
def test_planted_pair_recovered_and_masking_beats_random(small, rule: str) -> None:
    """SII (synergy) / RG (redundancy) rank the planted pair first for most examples of the
    rule, and removing the top-ranked pairs lowers the logit more than random pairs."""
    from fl_i2moe_layer.experiments.evaluation import recover_pairs, recovery_masking

    model, test, _ = small
    rec = recover_pairs(model, test, rule, n_samples=384, limit=8, seed=0)
    assert rec.ranks.numel() >= 5
    assert rec.precision_at(1) > 0.5, rec.ranks.tolist()
    res = recovery_masking(model, test, rec, budgets=(1, 4), n_random=8)
    assert float(res.gap[0]) > 0 and float(res.p_value[0]) < 0.05, res.summary()
    if rule == "synergy":  # the synergy expert on its own: its own map, its own ranks
        own = recover_pairs(model, test, rule, n_samples=384, limit=8, seed=0,
                            component="synergy")
        assert torch.equal(torch.as_tensor(own.index), torch.as_tensor(rec.index))
        assert not torch.equal(own.scores, rec.scores)
        assert own.precision_at(1) > 0.5, own.ranks.tolist()


def test_cli_help_and_missing_dataset(tmp_path, capsys) -> None:
    from fl_i2moe_layer.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out
    code = main(["train", "--dataset", "mmimdb", "--data-dir", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "not found" in err and "split.json" in err


def test_tile_recipes_are_reproducible() -> None:
    a = render_images(generate_planted(4, seed=2).tiles)
    b = render_images(generate_planted(4, seed=2).tiles)
    assert np.array_equal(a.numpy(), b.numpy()) and a.shape == (4, 3, 224, 224)


def test_demo_writes_report(tmp_path, tmp_path_factory, small) -> None:
    """A tiny run of the whole demo on the (cached) small variant writes every figure."""
    import matplotlib

    matplotlib.use("Agg")
    from fl_i2moe_layer.experiments.demo import DemoSettings, run_demo

    settings = DemoSettings(n=480, epochs=2, n_samples=192, limit=2, n_show=1, seed=1)
    headline = run_demo(tmp_path / "report", settings=settings,
                        cache_dir=_cache(tmp_path_factory), progress=False)
    page = (tmp_path / "report" / "index.html").read_text()
    for name in ("routing_by_rule.png", "pair_masking.png", "topk_per_expert.png",
                 "concentration.png", "ex0_sii.png", "ex0_redundancy_gap.png",
                 "ex0_text.png", "ex0_image.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000, name
        assert name in page
    assert "Pair-masking tables" in page and "ranked drop" in page
    assert {"SII_p@1", "RG_p@1", "fl_i2moe_accuracy", "dense_accuracy"} <= set(headline)
    # the rendered template: every figure captioned, the run block, the collapsed numbers
    assert page.count("<img ") == page.count("<figcaption>") == page.count("<figure>") >= 8
    assert 'id="run-settings"' in page and 'id="wall-time"' in page and "<details>" in page
    assert "not finished" not in page


def test_cli_planted_run_records_and_reuses_its_settings(tmp_path, tmp_path_factory, small,
                                                         capsys) -> None:
    """`train` writes run.json with every option; `evaluate` and `explain` read it (no --n,
    --seed or --model to repeat) and take the same path as the real datasets."""
    import matplotlib

    matplotlib.use("Agg")
    from fl_i2moe_layer.cli import main

    run, cache = tmp_path / "run", str(_cache(tmp_path_factory))
    assert main(["train", "--dataset", "planted", "--n", "480", "--seed", "1", "--epochs", "2",
                 "--model", "dense", "--cache-dir", cache, "--out", str(run)]) == 0
    config = json.loads((run / "run.json").read_text())
    assert (config["dataset"], config["n"], config["seed"], config["model"]) == (
        "planted", 480, 1, "dense")
    assert (config["epochs"], config["lr"], config["monitor"], config["hidden_dim"]) == (
        2, 3e-3, "loss", 32)
    assert config["task"] == "binary" and config["feature_dims"] == [384, 1280]
    assert (run / "best.safetensors").is_file() and "accuracy" in config["metrics"]
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run), "--cache-dir", cache,
                 "--n-samples", "192"]) == 0
    out = capsys.readouterr().out
    assert "planted test (144 examples)" in out and "synergy: sii precision@1" in out
    assert "redundancy: redundancy_gap precision@1" in out and "pair masking" in out

    figures = tmp_path / "figures"
    assert main(["explain", "--checkpoint", str(run / "best.safetensors"), "--cache-dir",
                 cache, "--index", "0", "2", "--n-samples", "192", "--out", str(figures)]) == 0
    summary = json.loads((figures / "explanations.json").read_text())
    assert [s["index"] for s in summary] == [0, 2]
    assert [s["id"] for s in summary] == ["336", "338"]  # dataset indices (70/30 split)
    assert (figures / "example2_redundancy_gap.png").stat().st_size > 1000

    assert main(["train", "--dataset", "planted", "--split-limit", "5"]) == 2
    assert main(["train", "--dataset", "enrico", "--n", "5",
                 "--data-dir", str(tmp_path)]) == 2
    assert "--n applies to planted data" in capsys.readouterr().err
