"""The specialised objective of FL-I2MoE (issue 13): uniqueness experts that see their own
modality only, a router that sees single cues, routing targets from which modalities suffice,
and the paper's objective kept as ``objective="i2moe"``."""

from __future__ import annotations

import math

import pytest
import torch
from fl_helpers import tiny_batch, tiny_layer

from fl_i2moe_layer import FLI2MoE
from fl_i2moe_layer.experiments.evaluation import cue_cases, routing_by_case
from fl_i2moe_layer.model.config import FusionConfig
from fl_i2moe_layer.model.losses import sufficiency_targets
from fl_i2moe_layer.model.reference import sequential_forward, sequential_loss_terms
from fl_i2moe_layer.training import Trainer
from fl_i2moe_layer.training.synthetic import synthetic_cue_data


@pytest.fixture(scope="module")
def trained():
    """One seed of the specialised layer on the synthetic miniature of the planted data."""
    data = synthetic_cue_data(384 + 256, seed=0, text_tokens=4, image_tokens=4, vocabulary=8)
    train, test = data.subset(slice(0, 384)), data.subset(slice(384, None))
    torch.manual_seed(0)
    layer = FLI2MoE(2, 16, 1, task="binary", num_layers=1, num_heads=2, dropout=0.0)
    trainer = Trainer(layer, lr=1e-2, max_epochs=12, patience=12, seed=0, progress=False,
                      monitor="loss")
    history = trainer.fit(train.dataset, test.dataset)
    return layer.eval(), test, history


def test_routing_follows_the_cue_case(trained):
    layer, test, _ = trained
    with torch.no_grad():
        out = layer(list(test.dataset.inputs), list(test.dataset.masks))
    accuracy = float(((out.logits[:, 0] > 0).float() == test.labels).float().mean())
    assert accuracy > 0.9
    w = routing_by_case(out.weights, cue_cases(test))
    u0, u1, red = (layer.expert_names.index(n) for n in ("unique_0", "unique_1", "redundancy"))
    assert w["text cue"][u0] > w["image cue"][u0], w
    assert w["image cue"][u1] > w["text cue"][u1], w
    assert w["redundancy, both cues"][red] > w["text cue"][red], w
    assert w["redundancy, both cues"][red] > w["image cue"][red], w


def test_early_stopping_watches_the_whole_objective(trained):
    _, _, history = trained
    assert all("objective" in m and "loss" in m for m in history.val_metrics)
    best = min(m["objective"] for m in history.val_metrics)
    assert history.best_value == best


def test_uniqueness_expert_ignores_the_other_modalities():
    """Exactly: unique_i's logits and latent are unchanged when any modality j != i changes,
    while the multimodal experts do change."""
    layer = tiny_layer(3).eval()
    xs, masks = tiny_batch((5, 4, 3))
    out = layer(xs, masks)
    for j in range(3):
        changed = [torch.randn_like(x) * 5 if m == j else x for m, x in enumerate(xs)]
        other = layer(changed, masks)
        for i in range(3):
            same = torch.equal(other.expert_logits[:, i], out.expert_logits[:, i])
            assert same == (i != j), (i, j)
            if i != j:
                assert torch.equal(other.latents[:, i], out.latents[:, i])
        for e in (3, 4):  # synergy and redundancy see everything
            assert not torch.equal(other.expert_logits[:, e], out.expert_logits[:, e])


def test_objective_i2moe_keeps_the_paper_setting():
    """The I2MoE layer: replaced-modality variants, interaction losses, mean-pooled routing, a
    uniqueness expert that sees every modality; it equals the reference and still trains."""
    layer = tiny_layer(2, objective="i2moe").train()
    xs, masks = tiny_batch()
    labels = torch.tensor([0, 1, 2])
    gen = torch.Generator().manual_seed(3)
    out = layer(xs, masks, generator=gen)
    assert out.variant_logits is None and out.variant_latents is not None
    terms = layer.loss_terms(out, labels)
    assert terms.parts == {}
    torch.testing.assert_close(terms.total, terms.task + 0.5 * terms.per_expert.mean())
    ref = sequential_forward(layer, xs, masks, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.logits, ref.logits)
    layer.eval()
    changed = [xs[0], torch.randn_like(xs[1])]
    assert not torch.equal(layer(changed, masks).expert_logits[:, 0],
                           layer(xs, masks).expert_logits[:, 0])
    assert layer.reweighting.pooling == "mean"
    # a few steps of training lower the loss
    layer.train()
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss = layer.loss(layer(xs, masks), labels)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_specialised_layer_equals_the_reference(num_modalities):
    """Forward (with presence masks), every loss part and the gradients."""
    layer = tiny_layer(num_modalities, balance_weight=0.3, invariance_weight=2.0,
                       routing_weight=0.7).train()
    xs, masks = tiny_batch((5, 4, 3)[:num_modalities])
    presence = [torch.rand(3, x.shape[1], generator=torch.Generator().manual_seed(m)) > 0.3
                for m, x in enumerate(xs)]
    labels = torch.tensor([2, 0, 1])
    out = layer(xs, masks, presence=presence)
    ref = sequential_forward(layer, xs, masks, presence=presence)
    for name in ("logits", "expert_logits", "weights", "latents", "variant_latents",
                 "variant_logits"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name))
    terms, ref_terms = layer.loss_terms(out, labels), sequential_loss_terms(layer, ref, labels)
    assert set(terms.parts) == {"routing", "balance", "invariance"}
    for name in terms.parts:
        torch.testing.assert_close(terms.parts[name], ref_terms.parts[name])
    torch.testing.assert_close(terms.total, ref_terms.total)
    grads = torch.autograd.grad(terms.total, list(layer.parameters()), allow_unused=True)
    ref_grads = torch.autograd.grad(ref_terms.total, list(layer.parameters()),
                                    allow_unused=True)
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g is None) == (r is None)
        if g is not None:
            torch.testing.assert_close(g, r)


