"""Both removal operators: baselines replacement and presence masks (key padding)."""

from __future__ import annotations

import pytest
import torch
from oracles import brute_sii

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.testing import TinyFusionTransformer


@pytest.fixture(scope="module")
def padding_model():
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=8, n_classes=3).double().eval()
    text = torch.randn(2, 3, 8, dtype=torch.float64)
    image = torch.randn(2, 3, 8, dtype=torch.float64)
    return model, (text, image)


def test_presence_mode_matches_brute_force_with_key_padding(padding_model) -> None:
    model, (text, image) = padding_model
    values = ShapleyInteractionIndex(model).attribute(
        (text, image), target=2, method="exact", removal="presence"
    )
    for example in range(2):
        def value(coalition: frozenset[int], b: int = example) -> float:
            keep = torch.tensor([k in coalition for k in range(6)]).unsqueeze(0)
            with torch.no_grad():
                out = model(text[b : b + 1], image[b : b + 1],
                            presence=(keep[:, :3], keep[:, 3:]))
            return float(out[0, 2])

        for i, j in [(0, 3), (2, 5), (1, 4)]:
            assert values[example, i, j].item() == pytest.approx(
                brute_sii(value, 6, i, j), abs=1e-10
            )


def test_presence_differs_from_zero_baseline_on_attention_model(padding_model) -> None:
    # Dropping a token from attention is not the same as feeding a zero vector.
    model, inputs = padding_model
    sii = ShapleyInteractionIndex(model)
    dropped = sii.attribute(inputs, target=2, method="exact", removal="presence")
    zeroed = sii.attribute(inputs, target=2, method="exact")
    assert not torch.allclose(dropped, zeroed)


def test_presence_equals_zero_baseline_for_a_sum_model() -> None:
    # For a model that sums its tokens, dropping a token and zeroing it are the same thing.
    def model(text, image, presence=None):
        if presence is not None:
            text = text * presence[0].unsqueeze(-1)
            image = image * presence[1].unsqueeze(-1)
        t, i = text.sum(1), image.sum(1)
        return (t * i).sum(1, keepdim=True) + t.pow(2).sum(1, keepdim=True)

    torch.manual_seed(0)
    inputs = (torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 2, 4, dtype=torch.float64))
    sii = ShapleyInteractionIndex(model)
    by_mask = sii.attribute(inputs, target=0, method="exact", removal="presence")
    by_zero = sii.attribute(inputs, target=0, method="exact")
    torch.testing.assert_close(by_mask, by_zero)
    rg_mask = RedundancyGap(model).attribute(inputs, target=0, removal="presence", n_samples=400)
    rg_zero = RedundancyGap(model).attribute(inputs, target=0, n_samples=400)
    torch.testing.assert_close(rg_mask, rg_zero)


def test_mean_token_baseline_replaces_absent_tokens() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4 * 3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net.double()

    def model(text, image):
        return net(torch.cat([text, image], 1).flatten(1))

    text = torch.randn(1, 2, 3, dtype=torch.float64)
    image = torch.randn(1, 2, 3, dtype=torch.float64)
    text_mean, image_mean = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    values = ShapleyInteractionIndex(model).attribute(
        (text, image), baselines=(text_mean, image_mean), method="exact"
    )

    def value(coalition: frozenset[int]) -> float:
        t = torch.stack([text[0, k] if k in coalition else text_mean for k in range(2)])
        i = torch.stack([image[0, k] if 2 + k in coalition else image_mean for k in range(2)])
        with torch.no_grad():
            return float(model(t.unsqueeze(0), i.unsqueeze(0)))

    for i, j in [(0, 2), (1, 3), (0, 3)]:
        assert values[0, i, j].item() == pytest.approx(brute_sii(value, 4, i, j), abs=1e-10)


def test_scalar_baseline_and_per_example_baseline_tensor() -> None:
    def model(text, image):
        return (text.sum((1, 2)) * image.sum((1, 2))).unsqueeze(1)

    inputs = (torch.ones(2, 2, 1, dtype=torch.float64), torch.ones(2, 2, 1, dtype=torch.float64))
    sii = ShapleyInteractionIndex(model)
    scalar = sii.attribute(inputs, baselines=0.5, target=0, method="exact")
    tensor = sii.attribute(inputs, target=0, method="exact",
                           baselines=(torch.full((2, 2, 1), 0.5, dtype=torch.float64), 0.5))
    torch.testing.assert_close(scalar, tensor)
    # v = (Σ text)(Σ image): each cross pair is a product of two (1 - 0.5) increments.
    assert scalar[0, 0, 2].item() == pytest.approx(0.25)
