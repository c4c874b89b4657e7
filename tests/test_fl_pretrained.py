"""save_pretrained / from_pretrained folders (config.json + model.safetensors) and the model
kind that training checkpoints record."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from fl_helpers import H, tiny_batch, tiny_layer
from torch import nn

from fl_i2moe_layer import DenseFusion, FLI2MoE, ProjectedFusion, __version__, load_pretrained
from fl_i2moe_layer.model.pretrained import CONFIG_NAME, PRETRAINED_FORMAT, WEIGHTS_NAME
from fl_i2moe_layer.storage import CorruptFileError
from fl_i2moe_layer.training import checkpoints
from fl_i2moe_layer.training.checkpoints import (
    checkpoint_model_kind,
    load_checkpoint,
    save_checkpoint,
)


def _dense(seed: int = 0) -> DenseFusion:
    torch.manual_seed(seed)
    return DenseFusion(2, H, 3, num_layers=1, num_heads=2, dropout=0.0).double()


def _projected(fusion: nn.Module, dims=(5, 7)) -> ProjectedFusion:
    torch.manual_seed(3)
    projections = [nn.Sequential(nn.Linear(d, H), nn.LayerNorm(H)) for d in dims]
    return ProjectedFusion(projections, fusion).double()


def _same_outputs(a: nn.Module, b: nn.Module, xs, masks) -> None:
    a.eval()
    out_a, out_b = a(xs, masks), b(xs, masks)
    for name in ("logits", "expert_logits", "weights", "latents"):
        assert torch.equal(getattr(out_a, name), getattr(out_b, name)), name


@pytest.mark.parametrize("kind", ["fl_i2moe", "dense"])
def test_round_trip_gives_identical_outputs_and_config(kind, tmp_path):
    model = tiny_layer(temperature=2.0, replacement="mean") if kind == "fl_i2moe" else _dense()
    folder = model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    document = json.loads((folder / CONFIG_NAME).read_text())
    assert document["format"] == PRETRAINED_FORMAT and document["model_kind"] == kind
    assert document["class"] == type(model).__name__
    assert document["torch_dtype"] == "float64" and document["library_version"] == __version__
    loaded = type(model).from_pretrained(folder)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    assert next(loaded.parameters()).dtype == torch.float64
    xs, masks = tiny_batch()
    _same_outputs(model, loaded, xs, masks)
    again = load_pretrained(str(folder))  # the generic loader picks the class from config.json
    assert type(again) is type(model)
    _same_outputs(model, again, xs, masks)


def test_projected_fusion_round_trip(tmp_path):
    model = _projected(tiny_layer())
    model.save_pretrained(tmp_path)
    loaded = ProjectedFusion.from_pretrained(tmp_path, device="cpu")
    assert isinstance(loaded.fusion, FLI2MoE) and loaded.config == model.config
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 4, 5, generator=gen, dtype=torch.float64),
          torch.randn(3, 6, 7, generator=gen, dtype=torch.float64)]
    _, masks = tiny_batch((4, 6))
    _same_outputs(model, loaded, xs, masks)
    document = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert document["config"]["feature_dims"] == [5, 7]
    assert document["config"]["fusion_kind"] == "fl_i2moe"

    custom = ProjectedFusion([nn.Linear(5, H), nn.Linear(7, H)], tiny_layer())
    with pytest.raises(TypeError, match=r"projection 0 is not nn.Sequential.*save_checkpoint"):
        custom.save_pretrained(tmp_path / "custom")


def test_overwriting_a_folder_and_refusing_a_file(tmp_path):
    tiny_layer().save_pretrained(tmp_path)
    _dense().save_pretrained(tmp_path)  # a later save replaces both files
    assert isinstance(load_pretrained(tmp_path), DenseFusion)
    taken = tmp_path / "file"
    taken.write_text("")
    with pytest.raises(ValueError, match=r"'.*file' is a file; pass a folder"):
        _dense().save_pretrained(taken)


def test_folder_errors_name_the_path_and_the_remedy(tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("the test forbids network access")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(FileNotFoundError, match=r"'org/fl-i2moe' is not a local folder.*never "
                                                r"contacts the Hugging Face Hub"):
        FLI2MoE.from_pretrained("org/fl-i2moe")
    assert attempts == []
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(FileNotFoundError, match=rf"no folder '{missing}'.*save_pretrained"):
        FLI2MoE.from_pretrained(missing)
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"weights.bin' is a file: from_pretrained takes "
                                                r"the folder"):
        load_pretrained(a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"config.json' is missing.*save_pretrained"):
        FLI2MoE.from_pretrained(empty)

    folder = tiny_layer().save_pretrained(tmp_path / "fl")
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors' is missing.*copy the whole "
                                                r"folder"):
        FLI2MoE.from_pretrained(folder)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text[: len(text) // 2], r"config.json' is not valid JSON"),
    (lambda text: "[1, 2]", r"is not an fl_i2moe_layer model configuration"),
    (lambda text: text.replace(PRETRAINED_FORMAT, "other/9"), r"format 'other/9'"),
    (lambda text: text.replace('"model_kind": "fl_i2moe"', '"model_kind": "moe"'),
     r"unknown model_kind 'moe'"),
    (lambda text: text.replace('"num_heads": 2', '"num_heads": 3'),
     r"invalid 'fl_i2moe' configuration \(hidden_dim \(16\) must be divisible"),
    (lambda text: text.replace('"task"', '"tusk"'), r"unknown FusionConfig fields \['tusk'\]"),
    (lambda text: text.replace('"torch_dtype": "float64"', '"torch_dtype": "float99"'),
     r"unknown torch_dtype 'float99'"),
])
def test_corrupted_config_is_refused(tmp_path, edit, message):
    folder = tiny_layer().save_pretrained(tmp_path)
    path = folder / CONFIG_NAME
    path.write_text(edit(path.read_text()))
    with pytest.raises(CorruptFileError, match=message) as info:
        FLI2MoE.from_pretrained(folder)
    assert str(path) in str(info.value) and "save_pretrained(folder)" in str(info.value)


def test_wrong_kind_and_mismatched_weights(tmp_path):
    fl = tiny_layer().save_pretrained(tmp_path / "fl")
    dense = _dense().save_pretrained(tmp_path / "dense")
    with pytest.raises(ValueError, match=r"describes a 'fl_i2moe' model \(FLI2MoE\), not a "
                                         r"'dense' one \(DenseFusion\); load it with "
                                         r"FLI2MoE.from_pretrained"):
        DenseFusion.from_pretrained(fl)
    with pytest.raises(ValueError, match=r"describes a 'dense' model"):
        ProjectedFusion.from_pretrained(dense)
    # weights of another save next to this config.json
    (fl / WEIGHTS_NAME).write_bytes((dense / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CorruptFileError, match=r"does not hold the weights config.json "
                                               r"describes.*model kind 'dense'"):
        FLI2MoE.from_pretrained(fl)
    # same kind, other sizes
    other = tiny_layer(num_layers=1).save_pretrained(tmp_path / "other")
    (other / CONFIG_NAME).write_text((tmp_path / "fl" / CONFIG_NAME).read_text())
    with pytest.raises(CorruptFileError, match=r"does not fit the model config.json describes"):
        FLI2MoE.from_pretrained(other)


def test_altered_weights_are_refused(tmp_path):
    folder = _dense().save_pretrained(tmp_path)
    path = folder / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"model.safetensors' is corrupt"):
        DenseFusion.from_pretrained(folder)


# -------------------------------------------------------- the model kind in checkpoints


def _run_folder(tmp_path, kind: str, *, record_kind: bool = True, monkeypatch=None):
    from fl_i2moe_layer.experiments import new_config
    from fl_i2moe_layer.experiments.runs import build_model

    config = new_config("planted", model=kind, hidden_dim=8)
    config.feature_dims = [6, 5]
    model = build_model(config)
    if not record_kind:  # a checkpoint of a version that did not record the kind
        describe = checkpoints.describe_model
        monkeypatch.setattr(checkpoints, "describe_model",
                            lambda m: {k: v for k, v in describe(m).items() if k != "kind"})
    save_checkpoint(tmp_path / "best.safetensors", model)
    if not record_kind:
        monkeypatch.undo()
    config.save(tmp_path)
    return model


def test_checkpoints_record_the_model_kind(tmp_path):
    from fl_i2moe_layer.experiments.runs import load_run

    model = _run_folder(tmp_path, "dense")
    assert checkpoint_model_kind(tmp_path / "best.safetensors") == "dense"
    config, loaded = load_run(tmp_path)
    assert config.model == "dense" and isinstance(loaded.fusion, DenseFusion)
    assert load_run(tmp_path, model="dense")[0].model == "dense"
    with pytest.raises(ValueError, match=r"'fl_i2moe' was given \(--model\) but checkpoint .* "
                                         r"records a 'dense' model; leave the option out"):
        load_run(tmp_path, model="fl_i2moe")
    with pytest.raises(ValueError, match="model must be 'fl_i2moe' or 'dense'"):
        load_run(tmp_path, model="moe")
    # a run.json that contradicts its checkpoint
    values = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**values, "model": "fl_i2moe"}))
    with pytest.raises(ValueError, match=r"run.json' says model 'fl_i2moe' but .* holds a "
                                         r"'dense' model: the folder mixes two runs"):
        load_run(tmp_path)
    # a fusion layer of the other kind is refused by name
    with pytest.raises(ValueError, match=r"holds a 'dense' model but the model is a 'fl_i2moe'"):
        load_checkpoint(tmp_path / "best.safetensors", _projected(tiny_layer(), (6, 5)))
    del model


def test_old_checkpoints_without_the_record(tmp_path, monkeypatch):
    from fl_i2moe_layer.experiments.runs import load_run

    _run_folder(tmp_path, "dense", record_kind=False, monkeypatch=monkeypatch)
    assert checkpoint_model_kind(tmp_path / "best.safetensors") is None
    assert load_run(tmp_path)[0].model == "dense"  # run.json's model
    assert isinstance(load_run(tmp_path, model="dense")[1].fusion, DenseFusion)
    with pytest.raises(ValueError, match="comes from another configuration"):
        load_run(tmp_path, model="fl_i2moe")


def test_checkpoint_model_kind_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint_model_kind(tmp_path / "best.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 5)
    with pytest.raises(CorruptFileError, match=r"junk.safetensors' cannot be read"):
        checkpoint_model_kind(junk)
    weights = tiny_layer().save_pretrained(tmp_path / "p") / WEIGHTS_NAME
    with pytest.raises(ValueError, match="is not an fl_i2moe_layer checkpoint"):
        checkpoint_model_kind(weights)
