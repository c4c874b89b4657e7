"""FL-I2MoE layer: shapes, masks and presence, the vectorised path against the sequential
reference, the interaction losses against hand computations, and captum_interactions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fl_helpers import H, tiny_batch, tiny_layer

from captum_interactions import ShapleyInteractionIndex
from fl_i2moe_layer import DenseFusion
from fl_i2moe_layer.model.losses import interaction_losses
from fl_i2moe_layer.model.reference import sequential_forward, sequential_loss_terms

FIELDS = ("logits", "expert_logits", "weights", "latents", "variant_latents")


def test_output_shapes_and_routing_weights():
    layer = tiny_layer(3, 4)
    xs, masks = tiny_batch((5, 4, 2))
    out = layer.eval()(xs, masks)
    assert out.logits.shape == (3, 4)
    assert out.expert_logits.shape == (3, 5, 4)
    assert out.weights.shape == (3, 5)
    assert out.latents.shape == (3, 5, 3 * H)
    assert out.variant_latents is None  # eval: no variants
    torch.testing.assert_close(out.weights.sum(1), torch.ones(3, dtype=torch.float64))
    mixed = (out.weights.unsqueeze(-1) * out.expert_logits).sum(1)
    torch.testing.assert_close(out.logits, mixed)
    assert layer.expert_names == ("unique_0", "unique_1", "unique_2", "synergy", "redundancy")


def test_training_forward_carries_variants():
    layer = tiny_layer(2).train()
    xs, masks = tiny_batch()
    out = layer(xs, masks)
    assert out.variant_latents is not None and out.variant_latents.shape == (3, 4, 2, 2 * H)


@pytest.mark.parametrize(("objective", "replacement"), [
    ("i2moe", "noise"), ("i2moe", "mean"), ("i2moe", "zero"), ("specialised", "noise")])
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_vectorised_matches_sequential_reference(objective, replacement, num_modalities):
    layer = tiny_layer(num_modalities, replacement=replacement, objective=objective,
                       balance_weight=0.5).train()
    xs, masks = tiny_batch((5, 4, 3)[:num_modalities])
    labels = torch.tensor([0, 2, 1])
    out = layer(xs, masks, generator=torch.Generator().manual_seed(7))
    ref = sequential_forward(layer, xs, masks, generator=torch.Generator().manual_seed(7))
    for name in FIELDS + ("variant_logits",):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name))
    terms, ref_terms = layer.loss_terms(out, labels), sequential_loss_terms(layer, ref, labels)
    torch.testing.assert_close(terms.per_expert, ref_terms.per_expert)
    torch.testing.assert_close(terms.total, ref_terms.total)
    for name, part in terms.parts.items():
        torch.testing.assert_close(part, ref_terms.parts[name])
    # ... and the same gradients.
    grads = torch.autograd.grad(terms.total, list(layer.parameters()), allow_unused=True)
    ref_grads = torch.autograd.grad(ref_terms.total, list(layer.parameters()), allow_unused=True)
    for g, r in zip(grads, ref_grads, strict=True):
        if g is None:
            assert r is None
        else:
            torch.testing.assert_close(g, r)


@pytest.mark.parametrize("objective", ["i2moe", "specialised"])
def test_vectorised_matches_reference_with_presence_in_eval(objective):
    layer = tiny_layer(2, objective=objective).eval()
    xs, masks = tiny_batch()
    presence = [torch.rand(3, 5) > 0.4, torch.zeros(3, 4, dtype=torch.bool)]
    out = layer(xs, masks, presence=presence)
    ref = sequential_forward(layer, xs, masks, presence=presence)
    for name in ("logits", "expert_logits", "weights", "latents"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name))


def test_padding_is_ignored():
    layer = tiny_layer(2).eval()
    xs, masks = tiny_batch()
    out = layer(xs, masks)
    changed = [torch.where(m.unsqueeze(-1), x, torch.randn_like(x) * 100)
               for x, m in zip(xs, masks, strict=True)]
    torch.testing.assert_close(layer(changed, masks).logits, out.logits)


def test_absent_token_equals_removed_token():
    """presence=False on a token gives the output of the input without that token (the last
    one, so that no position shifts)."""
    layer = tiny_layer(2).eval()
    xs, _ = tiny_batch(padded=False)
    presence = [torch.ones(3, 5, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool)]
    presence[1][:, -1] = False
    dropped = layer(xs, presence=presence).logits
    removed = layer([xs[0], xs[1][:, :-1]]).logits
    torch.testing.assert_close(dropped, removed)


def test_absent_modality_and_empty_rows_are_finite():
    layer = tiny_layer(2).eval()
    xs, masks = tiny_batch()
    presence = [torch.ones(3, 5, dtype=torch.bool), torch.zeros(3, 4, dtype=torch.bool)]
    presence[0][2] = False  # row 2: nothing present at all
    out = layer(xs, masks, presence=presence)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.weights).all()
    # With modality 1 absent, its tokens' values cannot matter.
    other = [xs[0], torch.randn_like(xs[1])]
    torch.testing.assert_close(layer(other, masks, presence=presence).logits, out.logits)
    layer.train()
    loss = layer.loss(layer(xs, masks, presence=presence), torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


def test_interaction_losses_by_hand():
    """M = 2, B = 1, D = 2 latents chosen so every term is known in closed form."""
    z = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])  # (1, 4, 2)
    zv = torch.zeros(1, 4, 2, 2)
    zv[0, 0, 0] = torch.tensor([3.0, 0.0])  # unique_0: negative (own modality) at distance 3
    zv[0, 0, 1] = torch.tensor([0.5, 0.0])  # positive at distance 0.5 -> hinge 0
    zv[0, 1, 1] = torch.tensor([0.2, 0.0])  # unique_1: negative at 0.2
    zv[0, 1, 0] = torch.tensor([0.0, 2.0])  # positive at 2 -> hinge 2 - 0.2 + 1 = 2.8
    zv[0, 2, 0] = torch.tensor([0.0, 1.0])  # synergy: cos 0
    zv[0, 2, 1] = torch.tensor([1.0, 0.0])  # cos 1 -> mean cos 0.5
    zv[0, 3, 0] = torch.tensor([-1.0, 0.0])  # redundancy: 1 - cos = 2
    zv[0, 3, 1] = torch.tensor([2.0, 0.0])  # 1 - cos = 0 -> mean 1
    losses = interaction_losses(z, zv)
    torch.testing.assert_close(losses, torch.tensor([0.0, 2.8, 0.5, 1.0]), atol=1e-5, rtol=0)
    # The uniqueness term is PyTorch's own triplet loss.
    expected = F.triplet_margin_loss(z[:, 1], zv[:, 1, 0], zv[:, 1, 1], margin=1.0)
    torch.testing.assert_close(losses[1], expected)


def test_loss_adds_weighted_interaction_term():
    layer = tiny_layer(2, interaction_weight=0.25, objective="i2moe").train()
    xs, masks = tiny_batch()
    labels = torch.tensor([0, 1, 2])
    out = layer(xs, masks)
    terms = layer.loss_terms(out, labels)
    torch.testing.assert_close(terms.task, F.cross_entropy(out.logits, labels))
    torch.testing.assert_close(terms.total, terms.task + 0.25 * terms.per_expert.mean())
    torch.testing.assert_close(layer.loss(out, labels), terms.total)
    # Eval outputs carry no variants: task loss only.
    layer.eval()
    eval_out = layer(xs, masks)
    torch.testing.assert_close(layer.loss(eval_out, labels),
                               F.cross_entropy(eval_out.logits, labels))


@pytest.mark.parametrize(("task", "classes", "labels"), [
    ("multilabel", 3, torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1]])),
    ("binary", 1, torch.tensor([1, 0, 1])),
])
def test_task_losses(task, classes, labels):
    layer = tiny_layer(2, classes, task=task).eval()
    xs, masks = tiny_batch()
    out = layer(xs, masks)
    expected = F.binary_cross_entropy_with_logits(out.logits, labels.float().view(3, classes))
    torch.testing.assert_close(layer.loss(out, labels), expected)


def test_dense_fusion_interface():
    torch.manual_seed(0)
    dense = DenseFusion(2, H, 3, num_layers=1, num_heads=2, dropout=0.0).double().train()
    xs, masks = tiny_batch()
    out = dense(xs, masks)
    assert out.expert_logits.shape == (3, 1, 3) and out.weights.shape == (3, 1)
    torch.testing.assert_close(out.logits, out.expert_logits[:, 0])
    labels = torch.tensor([0, 1, 2])
    torch.testing.assert_close(dense.loss(out, labels), F.cross_entropy(out.logits, labels))
    assert out.variant_latents is None


def test_sii_with_presence_removal_through_forward_func():
    layer = tiny_layer(2).eval()
    xs, masks = tiny_batch((3, 3), batch=2)
    f = layer.as_forward_func("synergy")
    values = ShapleyInteractionIndex(f).attribute(
        tuple(xs), additional_forward_args=tuple(masks), target=1, removal="presence",
        method="exact",
    )
    assert values.shape == (2, 6, 6)
    torch.testing.assert_close(values, values.transpose(1, 2))
    # Example 1 pads the last token of each modality: a padded token has no interaction.
    assert masks[0][1, 2].item() is False
    assert values[1, 2].abs().max() < 1e-12
    assert values[1, :3, 3:5].abs().max() > 0  # real cross pairs do interact


def test_forward_func_components():
    layer = tiny_layer(2).eval()
    xs, masks = tiny_batch()
    out = layer(xs, masks)
    torch.testing.assert_close(layer.as_forward_func()(*xs, *masks), out.logits)
    torch.testing.assert_close(layer.as_forward_func(1)(*xs, *masks), out.expert_logits[:, 1])
    torch.testing.assert_close(layer.as_forward_func("redundancy")(*xs),
                               layer(xs).expert_logits[:, 3])
    with pytest.raises(ValueError, match="component"):
        layer.as_forward_func("nope")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_reference_and_cpu():
    # replacement="zero": the variants do not depend on a device's random generator.
    layer = tiny_layer(2, dtype=torch.float32, replacement="zero").train()
    xs, masks = tiny_batch(dtype=torch.float32)
    labels = torch.tensor([0, 2, 1])
    cpu_out = layer(xs, masks)
    cpu_loss = layer.loss(cpu_out, labels)
    layer = layer.cuda()
    xs, masks, labels = [x.cuda() for x in xs], [m.cuda() for m in masks], labels.cuda()
    out = layer(xs, masks)
    ref = sequential_forward(layer, xs, masks)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.loss(out, labels), sequential_loss_terms(
        layer, ref, labels).total, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.logits.cpu(), cpu_out.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.loss(out, labels).cpu(), cpu_loss, atol=1e-4, rtol=1e-4)
