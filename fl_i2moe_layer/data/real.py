"""Train, evaluate and explain on the real datasets (MM-IMDb, ENRICO, MMHS150K): the glue
behind ``fl-i2moe train|evaluate|explain --dataset ... --data-dir ...``.

Items from the loaders are encoded once by the frozen encoders (all-MiniLM-L6-v2 for text,
EfficientNet-Lite0 for images) through a :class:`~fl_i2moe_layer.encoders.FeatureCache`; a
``ProjectedFusion`` (trainable projections + FL-I2MoE or the dense baseline) is trained on the
backbone features with the :class:`~fl_i2moe_layer.training.Trainer`. A checkpoint folder
holds ``best.safetensors`` and ``run.json`` (dataset, task, encoders, model sizes), enough to
rebuild the model and the data for ``evaluate`` and ``explain``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fl_i2moe_layer.data.common import Item, Skips, load_image, logger
from fl_i2moe_layer.training.data import FusionDataset

RUN_FILE = "run.json"
RUN_FORMAT = "fl_i2moe_layer.run/1"
TEXT_ENCODER = "all-MiniLM-L6-v2"
IMAGE_ENCODER = "efficientnet-lite0"


@dataclass(frozen=True)
class DatasetSpec:
    """How a dataset becomes a fusion task.

    Attributes:
        modalities: (name, kind) in model order; kind is ``"text"`` or ``"image"``.
        task / num_classes: the fusion head. splits: (train, validation, test) names.
    """

    modalities: tuple[tuple[str, str], ...]
    task: str
    num_classes: int
    splits: tuple[str, str, str]


SPECS = {
    "mmimdb": DatasetSpec((("plot", "text"), ("poster", "image")), "multilabel", 23,
                          ("train", "dev", "test")),
    "enrico": DatasetSpec((("screenshot", "image"), ("wireframe", "image")), "multiclass", 20,
                          ("train", "val", "test")),
    # MMHS150K's OCR text (when present) is appended to the tweet: one text modality.
    "mmhs150k": DatasetSpec((("tweet", "text"), ("image", "image")), "binary", 1,
                            ("train", "val", "test")),
}


@dataclass
class RunConfig:
    """What ``run.json`` records: enough to rebuild the model and re-encode the data."""

    dataset: str
    model: str = "fl_i2moe"
    hidden_dim: int = 64
    num_layers: int = 1
    num_heads: int = 4
    max_length: int = 64
    image_size: int = 224
    seed: int = 0
    task: str = ""
    num_classes: int = 0
    modalities: list[list[str]] = field(default_factory=list)
    encoders: dict[str, str] = field(default_factory=dict)
    feature_dims: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    format: str = RUN_FORMAT

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RunConfig:
        path = Path(folder) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing: pass the folder written by "
                                    "`fl-i2moe train --dataset ... --out DIR`.")
        values = json.loads(path.read_text())
        if values.get("format") != RUN_FORMAT:
            raise ValueError(f"{str(path)!r} is not an fl_i2moe_layer run description.")
        return cls(**values)


def run_folder(checkpoint: str | os.PathLike[str]) -> Path | None:
    """The run folder of ``checkpoint`` (the folder or its ``best.safetensors``) if it holds a
    ``run.json`` (a real-dataset run), else None (a planted run)."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / RUN_FILE).is_file() else None


def load_items(dataset: str, data_dir: str | os.PathLike[str], split: str, *,
               limit: int | None = None, skips: Skips | None = None) -> list[Item]:
    """Items of one split with the dataset's loader (the first ``limit`` if given)."""
    from fl_i2moe_layer.data.enrico import load_enrico
    from fl_i2moe_layer.data.mmhs150k import load_mmhs150k
    from fl_i2moe_layer.data.mmimdb import load_mmimdb

    loaders: dict[str, Callable[..., list[Item]]] = {
        "mmimdb": load_mmimdb, "enrico": load_enrico, "mmhs150k": load_mmhs150k}
    if dataset not in loaders:
        raise ValueError(f"dataset must be one of {tuple(loaders)}, got {dataset!r}.")
    items = loaders[dataset](data_dir, split, skips=skips)
    return items[:limit] if limit is not None else items


def item_text(item: Item, name: str) -> str:
    """The text of modality ``name`` (MMHS150K: tweet followed by the image's OCR text)."""
    text = item.texts.get(name, "")
    if name == "tweet" and item.texts.get("ocr"):
        text = f"{text} {item.texts['ocr']}"
    return text


def item_labels(items: list[Item], task: str) -> Tensor:
    labels = [it.label for it in items]
    if task == "multiclass":
        return torch.tensor(labels, dtype=torch.long)
    return torch.tensor(labels, dtype=torch.float)


