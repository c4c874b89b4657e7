"""fl_i2moe_layer: bad inputs and damaged files that used to pass silently or fail unclearly
get clear errors; killed writes leave nothing behind; model loading never touches the
network."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import torch
from fl_fixtures import enrico_tree, mmimdb_tree, tiny_bert
from fl_helpers import H, tiny_batch, tiny_layer

from fl_i2moe_layer import FeatureCache, FLI2MoE, FusionDataset, TextEncoder, Trainer
from fl_i2moe_layer.data import load_enrico, load_mmimdb
from fl_i2moe_layer.data.common import Skips
from fl_i2moe_layer.encoders import ImageEncoder
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.storage import CorruptFileError, atomic_save_file, load_file
from fl_i2moe_layer.training import load_checkpoint, save_checkpoint

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(("option", "value", "message"), [
    ("dropout", NAN, "dropout must be finite"),
    ("dropout", 1.0, r"dropout must lie in \[0, 1\)"),
    ("temperature", INF, "temperature must be finite"),
    ("interaction_weight", NAN, "interaction_weight must be finite"),
    ("temperature", "2", "temperature must be a number"),
])
def test_layer_floats_must_be_finite_numbers(option, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FLI2MoE(2, H, 3, **{option: value})


def dataset(n: int = 6) -> FusionDataset:
    xs, masks = tiny_batch(batch=n)
    return FusionDataset(xs, masks, torch.arange(n) % 3)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"lr": NAN}, ValueError, "lr must be finite"),
    ({"lr": INF}, ValueError, "lr must be finite"),
    ({"grad_clip": -1.0}, ValueError, "grad_clip must be > 0"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay must be >= 0"),
    ({"progress": "no"}, TypeError, "progress must be a bool"),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
])
def test_trainer_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        Trainer(tiny_layer(), **kwargs)


def test_trainer_refuses_a_file_as_checkpoint_dir_and_empty_data(tmp_path):
    target = tmp_path / "runs"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match=r"checkpoint_dir .* is a file"):
        Trainer(tiny_layer(), checkpoint_dir=target)
    trainer = Trainer(tiny_layer(), progress=False)
    empty = FusionDataset([x[:0] for x in dataset().inputs], [m[:0] for m in dataset().masks],
                          torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="train_data is empty"):
        trainer.fit(empty)
    with pytest.raises(ValueError, match="val_data is empty"):
        trainer.fit(dataset(), empty)
    with pytest.raises(ValueError, match="data is empty"):
        trainer.evaluate(empty)


# ------------------------------------------------------------------ layer inputs


def test_layer_inputs_of_another_dtype_get_a_clear_error():
    layer = tiny_layer(dtype=torch.float32)
    xs, masks = tiny_batch(dtype=torch.float64)
    with pytest.raises(TypeError, match=r"inputs are torch\.float64 .* parameters are "
                                        r"torch\.float32.*x\.float\(\)"):
        layer(xs, masks)
    with pytest.raises(TypeError, match="inputs must be float tensors"):
        layer([x.long() for x in xs], masks)


def test_non_finite_padding_is_ignored_and_non_finite_tokens_refused():
    layer = tiny_layer().eval()
    xs, masks = tiny_batch()
    clean = layer(xs, masks).logits
    dirty = [x.clone() for x in xs]
    dirty[0][~masks[0]] = NAN  # padded positions only
    dirty[1][~masks[1]] = INF
    torch.testing.assert_close(layer(dirty, masks).logits, clean, rtol=0, atol=0)
    dirty[1][0, 0, 3] = NAN  # a real token
    with pytest.raises(ValueError, match=r"inputs\[1\] holds NaN or Inf in a real .*example 0, "
                                         r"token 0"):
        layer(dirty, masks)


def test_image_encoder_wants_pixels_in_unit_range():
    encoder = ImageEncoder(torch.nn.Identity(), 3, 4)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\].*divide by 255"):
        encoder.prepare(torch.full((1, 3, 8, 8), 200.0))
    with pytest.raises(ValueError, match="NaN or Inf"):
        encoder.prepare(torch.full((1, 3, 8, 8), NAN))
    assert encoder.prepare(torch.rand(1, 3, 8, 8))[0].shape == (1, 3, 8, 8)


# ------------------------------------------------------------------ files


def test_checkpoints_are_verified_and_errors_name_the_file(tmp_path):
    layer = tiny_layer()
    path = save_checkpoint(tmp_path / "best.safetensors", layer)
    load_checkpoint(path, tiny_layer(seed=5))  # intact: loads
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"checkpoint .*best\.safetensors' is corrupt"):
        load_checkpoint(path, tiny_layer())
    path.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(CorruptFileError, match=r"best\.safetensors' cannot be read"):
        load_checkpoint(path, tiny_layer())
    path.write_text("{}")  # foreign
    with pytest.raises(ValueError, match=r"best\.safetensors"):
        load_checkpoint(path, tiny_layer())


def test_a_file_with_copied_metadata_but_other_tensors_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = atomic_save_file({"a": torch.ones(3)}, tmp_path / "entry.safetensors", {"k": "v"})
    tensors, meta = load_file(good)
    assert meta == {"k": "v"} and torch.equal(tensors["a"], torch.ones(3))
    with safe_open(str(good), framework="pt") as f:
        copied = f.metadata()  # with the digest of torch.ones(3)
    save_file({"a": torch.zeros(3)}, str(good), metadata=copied)
    with pytest.raises(CorruptFileError, match=r"entry\.safetensors' is corrupt"):
        load_file(good)


def test_feature_cache_rebuilds_a_corrupt_entry(tmp_path, bert_dir):
    encoder = TextEncoder.from_pretrained(bert_dir, hidden_dim=8, max_length=6)
    cache = FeatureCache(tmp_path / "cache")
    first = cache.load_or_encode(encoder, ["a cat", "a dog"])
    raw = bytearray(first.path.read_bytes())
    raw[-3] ^= 0xFF
    first.path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="is corrupt.*Building it again"):
        again = cache.load_or_encode(encoder, ["a cat", "a dog"])
    assert not again.from_cache and torch.equal(again.features, first.features)
    assert cache.load_or_encode(encoder, ["a cat", "a dog"]).from_cache


def test_killed_writes_leave_no_temporary_files_behind(tmp_path):
    target = tmp_path / "best.safetensors"
    dead = tmp_path / ".best.safetensors.999999999.abcd.tmp"  # pid that cannot exist
    legacy_old, legacy_new = tmp_path / "tmpold.tmp", tmp_path / "tmpnew.tmp"
    for leftover in (dead, legacy_old, legacy_new):
        leftover.write_bytes(b"x" * 100)
    old = time.time() - 2 * 3600
    os.utime(legacy_old, (old, old))
    atomic_save_file({"a": torch.ones(2)}, target, {})
    assert not dead.exists() and not legacy_old.exists()
    assert legacy_new.exists()  # a recent file may belong to a write still running
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "tmpnew.tmp"]


# ------------------------------------------------------------------ datasets


def test_truncated_json_names_the_file_or_skips_the_item(tmp_path):
    root = mmimdb_tree(tmp_path / "mmimdb")
    split = json.loads((root / "split.json").read_text())
    bad_item = split["train"][0]
    (root / "dataset" / f"{bad_item}.json").write_text('{"plot": ["cut')
    skips = Skips()
    items = load_mmimdb(root, "train", skips=skips)
    assert bad_item not in {it.id for it in items} and skips.total == 1
    (root / "split.json").write_text('{"train": [')
    with pytest.raises(ValueError, match=r"split\.json' is not valid JSON"):
        load_mmimdb(root, "train")


def test_enrico_csv_without_its_topic_column(tmp_path):
    root = enrico_tree(tmp_path / "enrico")
    table = root / "design_topics.csv"
    rows = table.read_text().splitlines()
    table.write_text("\n".join(["screen_id,label", *rows[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['topic'\]"):
        load_enrico(root, "train")


# ------------------------------------------------------------------ explanations and CLI


def test_explainer_names_and_report_indices():
    layer = tiny_layer(2, 3, num_layers=1)
    xs, masks = tiny_batch((4, 3), batch=2)
    explainer = ExpertExplainer(layer)
    report = explainer.explain(xs, masks, methods="sii", components="synergy", n_samples=96,
                               faithfulness=False)
    assert report["synergy"].sii is not None and report["synergy"].redundancy_gap is None
    with pytest.raises(ValueError, match="methods must be drawn from"):
        explainer.explain(xs, masks, methods=("sii", "shap"))
    with pytest.raises(TypeError, match="methods must be a name or a non-empty sequence"):
        explainer.explain(xs, masks, methods=[])
    with pytest.raises(IndexError, match=r"example 2 is out of range.*indices 0\.\.1"):
        report.cross_map("synergy", "sii", example=2)
    with pytest.raises(IndexError, match="example -1 is out of range"):
        report.plot_routing(example=-1)


def test_cli_refuses_bad_numbers_and_files(tmp_path, capsys):
    from fl_i2moe_layer.cli import main

    for argv in (["train", "--batch-size", "0"], ["train", "--lr", "nan"],
                 ["explain", "--checkpoint", "x", "--index", "-1"],
                 ["evaluate", "--checkpoint", "x", "--n-samples", "many"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    assert "argument --batch-size: must be >= 1, got 0" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["train", "--out", str(taken), "--epochs", "1"]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_failed_demo_leaves_a_report_that_says_so(tmp_path, monkeypatch):
    import fl_i2moe_layer.experiments.demo as demo

    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("<h1>an old, complete report</h1>")

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(demo, "planted_splits", fail)
    with pytest.raises(RuntimeError, match="stopped"):
        demo.run_demo(out, settings=demo.DemoSettings.quick(), progress=False)
    page = (out / "index.html").read_text()
    assert "not finished" in page and "old, complete" not in page


# ------------------------------------------------------------------ network


def test_loading_by_hub_name_never_attempts_a_connection(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("the test forbids network access")

    import huggingface_hub.constants as hub_constants

    # Start from online mode whatever other test modules set, so the test can fail.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    before = os.environ.get("HF_HUB_OFFLINE")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(FileNotFoundError, match="local_files_only=True never downloads"):
        TextEncoder.from_pretrained("bert-base-uncased", hidden_dim=8)
    with pytest.raises(FileNotFoundError, match="cannot load a model from 'google/vit-base"):
        ImageEncoder.from_pretrained("google/vit-base-patch16-224", hidden_dim=8)
    assert attempts == []
    assert os.environ.get("HF_HUB_OFFLINE") == before  # offline mode is scoped to the load


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def test_dataset_cache_and_encoder_constructors(tmp_path):
    xs, _ = tiny_batch(batch=3)
    with pytest.raises(TypeError, match=r"labels must be a tensor, got list"):
        FusionDataset(xs, None, [0, 1, 2])
    with pytest.raises(ValueError, match="inputs must be a non-empty list"):
        FusionDataset(xs[0], None, torch.zeros(3))
    taken = tmp_path / "file"
    taken.write_text("")
    with pytest.raises(ValueError, match=r"FeatureCache root .* is a file"):
        FeatureCache(taken)
    with pytest.raises(ValueError, match="feature_dim must be >= 1"):
        ImageEncoder(torch.nn.Identity(), 0, 4)
    with pytest.raises(TypeError, match="backbone must be a Hugging Face text model"):
        TextEncoder(torch.nn.Linear(2, 2), 4)
