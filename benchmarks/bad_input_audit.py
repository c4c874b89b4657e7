"""Bad-input audit: try many wrong calls and classify what each one gets.

    python benchmarks/bad_input_audit.py [--json out.json] [--timeout 60]

Every case is a call a user could plausibly get wrong, and the name that a clear message must
contain (the argument, the file, the keyword). Outcomes:

* ``clear``: an exception (or, for what can only be detected while running, a warning) whose
  message contains that name;
* ``unclear``: an exception or warning that does not name it;
* ``silent``: the call returned without a word;
* ``hang``: still running after ``--timeout`` seconds.

The cases are not the test suite's: the tests check one case per kind of mistake, this list
varies them (other types, other functions, other positions) to see how general the checks are.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import sys
import tempfile
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_interactions import (
    MaskArgumentRemoval,
    RedundancyGap,
    ShapleyInteractionIndex,
    group_mask,
    patch_grid_mask,
)
from captum_interactions.adapters import EmbeddingInputs, token_names
from captum_interactions.metrics import (
    PairMaskingFaithfulness,
    concentration,
    requested_pair_mask,
    topk_masking,
)


@dataclass
class Case:
    category: str
    description: str
    call: Callable[[], Any]
    name: str  # what a clear message names


CASES: list[Case] = []


def case(category: str, description: str, name: str) -> Callable[[Callable[[], Any]], None]:
    def register(call: Callable[[], Any]) -> None:
        CASES.append(Case(category, description, call, name))
    return register


# --------------------------------------------------------------------------- fixtures


class TwoTower(nn.Module):
    def forward(self, text: Tensor, image: Tensor) -> Tensor:
        t, i = text.sum((1, 2)), image.sum((1, 2))
        return torch.stack([t * i, t + i, t - i], dim=1)


class PresenceAware(nn.Module):
    def forward(self, text: Tensor, image: Tensor, presence: Any = None) -> Tensor:
        if presence is not None:
            text = text * presence[0].unsqueeze(-1)
            image = image * presence[1].unsqueeze(-1)
        return text.sum((1, 2)) * image.sum((1, 2))


MODEL = TwoTower()
GEN = torch.Generator().manual_seed(0)
TEXT, IMAGE = torch.randn(2, 4, 3, generator=GEN), torch.randn(2, 3, 3, generator=GEN)
X = (TEXT, IMAGE)
SII = ShapleyInteractionIndex(MODEL)
RG = RedundancyGap(MODEL)
SCORES = torch.rand(2, 7, 7, generator=GEN)

# --------------------------------------------------------------------------- attribution


for value, label in ((100.0, "a float"), ("100", "a string"), (-5, "negative"), (0, "zero"),
                     (True, "a bool"), (np.float64(64.0), "a numpy float")):
    case("attribution arguments", f"SII n_samples {label}", "n_samples")(
        lambda value=value: SII.attribute(X, target=0, n_samples=value))
for option, value in (("perturbations_per_eval", 0), ("perturbations_per_eval", 2.5),
                      ("seed", "1"), ("seed", None), ("paired", "yes"),
                      ("control_variate", "quadratic2"), ("control_variate", None),
                      ("method", "Exact"), ("pairs", "within"), ("pairs", [[0, 5]]),
                      ("return_stderr", 1), ("show_progress", "false")):
    case("attribution arguments", f"SII {option}={value!r}", option)(
        lambda option=option, value=value: SII.attribute(X, target=0, **{option: value}))
for option, value in (("context", "partial"), ("candidates", 0), ("candidates", 3.0),
                      ("sii_n_samples", -1), ("method", 1), ("candidates", 10**6)):
    case("attribution arguments", f"RG {option}={value!r}", option if option != "candidates"
         or value != 10**6 else "candidates")(
        lambda option=option, value=value: RG.attribute(X, target=0, **{option: value}))
for label, kwargs, name in (
        ("target_stderr with an int n_samples", {"target_stderr": 0.1}, "target_stderr"),
        ("n_samples='auto' without target_stderr", {"n_samples": "auto"}, "target_stderr"),
        ("max_samples below the minimum", {"n_samples": "auto", "target_stderr": 0.1,
                                           "max_samples": 5}, "max_samples"),
        ("stop_when='rank'", {"n_samples": "auto", "target_stderr": 0.1,
                              "stop_when": "rank"}, "stop_when"),
        ("top_k=0", {"n_samples": "auto", "target_stderr": 0.1, "stop_when": "topk",
                     "top_k": 0}, "top_k")):
    case("attribution arguments", f"SII adaptive budget: {label}", name)(
        lambda kwargs=kwargs: SII.attribute(X, target=0, **kwargs))
case("attribution arguments", "RG sii= without candidates", "sii")(
    lambda: RG.attribute(X, target=0, sii=SCORES))
case("attribution arguments", "RG sii= of another shape", "sii")(
    lambda: RG.attribute(X, target=0, candidates=2, sii=torch.rand(2, 6, 6)))
case("attribution arguments", "additional_forward_args of another batch size",
     "additional_forward_args[0]")(
    lambda: ShapleyInteractionIndex(lambda t, i, w: MODEL(t, i)[:, 0] * w).attribute(
        X, additional_forward_args=(torch.ones(5),)))
case("attribution arguments", "forward_func not callable", "forward_func")(
    lambda: ShapleyInteractionIndex("model"))

# --------------------------------------------------------------------------- inputs

case("inputs", "inputs as a list of lists", "inputs")(
    lambda: SII.attribute([TEXT.tolist(), IMAGE], target=0))
case("inputs", "a numpy array input", "inputs")(
    lambda: SII.attribute((TEXT.numpy(), IMAGE), target=0))
case("inputs", "batch sizes differ", "batch")(
    lambda: SII.attribute((TEXT, IMAGE[:1]), target=0))
case("inputs", "empty batch", "batch size 0")(
    lambda: SII.attribute((TEXT[:0], IMAGE[:0]), target=0))
case("inputs", "Inf in an input", "inputs[0]")(
    lambda: SII.attribute((TEXT.clone().index_fill_(1, torch.tensor([2]), float("inf")),
                           IMAGE), target=0))
case("inputs", "meta tensors", "meta")(
    lambda: SII.attribute((TEXT.to("meta"), IMAGE.to("meta")), target=0))
case("inputs", "a 1-D input without feature_mask", "inputs[1]")(
    lambda: SII.attribute((TEXT, torch.randn(2)), target=0))
case("inputs", "an empty tuple", "inputs")(lambda: SII.attribute((), target=0))

# --------------------------------------------------------------------------- baselines

case("baselines", "a string baseline", "baselines[0]")(
    lambda: SII.attribute(X, target=0, baselines="mean"))
case("baselines", "a NaN numpy scalar", "baselines[0]")(
    lambda: SII.attribute(X, target=0, baselines=np.float32("nan")))
case("baselines", "a baseline of the wrong width", "baselines[1]")(
    lambda: SII.attribute(X, target=0, baselines=(torch.zeros(3), torch.zeros(5))))
case("baselines", "a list of three baselines for two inputs", "baselines")(
    lambda: SII.attribute(X, target=0, baselines=[0.0, 0.0, 0.0]))
case("baselines", "a complex baseline", "baselines[0]")(
    lambda: SII.attribute(X, target=0, baselines=torch.zeros(3, dtype=torch.complex64)))
case("baselines", "baselines with presence removal", "baselines")(
    lambda: ShapleyInteractionIndex(PresenceAware()).attribute(X, baselines=0.0,
                                                                removal="presence"))
case("baselines", "0.5 on integer token ids", "baselines[0]")(
    lambda: ShapleyInteractionIndex(lambda ids: ids.double().sum(1)).attribute(
        torch.tensor([[4, 7, 9]]), baselines=0.5, pairs="all"))

# --------------------------------------------------------------------------- players

case("players", "float feature mask", "feature_mask[0]")(
    lambda: SII.attribute(X, target=0, feature_mask=(torch.zeros(1, 4, 1),
                                                     torch.ones(1, 3, 1, dtype=torch.long))))
case("players", "feature-mask id -2", "feature_mask[1]")(
    lambda: SII.attribute(X, target=0, feature_mask=(torch.arange(4).view(1, 4, 1),
                                                     -2 * torch.ones(1, 3, 1, dtype=torch.long))))
case("players", "one mask for two inputs", "feature_mask")(
    lambda: SII.attribute(X, target=0, feature_mask=torch.arange(4).view(1, 4, 1)))
case("players", "a player id of 10^6", "feature_mask")(
    lambda: SII.attribute(X, target=0, feature_mask=(torch.tensor([[[0], [1], [2], [10**6]]]),
                                                     torch.tensor([[[4], [5], [6]]]))))
case("players", "a pair naming player 99", "pairs")(
    lambda: SII.attribute(X, target=0, pairs=torch.tensor([[0, 99]])))
case("players", "group_mask of floats", "group_sizes")(lambda: group_mask([1.5, 2.5]))
case("players", "group_mask of a negative size", "group_sizes")(lambda: group_mask([3, -1]))
case("players", "patch_grid_mask of a patch that does not divide", "patch_size")(
    lambda: patch_grid_mask(10, 10, 3))
case("players", "patch_grid_mask of a float height", "height")(
    lambda: patch_grid_mask(8.0, 8, 2))

# --------------------------------------------------------------------------- target

case("target", "target out of range", "target")(lambda: SII.attribute(X, target=7))
case("target", "no target for a 3-output model", "target")(lambda: SII.attribute(X))
case("target", "a float target tensor", "target")(
    lambda: SII.attribute(X, target=torch.tensor([0.0, 1.0])))
case("target", "a target list of the wrong length", "target")(
    lambda: SII.attribute(X, target=[0, 1, 2]))
case("target", "a string target", "target")(lambda: SII.attribute(X, target="logits"))

# --------------------------------------------------------------------------- results, HF

MASK_RULE = MaskArgumentRemoval("attention_mask")
KEYED = ShapleyInteractionIndex(lambda t, i, attention_mask: MODEL(t, i))
RESULT = SII.explain(X, target=0, n_samples=64)
case("results and Hugging Face", "removal tuple of the wrong length", "removal")(
    lambda: KEYED.attribute(X, target=0, removal=(MASK_RULE,)))
case("results and Hugging Face", "'presence' inside a per-input tuple", "removal[0]")(
    lambda: KEYED.attribute(X, target=0, removal=("presence", "baseline")))
case("results and Hugging Face", "a mask rule on a forward without that keyword",
     "attention_mask")(lambda: SII.attribute(X, target=0, removal=(MASK_RULE, "baseline")))
case("results and Hugging Face", "the mask also in additional_forward_args", "attention_mask")(
    lambda: KEYED.attribute(X, target=0, removal=(MASK_RULE, "baseline"),
                            additional_forward_args=(torch.ones(2, 4),)))
case("results and Hugging Face", "a mask of the wrong length", "mask")(
    lambda: KEYED.attribute(X, target=0, removal=(MaskArgumentRemoval(
        "attention_mask", mask=torch.ones(2, 9)), "baseline")))
case("results and Hugging Face", "a baseline for a mask-removed input", "baselines[0]")(
    lambda: KEYED.attribute(X, target=0, removal=(MASK_RULE, "baseline"),
                            baselines=(0.0, 0.0)))
case("results and Hugging Face", "explain with return_stderr", "return_stderr")(
    lambda: SII.explain(X, target=0, return_stderr=True))
case("results and Hugging Face", "player_names naming player 40", "player_names")(
    lambda: SII.explain(X, target=0, n_samples=64, player_names={40: "x"}))
case("results and Hugging Face", "top_pairs(k=0)", "k")(lambda: RESULT.top_pairs(0))
case("results and Hugging Face", "a heatmap of player 99", "player")(
    lambda: RESULT.pair_map(99))
case("results and Hugging Face", "pair masking direction='down'", "direction")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(RESULT, direction="down"))
case("results and Hugging Face", "pair masking of inputs without scores", "scores")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X))
case("results and Hugging Face", "token_names of mismatched lengths", "tokens[0]")(
    lambda: token_names([["a"], ["b"]], torch.zeros(2, 3, dtype=torch.long)))
case("results and Hugging Face", "EmbeddingInputs on a non-module", "layer")(
    lambda: EmbeddingInputs("embeddings", torch.zeros(2, 3, dtype=torch.long)))
case("results and Hugging Face", "EmbeddingInputs of float ids", "input_ids")(
    lambda: EmbeddingInputs(nn.Embedding(5, 2), torch.zeros(2, 3)))

# --------------------------------------------------------------------------- model


def complex_model(text: Tensor, image: Tensor) -> Tensor:
    return torch.complex(text.sum((1, 2)), image.sum((1, 2)))


case("model", "complex output", "complex")(
    lambda: ShapleyInteractionIndex(complex_model).attribute(X))
case("model", "dict output without logits", "output")(
    lambda: ShapleyInteractionIndex(lambda t, i: {"scores": MODEL(t, i)}).attribute(X, target=0))
case("model", "output= naming a missing key", "output")(
    lambda: ShapleyInteractionIndex(lambda t, i: {"logits": MODEL(t, i)}).attribute(
        X, target=0, output="logit"))
case("model", "a 4-D image input without feature_mask", "feature_mask")(
    lambda: ShapleyInteractionIndex(lambda t, i: t.sum((1, 2)) + i.mean((1, 2, 3))).attribute(
        (TEXT, torch.rand(2, 3, 8, 8))))
case("model", "output with one row too few", "forward_func")(
    lambda: ShapleyInteractionIndex(lambda t, i: MODEL(t, i)[1:]).attribute(X, target=0))
case("model", "NaN output for some coalitions", "NaN")(
    lambda: ShapleyInteractionIndex(lambda t, i: MODEL(t, i) / (t.abs().sum((1, 2),
                                                                           keepdim=False)
                                                                [:, None] * 0)).attribute(
        X, target=0))
case("model", "no presence keyword", "presence")(
    lambda: ShapleyInteractionIndex(MODEL).attribute(X, target=0, removal="presence"))
case("model", "presence through **kwargs, ignored", "presence")(
    lambda: ShapleyInteractionIndex(lambda t, i, **kw: t.sum((1, 2)) * i.sum((1, 2)))
    .attribute(X, removal="presence"))
case("model", "a model whose output dtype changes", "float64")(
    lambda: ShapleyInteractionIndex(_Switching()).attribute(X, target=0,
                                                            perturbations_per_eval=4))


class _Switching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, text: Tensor, image: Tensor) -> Tensor:
        self.calls += 1
        out = MODEL(text, image)
        return out if self.calls == 1 else out.double()


# --------------------------------------------------------------------------- cost

case("cost", "SII n_samples 10^12", "n_samples")(
    lambda: SII.attribute(X, target=0, n_samples=10**12))
case("cost", "RG 10^9 rows at 7 players", "")(  # must finish: exact enumeration
    lambda: _expect_fast(lambda: RG.attribute(X, target=0, n_samples=10**9)))
case("cost", "pair masking with 10^8 random repeats", "n_random")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, budgets=(1,),
                                                    n_random=10**8))
case("cost", "top-K masking with 10^8 random repeats", "n_random")(
    lambda: topk_masking(MODEL, X, torch.rand(2, 7), target=0, n_random=10**8))
case("cost", "exact SII at 30 players", "method='exact'")(
    lambda: ShapleyInteractionIndex(lambda x: x.sum((1, 2))).attribute(
        torch.ones(1, 30, 1), pairs="all", method="exact"))


def _expect_fast(call: Callable[[], Any]) -> None:
    """A request that must complete (quickly) with a result: raises if it does not."""
    call()
    raise _Completed()


class _Completed(Exception):
    """Raised by cases whose correct outcome is to finish normally."""


# --------------------------------------------------------------------------- metrics

case("metrics", "pair masking scores of the wrong shape", "scores")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, torch.rand(2, 5, 5), target=0))
case("metrics", "pair masking budget beyond the pairs", "budgets")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, budgets=(13,)))
case("metrics", "pair masking budget as a string", "budgets")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, budgets="1,2"))
case("metrics", "pair masking alternative", "alternative")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, alternative="more"))
case("metrics", "pair masking test", "test")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, test="t-test"))
case("metrics", "pair masking descending='no'", "descending")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, descending="no"))
case("metrics", "pair masking NaN scores", "scores")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES * float("nan"), target=0))
case("metrics", "max_rows_per_eval below the batch", "max_rows_per_eval")(
    lambda: PairMaskingFaithfulness(MODEL).evaluate(X, SCORES, target=0, max_rows_per_eval=1))
case("metrics", "top-K of 0 percent", "ks")(
    lambda: topk_masking(MODEL, X, torch.rand(2, 7), target=0, ks=(0,)))
case("metrics", "top-K per='input'", "per")(
    lambda: topk_masking(MODEL, X, torch.rand(2, 7), target=0, per="input"))
case("metrics", "top-K protected id 50", "protected")(
    lambda: topk_masking(MODEL, X, torch.rand(2, 7), target=0, protected=[50]))
case("metrics", "top-K attributions of the wrong shape", "attributions")(
    lambda: topk_masking(MODEL, X, torch.rand(2, 6), target=0))
case("metrics", "concentration of a bool tensor", "values")(
    lambda: concentration(torch.ones(2, 7, dtype=torch.bool)))
case("metrics", "concentration top_fraction 2", "top_fraction")(
    lambda: concentration(torch.rand(2, 7), top_fraction=2.0))
case("metrics", "requested_pair_mask pairs='any'", "pairs")(
    lambda: requested_pair_mask(X, pairs="any"))

# --------------------------------------------------------------------------- the layer


def _layer(**kwargs: Any) -> Any:
    from fl_i2moe_layer import FLI2MoE

    return FLI2MoE(2, 8, 3, **{"num_layers": 1, "num_heads": 2, **kwargs})


LAYER_INPUTS = [torch.randn(2, 4, 8, generator=GEN), torch.randn(2, 3, 8, generator=GEN)]

for option, value in (("dropout", -0.1), ("dropout", float("inf")), ("temperature", -1.0),
                      ("interaction_weight", float("nan")), ("num_heads", 3),
                      ("num_layers", 0), ("max_len", 2.5), ("task", "regression"),
                      ("replacement", "shuffle"), ("ffn_dim", -4)):
    case("layer", f"FLI2MoE {option}={value!r}", option)(
        lambda option=option, value=value: _layer(**{option: value}))
case("layer", "layer inputs in float64", "float64")(
    lambda: _layer()([x.double() for x in LAYER_INPUTS]))
case("layer", "layer inputs of hidden size 9", "hidden")(
    lambda: _layer()([torch.randn(2, 4, 9), LAYER_INPUTS[1]]))
case("layer", "NaN in a real token", "inputs[0]")(
    lambda: _layer()([LAYER_INPUTS[0].clone().fill_(float("nan")), LAYER_INPUTS[1]]))
case("layer", "mask of the wrong length", "masks[1]")(
    lambda: _layer()(LAYER_INPUTS, [torch.ones(2, 4, dtype=torch.bool),
                                    torch.ones(2, 5, dtype=torch.bool)]))
case("layer", "labels out of range", "labels")(
    lambda: _layer().loss(_layer()(LAYER_INPUTS), torch.tensor([0, 7])))
case("layer", "one modality only", "modalities")(
    lambda: _layer()([LAYER_INPUTS[0]]))

# --------------------------------------------------------------------------- trainer


def _trainer(**kwargs: Any) -> Any:
    from fl_i2moe_layer import Trainer

    return Trainer(_layer(), **{"progress": False, **kwargs})


for option, value in (("lr", 0.0), ("lr", float("nan")), ("batch_size", 0),
                      ("max_epochs", 2.0), ("patience", -1), ("grad_clip", 0.0),
                      ("weight_decay", float("inf")), ("monitor", "f1"), ("seed", -1.5),
                      ("progress", "yes")):
    case("trainer", f"Trainer {option}={value!r}", option)(
        lambda option=option, value=value: _trainer(**{option: value}))


def _fit_empty() -> None:
    from fl_i2moe_layer import FusionDataset

    data = FusionDataset([x[:0] for x in LAYER_INPUTS], None, torch.zeros(0, dtype=torch.long))
    _trainer().fit(data)


case("trainer", "an empty training set", "train_data")(_fit_empty)
case("trainer", "labels as a list", "labels")(
    lambda: __import__("fl_i2moe_layer", fromlist=["x"]).FusionDataset(LAYER_INPUTS, None,
                                                                       [0, 1]))
case("trainer", "a feature cache rooted at a file", "FeatureCache root")(
    lambda: __import__("fl_i2moe_layer", fromlist=["x"]).FeatureCache(__file__))
case("trainer", "an encoder of feature width 0", "feature_dim")(
    lambda: __import__("fl_i2moe_layer", fromlist=["x"]).ImageEncoder(nn.Identity(), 0, 4))
case("trainer", "a file as checkpoint_dir", "checkpoint_dir")(
    lambda: _trainer(checkpoint_dir=__file__))

# --------------------------------------------------------------------------- files


def _damaged_checkpoint(edit: Callable[[bytes], bytes]) -> None:
    from fl_i2moe_layer.training import load_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / "model.safetensors", _layer())
        path.write_bytes(edit(path.read_bytes()))
        load_checkpoint(path, _layer())


def _flip(raw: bytes) -> bytes:
    data = bytearray(raw)
    data[len(data) - 9] ^= 0x40
    return bytes(data)


case("files", "checkpoint with one flipped bit", "model.safetensors")(
    lambda: _damaged_checkpoint(_flip))
case("files", "truncated checkpoint", "model.safetensors")(
    lambda: _damaged_checkpoint(lambda raw: raw[: len(raw) // 3]))
case("files", "empty checkpoint file", "model.safetensors")(
    lambda: _damaged_checkpoint(lambda raw: b""))
case("files", "a JSON file as checkpoint", "model.safetensors")(
    lambda: _damaged_checkpoint(lambda raw: b'{"weights": []}'))
case("files", "missing checkpoint", "checkpoint")(
    lambda: __import__("fl_i2moe_layer.training", fromlist=["x"]).load_checkpoint(
        "/nonexistent/best.safetensors", _layer()))


def _dataset_tree(kind: str, edit: Callable[[Path], None], split: str = "train",
                  **options: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fl_fixtures import enrico_tree, mmhs150k_tree, mmimdb_tree

    from fl_i2moe_layer.data import load_enrico, load_mmhs150k, load_mmimdb

    trees = {"mmimdb": (mmimdb_tree, load_mmimdb), "enrico": (enrico_tree, load_enrico),
             "mmhs150k": (mmhs150k_tree, load_mmhs150k)}
    build, load = trees[kind]
    with tempfile.TemporaryDirectory() as folder:
        root = build(Path(folder) / kind)
        edit(root)
        load(root, split, **options)


case("datasets", "MM-IMDb split.json truncated", "split.json")(
    lambda: _dataset_tree("mmimdb", lambda r: (r / "split.json").write_text('{"train": ["0')))
case("datasets", "MMHS150K GT file truncated", "MMHS150K_GT.json")(
    lambda: _dataset_tree("mmhs150k", lambda r: (r / "MMHS150K_GT.json").write_text("{")))
case("datasets", "ENRICO CSV without screen_id", "screen_id")(
    lambda: _dataset_tree("enrico", lambda r: (r / "design_topics.csv").write_text(
        "id,topic\n1,login\n")))
case("datasets", "MM-IMDb data_dir missing", "data_dir")(
    lambda: __import__("fl_i2moe_layer.data", fromlist=["x"]).load_mmimdb("/nonexistent",
                                                                            "train"))
case("datasets", "MM-IMDb split 'validation'", "split")(
    lambda: _dataset_tree("mmimdb", lambda r: None, split="validation"))
case("datasets", "MMHS150K target 'hate'", "target")(
    lambda: _dataset_tree("mmhs150k", lambda r: None, target="hate"))

# --------------------------------------------------------------------------- explainer


def _explainer(**kwargs: Any) -> Any:
    from fl_i2moe_layer import ExpertExplainer

    layer = _layer().eval()
    return ExpertExplainer(layer).explain(LAYER_INPUTS, **{"n_samples": 64,
                                                           "faithfulness": False, **kwargs})


case("explainer", "methods='sii,rg'", "methods")(lambda: _explainer(methods="sii,rg"))
case("explainer", "components=['synergy', 'shared']", "components")(
    lambda: _explainer(components=["synergy", "shared"]))
case("explainer", "target='max'", "target")(lambda: _explainer(target="max"))
case("explainer", "faithfulness='off'", "faithfulness")(
    lambda: _explainer(faithfulness="off"))
case("explainer", "rg_candidates=0", "rg_candidates")(lambda: _explainer(rg_candidates=0))
case("explainer", "ig_steps=0", "ig_steps")(
    lambda: __import__("fl_i2moe_layer", fromlist=["x"]).ExpertExplainer(_layer(), ig_steps=0))
case("explainer", "a report example out of range", "example")(
    lambda: _explainer(methods=("sii",), components=("mixture",)).cross_map(example=5))

# --------------------------------------------------------------------------- CLI


def _cli(*argv: str) -> None:
    from fl_i2moe_layer.cli import main

    code = main(list(argv))
    if code:
        raise SystemExit(code)


for argv, name in ((("train", "--epochs", "0"), "--epochs"),
                   (("train", "--lr", "-1"), "--lr"),
                   (("train", "--hidden-dim", "x"), "--hidden-dim"),
                   (("train", "--dataset", "imdb"), "--dataset"),
                   (("train", "--dataset", "mmimdb", "--n", "10", "--data-dir", "/tmp"), "--n"),
                   (("train", "--split-limit", "5"), "--split-limit"),
                   (("evaluate", "--checkpoint", "/tmp", "--n-faithfulness", "0"),
                    "--n-faithfulness"),
                   (("explain", "--checkpoint", "/tmp", "--index", "a"), "--index"),
                   (("explain",), "--checkpoint"),
                   (("train", "--out", __file__), "--out")):
    case("CLI", " ".join(argv), name)(lambda argv=argv: _cli(*argv))


# --------------------------------------------------------------------------- runner


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def run_case(item: Case, timeout: int) -> tuple[str, str]:
    """The outcome of one case and the message it got."""
    err = io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            item.call()
    except _Completed:
        return "clear", "finished normally, as it should"
    except _Timeout:
        return "hang", f"still running after {timeout} s"
    except SystemExit as stop:
        message = err.getvalue().strip().splitlines()[-1:] or [f"exit {stop.code}"]
        text = message[0]
        ok = stop.code not in (0, None) and (item.name.lower() in text.lower())
        return ("clear" if ok else "unclear"), text
    except Exception as error:
        text = f"{type(error).__name__}: {error}"
        return ("clear" if item.name.lower() in text.lower() else "unclear"), text
    finally:
        signal.alarm(0)
    relevant = [str(w.message) for w in caught
                if issubclass(w.category, RuntimeWarning | UserWarning)]
    if relevant:
        text = relevant[0]
        return ("clear" if item.name.lower() in text.lower() else "unclear"), text
    return "silent", "returned without an error or a warning"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write every outcome here")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per case")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for item in CASES:
        outcome, message = run_case(item, args.timeout)
        rows.append({"category": item.category, "case": item.description,
                     "outcome": outcome, "message": message[:300]})
        if args.verbose or outcome != "clear":
            print(f"[{outcome:7s}] {item.category}: {item.description}\n          {message[:200]}")
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_category[row["category"]][row["outcome"]] += 1
    total: Counter[str] = Counter(row["outcome"] for row in rows)
    print(f"\n{'category':24s} {'cases':>5s} {'clear':>5s} {'unclear':>7s} {'silent':>6s} "
          f"{'hang':>4s}")
    for category, counts in by_category.items():
        print(f"{category:24s} {sum(counts.values()):5d} {counts['clear']:5d} "
              f"{counts['unclear']:7d} {counts['silent']:6d} {counts['hang']:4d}")
    n = sum(total.values())
    print(f"{'all':24s} {n:5d} {total['clear']:5d} {total['unclear']:7d} {total['silent']:6d} "
          f"{total['hang']:4d}   clear: {100 * total['clear'] / n:.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
