"""Dataset-level summaries of an explained split: routing statistics by label against their
definition, and the pooled pair masking against one evaluation over the whole split."""

from __future__ import annotations

import pytest
import torch

from fl_i2moe_layer.experiments.datasets import class_names, new_config
from fl_i2moe_layer.experiments.runs import build_model
from fl_i2moe_layer.experiments.split_summary import routing_statistics
from fl_i2moe_layer.explain import ExpertExplainer
from fl_i2moe_layer.training import FusionDataset


def _model_and_data(task: str, labels: torch.Tensor, model: str = "fl_i2moe"):
    config = new_config("planted", hidden_dim=8, model=model)
    config.task = task
    config.num_classes = 1 if task == "binary" else int(labels.shape[-1] if labels.dim() == 2
                                                        else 3)
    config.feature_dims = [6, 5]
    gen = torch.Generator().manual_seed(0)
    n = labels.shape[0]
    data = FusionDataset([torch.randn(n, 4, 6, generator=gen), torch.randn(n, 3, 5,
                                                                           generator=gen)],
                         None, labels)
    return build_model(config).eval(), data


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_routing_by_label_is_the_mean_weight_of_the_examples_with_that_label(task) -> None:
    gen = torch.Generator().manual_seed(1)
    labels = {"multiclass": torch.tensor([0, 2, 2, 1, 0, 2, 1, 0, 0, 2]),
              "binary": torch.tensor([0., 1., 1., 0., 1., 1., 0., 0., 1., 1.]),
              "multilabel": (torch.rand(10, 4, generator=gen) > 0.5).float()}[task]
    model, data = _model_and_data(task, labels)
    stats = routing_statistics(model, data, labels, batch_size=3)
    weights = ExpertExplainer(model).routing_distribution(data).weights.double()
    assert stats is not None and stats["experts"] == list(ExpertExplainer(model).layer
                                                          .expert_names)
    torch.testing.assert_close(torch.tensor(stats["mean"]), weights.mean(0).float(),
                               rtol=0, atol=1e-6)
    assert sum(stats["dominant"]) == 10
    if task == "multiclass":
        onehot = torch.nn.functional.one_hot(labels, 3).bool()
    elif task == "binary":
        onehot = torch.stack([labels == 0, labels == 1], 1)
    else:
        onehot = labels.bool()
    for c in range(onehot.shape[1]):
        rows = weights[onehot[:, c]]
        if rows.shape[0] == 0:
            assert str(c) not in stats["by_label"]
            continue
        assert stats["by_label"][str(c)]["count"] == rows.shape[0]
        torch.testing.assert_close(torch.tensor(stats["by_label"][str(c)]["mean"],
                                                dtype=torch.float64), rows.mean(0))


def test_no_routing_statistics_for_the_dense_baseline() -> None:
    labels = torch.tensor([0, 1, 2, 1])
    model, data = _model_and_data("multiclass", labels, model="dense")
    assert routing_statistics(model, data, labels) is None


def test_class_names() -> None:
    assert class_names("mmhs150k") == ["not hateful", "hateful"]
    assert len(class_names("mmimdb")) == 23
    with pytest.raises(ValueError, match="dataset must be one of"):
        class_names("imagenet")
