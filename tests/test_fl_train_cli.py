"""`fl-i2moe train` on a tiny planted variant: every option it shows reaches the model and the
trainer (and is recorded), and `--resume` continues a killed run bit-identically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fl_i2moe_layer.cli import main
from fl_i2moe_layer.storage import load_file
from fl_i2moe_layer.training.checkpoints import checkpoint_state
from fl_i2moe_layer.training.trainer import Trainer

#: 40 planted examples: 28 train, 12 test (the test split is also the validation split).
N, N_TRAIN = 40, 28


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's planted cache (shared with test_fl_planted); the tiny variant is encoded
    once (~8 s), then read back."""
    path = tmp_path_factory.getbasetemp() / "planted_cache"
    path.mkdir(exist_ok=True)
    return str(path)


def train(cache: str, out: Path, *options: str) -> int:
    return main(["train", "--dataset", "planted", "--n", str(N), "--seed", "1",
                 "--cache-dir", cache, "--out", str(out), *options])


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path, what="checkpoint")[0]


def assert_same_files(a: Path, b: Path) -> None:
    for name in ("best.safetensors", "last.safetensors"):
        ta, tb = tensors(a / name), tensors(b / name)
        assert ta.keys() == tb.keys(), name
        for key in ta:
            assert torch.equal(ta[key], tb[key]), (name, key)