def test_sufficiency_targets_from_their_definition():
    scale = 0.1
    big = 10.0
    # columns: unique_0, unique_1, synergy, redundancy (losses)
    losses = torch.tensor([
        [0.0, big, 0.0, 0.0],   # only the text suffices -> unique_0
        [big, 0.0, 0.0, 0.0],   # only the image suffices -> unique_1
        [big, big, 0.0, 0.0],   # neither alone -> synergy
        [0.0, 0.0, 0.0, 0.0],   # both suffice -> redundancy
        [0.05, 0.1, 0.0, 1.0],  # partial: s_i = exp(-(gap / scale)²)
    ])
    t = sufficiency_targets(losses, 2, scale)
    torch.testing.assert_close(t[:4], torch.eye(4), atol=1e-6, rtol=0)
    s0, s1 = math.exp(-0.25), math.exp(-1.0)
    expected = torch.tensor([s0 * (1 - s1), s1 * (1 - s0), (1 - s0) * (1 - s1), s0 * s1])
    torch.testing.assert_close(t[4], expected)
    # M = 3: a partition of 1 for any losses
    t3 = sufficiency_targets(torch.rand(6, 5), 3, 0.2)
    torch.testing.assert_close(t3.sum(1), torch.ones(6))
    assert bool((t3 >= 0).all())


def test_eval_loss_is_the_task_loss_for_both_objectives():
    xs, masks = tiny_batch()
    labels = torch.tensor([0, 1, 2])
    for objective in ("specialised", "i2moe"):
        layer = tiny_layer(2, objective=objective).eval()
        out = layer(xs, masks)
        terms = layer.loss_terms(out, labels)
        torch.testing.assert_close(terms.total, terms.task)


def test_bad_objective_and_weights_are_refused():
    with pytest.raises(ValueError, match=r"objective must be one of .*'moe'"):
        FLI2MoE(2, 16, 2, objective="moe")
    with pytest.raises(ValueError, match="balance_weight"):
        FLI2MoE(2, 16, 2, balance_weight=-1.0)
    with pytest.raises(ValueError, match="sufficiency_scale"):
        FLI2MoE(2, 16, 2, sufficiency_scale=0.0)


def test_configuration_without_the_new_fields_reads_as_the_paper_layer(tmp_path):
    """A config recorded before ``objective`` existed loads as the model it was (I2MoE), and
    the I2MoE layer's config is recorded in that earlier format (so its old checkpoints
    match); a specialised layer refuses such a checkpoint, naming the field."""
    new_fields = {"objective", "routing_weight", "balance_weight", "invariance_weight",
                  "sufficiency_scale"}
    old = FusionConfig(2, 16, 3, objective="i2moe").to_dict()
    assert not new_fields & set(old)
    config = FusionConfig.from_dict(old)
    assert config.objective == "i2moe" and config == FusionConfig(2, 16, 3, objective="i2moe")
    assert FusionConfig(2, 16, 3).objective == "specialised"
    specialised = FusionConfig(2, 16, 3, balance_weight=0.5)
    assert FusionConfig.from_dict(specialised.to_dict()) == specialised
    assert FLI2MoE.from_config(specialised).config == specialised
    from fl_i2moe_layer.training.checkpoints import load_checkpoint, save_checkpoint

    paper = tiny_layer(2, objective="i2moe")
    save_checkpoint(tmp_path / "paper.safetensors", paper)
    load_checkpoint(tmp_path / "paper.safetensors", tiny_layer(2, objective="i2moe", seed=1))
    with pytest.raises(ValueError, match="objective: checkpoint None vs model 'specialised'"):
        load_checkpoint(tmp_path / "paper.safetensors", tiny_layer(2, seed=1))


def test_removal_sensitivity_is_zero_exactly_for_the_other_modalitys_unique_expert() -> None:
    """removal_sensitivity by its definition: |logit(full) - logit(modality m removed)| per
    expert; unique_0 ignores the image and unique_1 the text, to the last bit."""
    from fl_i2moe_layer.experiments.datasets import new_config
    from fl_i2moe_layer.experiments.evaluation import removal_sensitivity
    from fl_i2moe_layer.experiments.runs import build_model
    from fl_i2moe_layer.training import FusionDataset

    config = new_config("planted", hidden_dim=8)
    config.feature_dims = [6, 5]
    model = build_model(config)
    gen = torch.Generator().manual_seed(3)
    data = FusionDataset([torch.randn(7, 4, 6, generator=gen),
                          torch.randn(7, 3, 5, generator=gen)], None, torch.zeros(7))
    change = removal_sensitivity(model, data)
    assert change.shape == (2, 7, 4) and model.training  # the mode is restored
    names = list(model.fusion.expert_names)
    assert bool((change[1, :, names.index("unique_0")] == 0).all())
    assert bool((change[0, :, names.index("unique_1")] == 0).all())
    assert bool((change[0, :, names.index("unique_0")] > 0).all())
    model.eval()
    full = model(list(data.inputs), list(data.masks)).expert_logits[..., 0]
    absent = [torch.ones(7, 4, dtype=torch.bool), torch.zeros(7, 3, dtype=torch.bool)]
    image_removed = model(list(data.inputs), list(data.masks),
                          presence=absent).expert_logits[..., 0]
    torch.testing.assert_close(change[1], (full - image_removed).abs())
