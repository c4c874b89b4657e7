"""Trainer, metrics and checkpoints: the layer and the dense baseline learn a small synthetic
task, metrics match brute-force definitions, checkpoints restore and resume exactly."""

from __future__ import annotations

import itertools

import pytest
import torch
from fl_helpers import tiny_layer

from fl_i2moe_layer import DenseFusion, FLI2MoE, Trainer
from fl_i2moe_layer.training import classification_metrics, load_checkpoint, save_checkpoint
from fl_i2moe_layer.training.synthetic import synthetic_fusion_data, synthetic_num_classes

H = 16


def small_layer(cls, task="multiclass", seed=0):
    torch.manual_seed(seed)
    kwargs = {"num_layers": 1, "num_heads": 2, "dropout": 0.0}
    return cls(2, H, synthetic_num_classes(task), task=task, **kwargs)


@pytest.mark.parametrize("cls", [FLI2MoE, DenseFusion])
def test_layer_and_dense_baseline_learn_the_synthetic_task(cls):
    train = synthetic_fusion_data(256, hidden_dim=H, seed=0)
    val = synthetic_fusion_data(128, hidden_dim=H, seed=1)
    model = small_layer(cls)
    history = Trainer(model, lr=3e-3, max_epochs=6, patience=6, progress=False).fit(train, val)
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    best = history.val_metrics[history.best_epoch]
    assert best["accuracy"] > 0.6  # chance is 0.25 (four classes)
    assert best["macro_f1"] > 0.5 and best["auroc"] > 0.8


@pytest.mark.parametrize("task", ["multilabel", "binary"])
def test_other_tasks_train(task):
    train = synthetic_fusion_data(256, hidden_dim=H, task=task, seed=0)
    val = synthetic_fusion_data(128, hidden_dim=H, task=task, seed=1)
    history = Trainer(small_layer(FLI2MoE, task), lr=3e-3, max_epochs=5, patience=5,
                      progress=False).fit(train, val)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_metrics[history.best_epoch]["auroc"] > 0.75


def brute_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_f1(pred, truth, cls):
    tp = sum(p == cls and t == cls for p, t in zip(pred, truth, strict=True))
    fp = sum(p == cls and t != cls for p, t in zip(pred, truth, strict=True))
    fn = sum(p != cls and t == cls for p, t in zip(pred, truth, strict=True))
    return 0.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def test_multiclass_metrics_against_definitions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, generator=gen)
    logits[:, 1] = logits[:, 1].round()  # ties in the AUROC ranking
    labels = torch.randint(0, 3, (40,), generator=gen)
    m = classification_metrics(logits, labels, "multiclass")
    pred = logits.argmax(1).tolist()
    truth = labels.tolist()
    correct = sum(p == t for p, t in zip(pred, truth, strict=True))
    assert m["accuracy"] == pytest.approx(correct / 40)
    assert m["micro_f1"] == pytest.approx(m["accuracy"])
    assert m["macro_f1"] == pytest.approx(sum(brute_f1(pred, truth, c) for c in range(3)) / 3)
    probs = logits.softmax(1)
    expected = sum(brute_auroc(probs[:, c].tolist(), [t == c for t in truth])
                   for c in range(3)) / 3
    assert m["auroc"] == pytest.approx(expected)


def test_multilabel_and_binary_metrics():
    logits = torch.tensor([[2.0, -1.0], [1.0, 1.0], [-1.0, -2.0], [0.5, 3.0]])
    labels = torch.tensor([[1, 0], [1, 0], [0, 0], [1, 1]])
    m = classification_metrics(logits, labels, "multilabel")
    assert m["accuracy"] == pytest.approx(3 / 4)  # exact-match ratio
    # label 0: tp 3 fp 0 fn 0 -> 1; label 1: tp 1 fp 1 fn 0 -> 2/3
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1))
    assert m["auroc"] == pytest.approx(1.0)  # label 0 and label 1 both perfectly ranked
    b = classification_metrics(torch.tensor([[0.3], [-0.2], [2.0], [-1.0]]),
                               torch.tensor([1, 1, 0, 0]), "binary")
    assert b["accuracy"] == pytest.approx(0.5)
    assert b["auroc"] == pytest.approx(brute_auroc([0.3, -0.2, 2.0, -1.0], [1, 1, 0, 0]))


def test_checkpoint_restores_exactly(tmp_path):
    layer = tiny_layer(2, seed=0)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)
    from fl_helpers import tiny_batch

    xs, masks = tiny_batch()
    layer.train()
    layer.loss(layer(xs, masks), torch.tensor([0, 1, 2])).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "c.safetensors", layer, optimizer, {"epoch": 4})
    fresh = tiny_layer(2, seed=1)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    state = load_checkpoint(path, fresh, fresh_opt)
    assert state == {"epoch": 4}
    for (name, a), (_, b) in zip(layer.state_dict().items(), fresh.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    saved, loaded = optimizer.state_dict(), fresh_opt.state_dict()
    for idx, per_param in saved["state"].items():
        for key, value in per_param.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(loaded["state"][idx][key]))
    assert saved["param_groups"] == loaded["param_groups"]