class Encoders:
    """The frozen backbones of a run, built lazily (MiniLM only if a modality is text)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._text: Any = None
        self._image: Any = None

    def get(self, kind: str) -> Any:
        from fl_i2moe_layer.encoders import ImageEncoder, TextEncoder

        if kind == "text":
            if self._text is None:
                self._text = TextEncoder.minilm(1, max_length=self.config.max_length)
            return self._text
        if self._image is None:
            self._image = ImageEncoder.efficientnet_lite0(1)
        return self._image


def encode_items(items: list[Item], config: RunConfig, encoders: Encoders, *,
                 cache_dir: str | os.PathLike[str] | None = None,
                 show_progress: bool = False) -> FusionDataset:
    """Backbone features of every modality (through the feature cache) and the labels."""
    from fl_i2moe_layer.data.planted import default_cache_dir
    from fl_i2moe_layer.encoders import FeatureCache

    if not items:
        raise ValueError(f"no usable {config.dataset} items in this split (see the skip "
                         "warnings).")
    cache = FeatureCache(cache_dir if cache_dir is not None else default_cache_dir())
    inputs, masks = [], []
    for name, kind in config.modalities:
        encoder = encoders.get(kind)
        if kind == "text":
            data: Any = [item_text(it, name) for it in items]
        else:
            data = torch.stack([load_image(it.images[name], size=config.image_size)
                                for it in items])
        feats = cache.load_or_encode(encoder, data, show_progress=show_progress)
        inputs.append(feats.features)
        masks.append(feats.mask)
    return FusionDataset(inputs, masks, item_labels(items, config.task))


def build_real_model(config: RunConfig) -> nn.Module:
    """A ``ProjectedFusion`` (Linear + LayerNorm per modality, then FL-I2MoE or dense)."""
    from fl_i2moe_layer.model import DenseFusion, FLI2MoE
    from fl_i2moe_layer.model.projected import ProjectedFusion

    torch.manual_seed(config.seed)
    h = config.hidden_dim
    projections = [nn.Sequential(nn.Linear(d, h), nn.LayerNorm(h)) for d in config.feature_dims]
    kinds = {"fl_i2moe": FLI2MoE, "dense": DenseFusion}
    if config.model not in kinds:
        raise ValueError(f"model must be 'fl_i2moe' or 'dense', got {config.model!r}.")
    fusion = kinds[config.model](len(config.feature_dims), h, config.num_classes,
                                 task=config.task, num_layers=config.num_layers,
                                 num_heads=config.num_heads, dropout=0.0)
    return ProjectedFusion(projections, fusion)


def new_config(dataset: str, **options: Any) -> RunConfig:
    """A RunConfig for ``dataset`` with its task, modalities and encoders filled in."""
    spec = SPECS[dataset]
    config = RunConfig(dataset=dataset, **options)
    config.task, config.num_classes = spec.task, spec.num_classes
    config.modalities = [list(m) for m in spec.modalities]
    config.encoders = {"text": TEXT_ENCODER, "image": IMAGE_ENCODER}
    return config


def train_real(dataset: str, data_dir: str | os.PathLike[str], out: str | os.PathLike[str], *,
               epochs: int = 20, split_limit: int | None = None, lr: float = 1e-3,
               batch_size: int = 32, patience: int = 5,
               cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
               **options: Any) -> RunConfig:
    """Encode the train / validation splits, fit, save ``best.safetensors`` and ``run.json``
    in ``out``; return the run config with the validation metrics."""
    from fl_i2moe_layer.training import Trainer

    config = new_config(dataset, **options)
    spec = SPECS[dataset]
    encoders = Encoders(config)
    skips = Skips()
    train_items = load_items(dataset, data_dir, spec.splits[0], limit=split_limit, skips=skips)
    val_items = load_items(dataset, data_dir, spec.splits[1], limit=split_limit, skips=skips)
    if skips.total:
        logger.warning("%s: skipped %d ids: %s", dataset, skips.total, dict(skips.counts))
    train = encode_items(train_items, config, encoders, cache_dir=cache_dir,
                         show_progress=progress)
    val = encode_items(val_items, config, encoders, cache_dir=cache_dir,
                       show_progress=progress) if val_items else None
    config.feature_dims = [int(x.shape[-1]) for x in train.inputs]
    model = build_real_model(config)
    trainer = Trainer(model, lr=lr, batch_size=batch_size, max_epochs=epochs,
                      patience=patience, seed=config.seed, progress=progress,
                      checkpoint_dir=out)
    trainer.fit(train, val)
    metrics = trainer.evaluate(val if val is not None else train)
    config.metrics = {k: float(v) for k, v in metrics.items()}
    config.save(out)
    return config


def load_run(folder: str | os.PathLike[str]) -> tuple[RunConfig, nn.Module]:
    """The run config and the model with its best weights."""
    from fl_i2moe_layer.training.checkpoints import load_checkpoint
    from fl_i2moe_layer.training.trainer import BEST

    config = RunConfig.load(folder)
    model = build_real_model(config)
    load_checkpoint(Path(folder) / BEST, model)
    model.eval()
    return config, model


def split_data(config: RunConfig, data_dir: str | os.PathLike[str], split: str, *,
               limit: int | None = None, cache_dir: str | os.PathLike[str] | None = None,
               encoders: Encoders | None = None) -> tuple[list[Item], FusionDataset]:
    items = load_items(config.dataset, data_dir, split, limit=limit)
    data = encode_items(items, config, encoders or Encoders(config), cache_dir=cache_dir)
    return items, data


def predicted_target(model: nn.Module, data: FusionDataset, task: str) -> Tensor:
    """The class each example's explanation targets: argmax (multiclass / multilabel), 0
    (binary: the single logit)."""
    with torch.no_grad():
        logits = model(data.inputs, data.masks).logits
    if task == "binary":
        return torch.zeros(logits.shape[0], dtype=torch.long)
    return logits.argmax(1)


def subset(data: FusionDataset, index: list[int]) -> FusionDataset:
    idx = torch.as_tensor(index, dtype=torch.long)
    return FusionDataset([x[idx] for x in data.inputs], [m[idx] for m in data.masks],
                         data.labels[idx])


def _budget(data: FusionDataset, n_samples: int) -> int:
    """``n_samples`` raised to the sampling estimator's minimum (3 F) for F players, with a
    logged warning so that the change is never silent."""
    from captum_interactions.estimators.size_plan import min_sampling_budget

    needed = min_sampling_budget(sum(int(x.shape[1]) for x in data.inputs))
    if n_samples < needed:
        logger.warning("n_samples=%d is below the SII estimator's minimum for these inputs; "
                       "using %d (3 rows per token).", n_samples, needed)
    return max(n_samples, needed)

    return max(n_samples, min_sampling_budget(sum(int(x.shape[1]) for x in data.inputs)))


def sii_pair_masking(model: nn.Module, data: FusionDataset, task: str, *,
                     n_samples: int = 256, budgets: tuple[int, ...] = (1, 2, 4, 8),
                     n_random: int = 10, seed: int = 0) -> Any:
    """Rank every pair of the mixture by SII and compare ranked with random pair removal
    (presence masks) on the projected tokens: a ``PairMaskingResult``."""
    from captum_interactions.metrics import PairMaskingFaithfulness
    from fl_i2moe_layer.explain import ExpertExplainer

    target = predicted_target(model, data, task)
    report = ExpertExplainer(model).explain(
        data.inputs, data.masks, target=target, methods=("sii",), components=("mixture",),
        n_samples=_budget(data, n_samples), faithfulness=False, seed=seed)
    scores = report["mixture"].pairs("sii").float().nan_to_num(nan=-1e9, neginf=-1e9,
                                                               posinf=1e9)
    with torch.no_grad():
        xs = tuple(p(x) for p, x in zip(model.projections, data.inputs, strict=True))
    forward = model.fusion.as_forward_func("mixture")
    with torch.no_grad():
        return PairMaskingFaithfulness(forward).evaluate(
            xs, scores, budgets=budgets, n_random=n_random, target=target,
            additional_forward_args=tuple(data.masks), removal="presence", seed=seed)


def token_labels(config: RunConfig, item: Item, encoders: Encoders, modality: int,
                 length: int) -> list[str]:
    """Readable labels of one modality's tokens (word pieces, or patch ``r,c``)."""
    name, kind = config.modalities[modality]
    if kind == "text":
        tok = encoders.get("text").tokenizer
        ids = tok(item_text(item, name), truncation=True, max_length=config.max_length,
                  padding="max_length")["input_ids"]
        return [str(t) for t in tok.convert_ids_to_tokens(ids)][:length]
    side = max(1, round(length ** 0.5))
    return [f"{name[:4]} {k // side},{k % side}" for k in range(length)]


