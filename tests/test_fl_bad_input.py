"""Bad input to the FL-I2MoE package raises a clear error naming the argument."""

from __future__ import annotations

import pytest
import torch
from fl_helpers import H, tiny_batch, tiny_layer

from fl_i2moe_layer import DenseFusion, FLI2MoE
from fl_i2moe_layer.training import load_checkpoint, save_checkpoint


@pytest.fixture
def layer() -> FLI2MoE:
    return tiny_layer(2).eval()


def test_wrong_number_of_modalities(layer):
    xs, masks = tiny_batch((5, 4, 3))
    with pytest.raises(ValueError, match=r"inputs has 3 tensors .* num_modalities=2"):
        layer(xs, masks[:2])
    with pytest.raises(ValueError, match="masks has 3 tensors"):
        layer(xs[:2], masks)


def test_inputs_not_a_list(layer):
    xs, _ = tiny_batch()
    with pytest.raises(TypeError, match="inputs must be a list or tuple"):
        layer(xs[0])


def test_mismatched_hidden_size(layer):
    xs, masks = tiny_batch()
    xs[1] = torch.randn(3, 4, H + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"inputs\[1\] has hidden size 17 .* hidden_dim=16"):
        layer(xs, masks)


def test_mismatched_batch_sizes(layer):
    xs, _ = tiny_batch()
    xs[1] = xs[1][:2]
    with pytest.raises(ValueError, match=r"inputs\[1\] has batch size 2"):
        layer(xs)


def test_mask_of_wrong_shape(layer):
    xs, masks = tiny_batch()
    masks[0] = masks[0][:, :3]
    with pytest.raises(ValueError, match=r"masks\[0\] has shape \(3, 3\), expected \(3, 5\)"):
        layer(xs, masks)


def test_presence_of_wrong_shape(layer):
    xs, masks = tiny_batch()
    with pytest.raises(ValueError, match=r"presence\[1\] has shape"):
        layer(xs, masks, presence=[torch.ones(3, 5, dtype=torch.bool),
                                   torch.ones(3, 2, dtype=torch.bool)])


def test_all_padding_example(layer):
    xs, masks = tiny_batch()
    masks[0][1] = False
    masks[1][1] = False
    with pytest.raises(ValueError, match="masks mark example 1 as all padding"):
        layer(xs, masks)
    masks[0][1] = True  # one modality missing is allowed
    assert torch.isfinite(layer(xs, masks).logits).all()


def test_too_many_tokens():
    layer = tiny_layer(2, max_len=4).eval()
    xs, masks = tiny_batch()
    with pytest.raises(ValueError, match=r"inputs\[0\] has 5 tokens.*max_len=4"):
        layer(xs, masks)


@pytest.mark.parametrize(("task", "classes", "labels", "message"), [
    ("multiclass", 3, torch.zeros(3, 3, dtype=torch.long), r"task='multiclass' expects \(3,\)"),
    ("multiclass", 3, torch.tensor([0.0, 1.0, 2.0]), "must be integers"),
    ("multiclass", 3, torch.tensor([0, 1, 3]), r"class indices in \[0, 3\)"),
    ("multilabel", 3, torch.tensor([0, 1, 2]), r"task='multilabel' expects \(3, 3\)"),
    ("multilabel", 3, torch.full((3, 3), 2.0), "must be 0 or 1"),
    ("binary", 1, torch.zeros(3, 2), r"task='binary' expects \(3,\) or \(3, 1\)"),
])
def test_labels_of_wrong_shape_for_the_task(task, classes, labels, message):
    layer = tiny_layer(2, classes, task=task).eval()
    xs, masks = tiny_batch()
    out = layer(xs, masks)
    with pytest.raises((ValueError, TypeError), match=message):
        layer.loss(out, labels)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"task": "regression"}, "task must be one of"),
    ({"task": "binary"}, "num_classes must be 1"),
    ({"num_heads": 3}, "divisible by num_heads"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"replacement": "shuffle"}, "replacement must be one of"),
    ({"interaction_weight": -1.0}, "interaction_weight must be >= 0"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FLI2MoE(2, H, 3, **kwargs)


def test_one_modality_is_refused():
    with pytest.raises(ValueError, match="num_modalities must be >= 2"):
        FLI2MoE(1, H, 3)


def test_checkpoint_from_another_configuration(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.safetensors", tiny_layer(2, 3))
    with pytest.raises(ValueError, match=r"another configuration \(num_classes: checkpoint 3 "
                                         r"vs model 4\)"):
        load_checkpoint(path, tiny_layer(2, 4))
    with pytest.raises(ValueError, match="holds a FLI2MoE but the model is a DenseFusion"):
        load_checkpoint(path, DenseFusion(2, H, 3, num_heads=2))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors", tiny_layer(2, 3))