@pytest.fixture(scope="module")
def straight(cache: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 4-epoch run at one intra-op thread."""
    out = tmp_path_factory.mktemp("straight") / "run"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train(cache, out, "--epochs", "4", "--hidden-dim", "8", "--patience", "10") == 0
    finally:
        torch.set_num_threads(previous)
    return out


# -- every option reaches the model and the trainer -----------------------------------------


@pytest.mark.parametrize("kind", ["fl_i2moe", "dense"])
def test_model_size_options_reach_the_model(cache, tmp_path, kind) -> None:
    from fl_i2moe_layer.experiments import load_run

    out = tmp_path / "run"
    assert train(cache, out, "--model", kind, "--epochs", "1", "--hidden-dim", "12",
                 "--num-layers", "2") == 0
    config = run_json(out)
    assert (config["model"], config["hidden_dim"], config["num_layers"]) == (kind, 12, 2)
    _, model = load_run(out)
    assert model.fusion.model_kind == kind
    assert model.fusion.config.hidden_dim == 12 and model.fusion.config.num_layers == 2
    assert [p[0].out_features for p in model.projections] == [12, 12]
    assert model.fusion.experts.qkv_w.shape[:1] == (2,)  # (layers, experts, H, 3H)
    assert model.fusion.experts.qkv_w.shape[-2:] == (12, 36)


def test_objective_and_dropout_reach_the_layer_and_old_run_files_still_load(
        cache, tmp_path, capsys) -> None:
    from fl_i2moe_layer.experiments import load_run
    from fl_i2moe_layer.experiments.config import RUN_FILE

    out = tmp_path / "run"
    assert train(cache, out, "--epochs", "1", "--hidden-dim", "8", "--objective", "i2moe",
                 "--dropout", "0.25") == 0
    assert (run_json(out)["objective"], run_json(out)["dropout"]) == ("i2moe", 0.25)
    _, model = load_run(out)
    assert (model.fusion.config.objective, model.fusion.config.dropout) == ("i2moe", 0.25)
    default = tmp_path / "default"
    assert train(cache, default, "--epochs", "1", "--hidden-dim", "8") == 0
    _, model = load_run(default)
    assert (model.fusion.config.objective, model.fusion.config.dropout) == ("specialised", 0.1)
    # A run.json written before the two options existed: those runs were i2moe, dropout 0.
    legacy = tmp_path / "legacy"
    assert train(cache, legacy, "--epochs", "1", "--hidden-dim", "8", "--objective", "i2moe",
                 "--dropout", "0") == 0
    values = run_json(legacy)
    del values["objective"], values["dropout"]
    (legacy / RUN_FILE).write_text(json.dumps(values))
    config, model = load_run(legacy)
    assert (config.objective, config.dropout) == ("i2moe", 0.0)
    assert model.fusion.config.objective == "i2moe"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # argparse refuses it before anything runs
        train(cache, tmp_path / "bad", "--dropout", "1.5")
    assert stop.value.code == 2
    assert "--dropout: must be in [0, 1), got 1.5" in capsys.readouterr().err


def test_training_options_reach_the_trainer(cache, tmp_path) -> None:
    out = tmp_path / "run"
    assert train(cache, out, "--epochs", "3", "--lr", "0.0123", "--batch-size", "5",
                 "--patience", "7", "--hidden-dim", "8") == 0
    config = run_json(out)
    assert (config["epochs"], config["lr"], config["batch_size"], config["patience"],
            config["seed"], config["n"]) == (3, 0.0123, 5, 7, 1, N)
    state = checkpoint_state(out / "last.safetensors")
    assert state["epoch"] == 2 and len(state["history"]["train_loss"]) == 3
    assert state["options"] == {"lr": 0.0123, "weight_decay": 0.0, "batch_size": 5,
                                "max_epochs": 3, "patience": 7, "monitor": "loss", "seed": 1,
                                "grad_clip": None}
    # What the optimizer actually did: Adam's learning rate, one step per batch of 5.
    _, meta = load_file(out / "last.safetensors", what="checkpoint")
    assert json.loads(meta["optimizer"])["param_groups"][0]["lr"] == 0.0123
    steps = tensors(out / "last.safetensors")["optim.0.step"]
    assert int(steps) == 3 * math.ceil(N_TRAIN / 5)


def test_patience_stops_training(cache, tmp_path, monkeypatch) -> None:
    """--patience reaches the early stopping: with a validation loss that never improves after
    the first epoch, patience 2 stops after epoch 2 (epochs 0, 1, 2 run)."""
    def evaluate(self, data):
        return {"loss": 1.0, "accuracy": 0.5, "macro_f1": 0.5, "micro_f1": 0.5,
                "auroc": 0.5}

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    out = tmp_path / "run"
    assert train(cache, out, "--epochs", "9", "--patience", "2", "--hidden-dim", "8") == 0
    state = checkpoint_state(out / "last.safetensors")
    assert state["epoch"] == 2 and state["bad_epochs"] == 2
    assert state["options"]["patience"] == 2


def test_seed_changes_the_data_and_the_initialisation(cache, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(cache, a, "--epochs", "1", "--hidden-dim", "8") == 0
    assert main(["train", "--dataset", "planted", "--n", str(N), "--seed", "2", "--cache-dir",
                 cache, "--out", str(b), "--epochs", "1", "--hidden-dim", "8"]) == 0
    assert (run_json(a)["seed"], run_json(b)["seed"]) == (1, 2)
    assert checkpoint_state(b / "last.safetensors")["options"]["seed"] == 2
    ta, tb = tensors(a / "last.safetensors"), tensors(b / "last.safetensors")
    assert not torch.equal(ta["model.projections.0.0.weight"], tb["model.projections.0.0.weight"])


def test_real_dataset_options_are_refused_for_planted_data(cache, tmp_path, capsys) -> None:
    for option in (["--max-length", "12"], ["--data-dir", str(tmp_path)],
                   ["--split-limit", "5"]):
        assert train(cache, tmp_path / "run", *option) == 2, option
        err = capsys.readouterr().err
        assert err.startswith(f"fl-i2moe: error: {option[0]} applies to real datasets")
        assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()


# -- --resume -------------------------------------------------------------------------------


def test_resume_is_bit_identical_to_an_uninterrupted_run(cache, tmp_path, straight,
                                                        capsys) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    common = ("--hidden-dim", "8", "--patience", "10")
    assert train(cache, out, "--epochs", "2", *common) == 0
    assert checkpoint_state(out / "last.safetensors")["epoch"] == 1
    capsys.readouterr()
    assert train(cache, out, "--epochs", "4", "--resume", *common) == 0
    assert "resuming from epoch 2" in capsys.readouterr().err
    assert_same_files(out, straight)
    assert checkpoint_state(out / "last.safetensors") == checkpoint_state(
        straight / "last.safetensors")
    assert run_json(out) == run_json(straight)  # options and final metrics


def test_a_killed_run_resumes_where_it_stopped(cache, tmp_path, straight, monkeypatch,
                                               capsys) -> None:
    """Killed (Ctrl-C) during epoch 2: the rerun with --resume trains epochs 2 and 3 only and
    ends where the uninterrupted run ends."""
    torch.set_num_threads(1)
    epoch_of = Trainer.train_epoch
    seen: list[int] = []

    def killed_at_2(self, data, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        seen.append(epoch)
        return epoch_of(self, data, epoch)

    out = tmp_path / "run"
    common = ("--epochs", "4", "--hidden-dim", "8", "--patience", "10")
    monkeypatch.setattr(Trainer, "train_epoch", killed_at_2)
    assert train(cache, out, *common) == 130
    assert "with --resume" in capsys.readouterr().err.splitlines()[-1]
    assert seen == [0, 1] and checkpoint_state(out / "last.safetensors")["epoch"] == 1
    assert not (out / "run.json").exists()  # written when a run finishes

    assert train(cache, out, *common) == 2  # no --resume: refused, nothing overwritten
    err = capsys.readouterr().err
    assert "--resume" in err and "--out" in err and err.count("\n") == 1
    assert checkpoint_state(out / "last.safetensors")["epoch"] == 1

    def recorded(self, data, epoch):
        seen.append(epoch)
        return epoch_of(self, data, epoch)

    seen.clear()
    monkeypatch.setattr(Trainer, "train_epoch", recorded)
    assert train(cache, out, *common, "--resume") == 0
    assert seen == [2, 3]
    assert_same_files(out, straight)
    assert run_json(out) == run_json(straight)


def test_resume_refuses_other_options(cache, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert train(cache, out, "--epochs", "1", "--hidden-dim", "8") == 0
    before = tensors(out / "last.safetensors")
    capsys.readouterr()
    for option in (["--lr", "0.01"], ["--batch-size", "4"], ["--hidden-dim", "16"],
                   ["--model", "dense"], ["--n", "41"]):
        args = ["--epochs", "2", "--hidden-dim", "8", *option, "--resume"]
        assert train(cache, out, *args) == 2, option
        err = capsys.readouterr().err
        name = option[0][2:].replace("-", "_")
        assert err.startswith("fl-i2moe: error: cannot resume") and name in err, err
        assert err.count("\n") == 1
    after = tensors(out / "last.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    # --epochs and --patience may change: they only decide when the run stops.
    assert train(cache, out, "--epochs", "2", "--patience", "3", "--hidden-dim", "8",
                 "--resume") == 0
    assert checkpoint_state(out / "last.safetensors")["epoch"] == 1
    assert run_json(out)["epochs"] == 2 and run_json(out)["patience"] == 3
    capsys.readouterr()
    # Fewer epochs than already trained: refused; as many: the finished run, unchanged.
    assert train(cache, out, "--epochs", "1", "--hidden-dim", "8", "--resume") == 2
    assert "trained 2 epochs already; pass --epochs" in capsys.readouterr().err
    done = tensors(out / "last.safetensors")
    assert train(cache, out, "--epochs", "2", "--hidden-dim", "8", "--resume") == 0
    again = tensors(out / "last.safetensors")
    assert all(torch.equal(done[k], again[k]) for k in done)


def test_resume_without_a_checkpoint_starts_at_epoch_0(cache, tmp_path, capsys) -> None:
    out = tmp_path / "fresh"
    assert train(cache, out, "--epochs", "1", "--hidden-dim", "8", "--resume") == 0
    assert "no last.safetensors" in capsys.readouterr().err
    assert checkpoint_state(out / "last.safetensors")["epoch"] == 0
    # A folder with a finished run but no last checkpoint cannot be resumed.
    (out / "last.safetensors").unlink()
    assert train(cache, out, "--epochs", "1", "--hidden-dim", "8", "--resume") == 2
    assert "no last.safetensors to resume from" in capsys.readouterr().err
