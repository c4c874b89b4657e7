"""ExpertExplainer: every map for the mixture and each expert, their basic properties, the
routing distribution, the metrics hook and the figures (Agg backend, files written)."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from fl_helpers import H, tiny_batch, tiny_layer

from fl_i2moe_layer import DenseFusion, ExpertExplainer, FusionDataset, ProjectedFusion
from fl_i2moe_layer.explain.attention_gradient import rollout

matplotlib.use("Agg")

NAMES = ("mixture", "unique_0", "unique_1", "synergy", "redundancy")


@pytest.fixture(scope="module")
def report_and_inputs():
    torch.set_num_threads(1)
    layer = tiny_layer(2, 3, num_layers=1)
    xs, masks = tiny_batch((4, 3), batch=2)
    masks[1][0, 2] = False  # example 0: patch 2 is padding
    explainer = ExpertExplainer(layer, ig_steps=32)
    report = explainer.explain(xs, masks, n_samples=96, perturbations_per_eval=48,
                               ks=(25,), n_random=2, rg_candidates=4)
    return layer, xs, masks, report


def test_every_component_has_every_map(report_and_inputs):
    layer, xs, masks, report = report_and_inputs
    assert tuple(report.components) == NAMES
    assert report.weights.shape == (2, 4)
    expected_target = layer.eval()(xs, masks).logits.argmax(1)
    assert torch.equal(report.target, expected_target)
    for name in NAMES:
        comp = report[name]
        for method in ("integrated_gradients", "attention_gradient"):
            scores = comp.tokens(method)
            assert [s.shape for s in scores] == [(2, 4), (2, 3)]
            assert scores[1][0, 2] == 0  # padding carries nothing
        for method in ("sii", "redundancy_gap"):
            values = comp.pairs(method)
            assert values.shape == (2, 7, 7)
            torch.testing.assert_close(values, values.transpose(1, 2))
        assert (comp.redundancy_gap >= 0).all()
        assert set(comp.faithfulness) == {"integrated_gradients", "attention_gradient"}
        assert set(comp.concentration) == {"integrated_gradients", "attention_gradient", "sii",
                                           "redundancy_gap"}
        res = comp.faithfulness["integrated_gradients"]
        assert res.comprehensiveness.shape == (2, 1)
        assert torch.isfinite(comp.concentration["sii"].entropy).all()
    assert report.cross_map("synergy", "sii", example=0).shape == (4, 3)


def test_integrated_gradients_complete_each_component(report_and_inputs):
    """IG's completeness: the attributions sum to f(x) - f(x') for that component, where x'
    is the limit of the path at the zero baseline. An expert is continuous there, so
    f(x') = f(0). The mixture's router summarises each modality scale-free (normalised
    summaries), so its weights stay w(x) along the path αx and jump only at α = 0 itself:
    the path integral ends at Σ_e w_e(x) · logit_e(0), not at the mixture's f(0)."""
    layer, xs, masks, report = report_and_inputs
    layer.eval()
    zeros = [torch.zeros_like(x) for x in xs]
    for name in ("mixture", "synergy"):
        f = layer.as_forward_func(name)
        with torch.no_grad():
            if name == "mixture":
                weights = layer(list(xs), list(masks)).weights
                at_zero = layer(zeros, list(masks)).expert_logits
                start = torch.einsum("be,bec->bc", weights, at_zero)
            else:
                start = f(*zeros, *masks)
            delta = (f(*xs, *masks) - start).gather(1, report.target[:, None])[:, 0]
        total = sum(s.sum(1) for s in report[name].integrated_gradients)
        torch.testing.assert_close(total, delta, atol=0.01 * delta.abs().max() + 2e-3, rtol=0)


def test_mixture_relevance_is_routing_weighted(report_and_inputs):
    _, _, _, report = report_and_inputs
    experts = torch.stack([torch.cat(report[n].attention_gradient, 1) for n in NAMES[1:]], 1)
    mixture = torch.cat(report["mixture"].attention_gradient, 1)
    torch.testing.assert_close(mixture, (report.weights[:, :, None] * experts).sum(1))


def test_rollout_by_hand():
    """One layer, one head, two tokens: R = I + Ā, relevance = mean over present queries."""
    att = torch.tensor([[0.5, 0.5], [0.25, 0.75]]).view(1, 1, 1, 2, 2)
    grad = torch.tensor([[1.0, -1.0], [2.0, 2.0]]).view(1, 1, 1, 2, 2)
    keep = torch.tensor([[True, True]])
    rel = rollout([att], [grad], keep)
    # Ā = [[0.5, 0], [0.5, 1.5]]; R = I + Ā = [[1.5, 0], [0.5, 2.5]]; column means.
    torch.testing.assert_close(rel, torch.tensor([[[1.0, 1.25]]]))
    rel = rollout([att], [grad], torch.tensor([[True, False]]))
    torch.testing.assert_close(rel, torch.tensor([[[1.5, 0.0]]]))


def test_routing_distribution_and_plots(report_and_inputs, tmp_path):
    layer, xs, masks, report = report_and_inputs
    data = FusionDataset(xs, masks, torch.tensor([0, 1]))
    dist = ExpertExplainer(layer).routing_distribution(data, batch_size=1)
    assert dist.weights.shape == (2, 4)
    torch.testing.assert_close(dist.weights, report.weights)
    torch.testing.assert_close(dist.mean, report.weights.mean(0))
    assert int(dist.dominant.sum()) == 2
    paths = {
        "routing": report.plot_routing(example=0, path=tmp_path / "routing.png"),
        "batch": report.plot_routing(path=tmp_path / "routing_batch.png"),
        "heatmap": report.plot_interactions("synergy", "sii", row_labels=list("abcd"),
                                            path=tmp_path / "heatmap.png"),
        "rg": report.plot_interactions("redundancy", "redundancy_gap",
                                       path=tmp_path / "rg.png"),
        "text": report.plot_text(["a", "red", "cat", "sat"], path=tmp_path / "text.png"),
        "dist": dist.plot(path=tmp_path / "distribution.png"),
    }
    image = torch.rand(3, 30, 30)
    tokens_2x2 = ExpertExplainer(tiny_layer(2, 3, num_layers=1)).explain(
        *tiny_batch((3, 4), batch=1), methods=("integrated_gradients",), faithfulness=False)
    paths["image"] = tokens_2x2.plot_image(image, "synergy", path=tmp_path / "image.png")
    for name in ("routing", "routing_batch", "heatmap", "rg", "text", "distribution", "image"):
        file = tmp_path / f"{name}.png"
        assert file.is_file() and file.stat().st_size > 1000, name
    import matplotlib.pyplot as plt

    plt.close("all")


def test_dense_and_projected_models_and_method_subsets():
    torch.manual_seed(0)
    dense = DenseFusion(2, H, 3, num_layers=1, num_heads=2).double()
    xs, masks = tiny_batch((3, 2), batch=2)
    report = ExpertExplainer(dense).explain(xs, masks, methods=("attention_gradient", "sii"),
                                            faithfulness=False, n_samples=64)
    assert tuple(report.components) == ("mixture", "dense")
    assert report["dense"].integrated_gradients is None
    torch.testing.assert_close(report["mixture"].sii, report["dense"].sii)
    with pytest.raises(ValueError, match="'integrated_gradients' was not computed"):
        report["dense"].tokens("integrated_gradients")
    projected = ProjectedFusion([torch.nn.Linear(5, H), torch.nn.Linear(7, H)],
                                tiny_layer(2, 3, num_layers=1)).double()
    raw = [torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 2, 7, dtype=torch.float64)]
    rep = ExpertExplainer(projected).explain(raw, components=("synergy",),
                                             methods=("integrated_gradients",), target=1,
                                             faithfulness=False)
    assert tuple(rep.components) == ("synergy",)
    assert rep["synergy"].integrated_gradients[0].shape == (2, 3)
    assert rep.target.tolist() == [1, 1]