def test_resume_continues_exactly(tmp_path):
    train = synthetic_fusion_data(96, hidden_dim=H, seed=0)
    val = synthetic_fusion_data(48, hidden_dim=H, seed=1)

    def run(directory, max_epochs, resume=False):
        model = small_layer(FLI2MoE)
        trainer = Trainer(model, lr=3e-3, max_epochs=max_epochs, patience=10, batch_size=32,
                          checkpoint_dir=directory, progress=False)
        return model, trainer.fit(train, val, resume=resume)

    straight, history = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)  # "interrupted" after two epochs
    resumed, resumed_history = run(tmp_path / "b", 3, resume=True)
    assert resumed_history.train_loss == history.train_loss
    assert resumed_history.best_epoch == history.best_epoch
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # The last checkpoint holds the final weights of the (uninterrupted) run.
    final = small_layer(FLI2MoE, seed=5)
    assert load_checkpoint(tmp_path / "a" / "last.safetensors", final)["epoch"] == 2


def test_resume_checks_the_options_and_records_them(tmp_path):
    """A resumed run must keep every option that shapes a step (lr, batch size, seed, ...);
    max_epochs may grow (not shrink below the epochs done) and patience may change. Every
    last checkpoint records the options and the run_info."""
    from fl_i2moe_layer.training.checkpoints import checkpoint_state

    train = synthetic_fusion_data(32, hidden_dim=H, seed=0)

    def trainer(**options):
        settings = {"lr": 3e-3, "max_epochs": 2, "patience": 3, "batch_size": 16,
                    "checkpoint_dir": tmp_path, "progress": False, **options}
        return Trainer(small_layer(FLI2MoE), **settings)

    trainer(run_info={"name": "a"}).fit(train)
    state = checkpoint_state(tmp_path / "last.safetensors")
    assert state["epoch"] == 1 and state["run"] == {"name": "a"}
    assert state["options"] == {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 16,
                                "max_epochs": 2, "patience": 3, "monitor": "accuracy",
                                "seed": 0, "grad_clip": None}
    for option in ({"lr": 1e-3}, {"batch_size": 8}, {"seed": 1}, {"weight_decay": 0.1},
                   {"monitor": "loss"}, {"grad_clip": 1.0}):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"other options \\({name}: checkpoint"):
            trainer(max_epochs=3, **option).fit(train, resume=True)
    with pytest.raises(ValueError, match="trained 2 epochs already; pass max_epochs >= 2"):
        trainer(max_epochs=1).fit(train, resume=True)
    assert checkpoint_state(tmp_path / "last.safetensors")["epoch"] == 1  # nothing trained
    history = trainer(max_epochs=3, patience=5).fit(train, resume=True)
    assert len(history.train_loss) == 3 and not history.stopped_early
    assert checkpoint_state(tmp_path / "last.safetensors")["options"]["patience"] == 5


def test_early_stopping_restores_best_weights(tmp_path):
    train = synthetic_fusion_data(64, hidden_dim=H, seed=0)
    # Validation labels are unrelated to the inputs: the metric stops improving quickly.
    val = synthetic_fusion_data(64, hidden_dim=H, seed=1)
    val.labels = val.labels[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    model = small_layer(FLI2MoE)
    trainer = Trainer(model, lr=3e-3, max_epochs=30, patience=2, monitor="loss",
                      checkpoint_dir=tmp_path, progress=False)
    history = trainer.fit(train, val)
    assert history.stopped_early and len(history.train_loss) < 30
    best = small_layer(FLI2MoE, seed=3)
    load_checkpoint(tmp_path / "best.safetensors", best)
    for a, b in zip(model.state_dict().values(), best.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # monitor="loss" watches the whole objective of the specialised layer (its default)
    assert trainer.evaluate(val)["objective"] == pytest.approx(history.best_value)


def test_trainer_argument_errors():
    with pytest.raises(ValueError, match="monitor must be"):
        Trainer(small_layer(FLI2MoE), monitor="precision")
    with pytest.raises(ValueError, match="patience must be >= 1"):
        Trainer(small_layer(FLI2MoE), patience=0)
    with pytest.raises(TypeError, match=r"config\.task"):
        Trainer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        Trainer(small_layer(FLI2MoE), progress=False).fit(
            synthetic_fusion_data(8, hidden_dim=H), resume=True)