def explain_real(config: RunConfig, model: nn.Module, items: list[Item], data: FusionDataset,
                 indices: list[int], out: str | os.PathLike[str], *, encoders: Encoders,
                 n_samples: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """SII and RG maps of the mixture for ``indices``: one PNG per (example, method) and a
    summary (id, label, prediction target, routing weights) per example."""
    import matplotlib.pyplot as plt

    from fl_i2moe_layer.explain import ExpertExplainer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i in indices:
        if not 0 <= i < len(items):
            raise IndexError(f"index {i} is outside the split ({len(items)} examples).")
    sub = subset(data, indices)
    target = predicted_target(model, sub, config.task)
    report = ExpertExplainer(model).explain(
        sub.inputs, sub.masks, target=target, methods=("sii", "redundancy_gap"),
        components=("mixture",), n_samples=_budget(sub, n_samples), faithfulness=False,
        seed=seed)
    summaries = []
    for b, i in enumerate(indices):
        rows = token_labels(config, items[i], encoders, 0, sub.inputs[0].shape[1])
        cols = token_labels(config, items[i], encoders, 1, sub.inputs[1].shape[1])
        files = []
        for method in ("sii", "redundancy_gap"):
            fig = report.plot_interactions("mixture", method, example=b, row_labels=rows,
                                           col_labels=cols)
            path = out / f"example{i}_{method}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            files.append(str(path))
        weights = report.weights[b].tolist() if report.weights is not None else []
        summaries.append({"index": i, "id": items[i].id, "label": items[i].label,
                          "target": int(target[b]),
                          "routing": dict(zip(report.expert_names, weights, strict=False)),
                          "figures": files})
    (out / "explanations.json").write_text(json.dumps(summaries, indent=2) + "\n")
    return summaries