def test_explainer_argument_errors():
    layer = tiny_layer(2, 3, num_layers=1)
    xs, masks = tiny_batch((3, 2), batch=2)
    explainer = ExpertExplainer(layer)
    with pytest.raises(ValueError, match="methods must be drawn from"):
        explainer.explain(xs, masks, methods=("lime",))
    with pytest.raises(ValueError, match="components must be drawn from"):
        explainer.explain(xs, masks, components=("unique_9",))
    with pytest.raises(ValueError, match="target must index the 3 outputs"):
        explainer.explain(xs, masks, target=5, methods=("attention_gradient",))
    with pytest.raises(TypeError, match="must be an FLI2MoE"):
        ExpertExplainer(torch.nn.Linear(2, 2))


def test_sii_is_computed_once_per_component(monkeypatch):
    """RG's candidates come from the component's own SII map: RG never runs a second SII
    pass, and its candidates are the k most negative SII pairs of that map."""
    import captum_interactions.attr.redundancy_gap as rg_module

    def no_second_pass(*args, **kwargs):
        raise AssertionError("RedundancyGap estimated SII again")

    monkeypatch.setattr(rg_module, "estimate_sii", no_second_pass)
    layer = tiny_layer(2, 3, num_layers=1)
    xs, masks = tiny_batch((4, 3), batch=2)
    report = ExpertExplainer(layer).explain(xs, masks, methods=("sii", "redundancy_gap"),
                                            components=("synergy",), n_samples=96,
                                            rg_candidates=3, faithfulness=False)
    comp = report["synergy"]
    for b in range(2):
        sii = comp.sii[b, :4, 4:]  # token x patch
        chosen = comp.redundancy_gap[b, :4, 4:] != 0
        worst = torch.zeros_like(chosen).flatten()
        worst[(-sii).flatten().topk(3).indices] = True
        assert (chosen.flatten() <= worst).all()  # non-zero RG only on the 3 candidates
