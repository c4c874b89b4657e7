"""Every dataset as one entry: the planted default and MM-IMDb, ENRICO and MMHS150K.

An entry says how the dataset becomes a fusion task (modalities, task, classes, split names)
and which training options suit it; :func:`load_split` turns any split of any entry into the
same :class:`Split` (backbone features, example ids, readable token labels and, for planted
data, the ground truth), so that training, evaluation and explanation take one path.

Real items are encoded once by the frozen encoders (all-MiniLM-L6-v2 for text,
EfficientNet-Lite0 for images) into a :class:`~fl_i2moe_layer.encoders.FeatureStore`: keyed
per item (image file path, size and mtime; text content), encoded in chunks (only one chunk's
images decoded at a time) and read back lazily, so memory does not grow with the split and a
split killed while encoding resumes with the chunks already written.
Planted data is built (and cached) by :func:`~fl_i2moe_layer.data.planted.load_planted`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fl_i2moe_layer.data.common import Item, Skips, load_image, logger
from fl_i2moe_layer.data.planted import PlantedData, default_cache_dir, load_planted
from fl_i2moe_layer.experiments.config import RunConfig
from fl_i2moe_layer.training.data import SplitData, StreamedFusionDataset

#: Items per feature-store chunk (the memory of encoding grows with it, not with the split).
CHUNK_SIZE = 256

TEXT_ENCODER = "all-MiniLM-L6-v2"
IMAGE_ENCODER = "efficientnet-lite0"
#: Share of the planted examples in the training split; the rest is the test split, which
#: also serves as the validation split (early stopping), as in the original demo.
PLANTED_TRAIN_SHARE = 0.7


@dataclass(frozen=True)
class DatasetEntry:
    """How a dataset becomes a fusion task.

    Attributes:
        name: the ``--dataset`` name.
        modalities: (name, kind) in model order; kind is ``"text"`` or ``"image"``.
        task / num_classes: the fusion head.
        splits: (train, validation, test) split names.
        defaults: :class:`RunConfig` fields that suit this dataset.
        download: where to get the data (None: built in).
    """

    name: str
    modalities: tuple[tuple[str, str], ...]
    task: str
    num_classes: int
    splits: tuple[str, str, str]
    defaults: dict[str, Any] = field(default_factory=dict)
    download: str | None = None


DATASETS: dict[str, DatasetEntry] = {
    "planted": DatasetEntry(
        "planted", (("text", "text"), ("image", "image")), "binary", 1,
        ("train", "test", "test"),
        defaults={"n": 800, "hidden_dim": 32, "lr": 3e-3, "patience": 10, "monitor": "loss",
                  "feature_dims": [384, 1280]},  # MiniLM tokens, EfficientNet-Lite0 patches
    ),
    "mmimdb": DatasetEntry(
        "mmimdb", (("plot", "text"), ("poster", "image")), "multilabel", 23,
        ("train", "dev", "test"),
        download="MM-IMDb: download mmimdb.tar.gz (raw tree: split.json + dataset/<id>.json "
                 "and <id>.jpeg) from http://lisi1.unal.edu.co/mmimdb/ and unpack it so that "
                 "{dir}/split.json exists.",
    ),
    "enrico": DatasetEntry(
        "enrico", (("screenshot", "image"), ("wireframe", "image")), "multiclass", 20,
        ("train", "val", "test"),
        download="ENRICO: download design_topics.csv, screenshots/ and wireframes/ from "
                 "https://github.com/luileito/enrico into {dir}.",
    ),
    # MMHS150K's OCR text (when present) is appended to the tweet: one text modality.
    "mmhs150k": DatasetEntry(
        "mmhs150k", (("tweet", "text"), ("image", "image")), "binary", 1,
        ("train", "val", "test"),
        download="MMHS150K: download MMHS150K.zip from "
                 "https://gombru.github.io/2019/10/09/MMHS/ and unpack it so that "
                 "{dir}/MMHS150K_GT.json exists.",
    ),
}


def class_names(dataset: str) -> list[str]:
    """Readable names of the dataset's label values (binary tasks: the two outcomes)."""
    from fl_i2moe_layer.data.enrico import TOPICS
    from fl_i2moe_layer.data.mmimdb import GENRES

    names = {"planted": ["negative", "positive"], "mmimdb": list(GENRES),
             "enrico": list(TOPICS), "mmhs150k": ["not hateful", "hateful"]}
    dataset_entry(dataset)
    return names[dataset]


def dataset_entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {name!r}.")
    return DATASETS[name]


def new_config(dataset: str, **options: Any) -> RunConfig:
    """A :class:`RunConfig` for ``dataset``: its defaults, then ``options`` (``None`` values
    keep the default), with task, modalities and encoders filled in.

    Examples::

        >>> new_config("planted", epochs=10).hidden_dim
        32
    """
    entry = dataset_entry(dataset)
    given = {k: v for k, v in options.items() if v is not None}
    defaults = {k: list(v) if isinstance(v, list) else v for k, v in entry.defaults.items()}
    config = RunConfig(dataset=dataset, **{**defaults, **given})
    config.task, config.num_classes = entry.task, entry.num_classes
    config.modalities = [list(m) for m in entry.modalities]
    config.encoders = {"text": TEXT_ENCODER, "image": IMAGE_ENCODER}
    return config


@dataclass
class Split:
    """One encoded split.

    Attributes:
        data: backbone features, padding masks and labels (planted: in memory; real
            datasets: read from the feature store on demand).
        ids: one id per example (the dataset's ids; planted: the index in the dataset).
        token_labels: ``token_labels(example, modality)`` gives readable labels of that
            modality's tokens (word pieces, or patch ``row,col``).
        planted: the ground truth of planted data, else None.
    """

    data: SplitData
    ids: list[str]
    token_labels: Callable[[int, int], list[str]]
    planted: PlantedData | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: list[int]) -> Split:
        """The examples ``index`` (positions in this split), in that order."""
        for i in index:
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} is outside the split ({len(self)} examples).")
        idx = torch.as_tensor(index, dtype=torch.long)
        data = self.data.select(idx)
        planted = self.planted.subset(idx) if self.planted is not None else None
        return Split(data, [self.ids[i] for i in index],
                     lambda b, m: self.token_labels(index[b], m), planted)


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


def load_split(config: RunConfig, split: str, *, data_dir: str | os.PathLike[str] | None = None,
               cache_dir: str | os.PathLike[str] | None = None, limit: int | None = None,
               encoders: Encoders | None = None, progress: bool = False) -> Split:
    """Split ``split`` of the run's dataset, encoded (through the feature cache).

    Args:
        config: the run (dataset, planted ``n`` and ``seed``, text length).
        split: a split name of the dataset (planted: ``"train"`` or ``"test"``).
        data_dir: the dataset folder (real datasets).
        cache_dir: the feature cache. Default: ``$FL_I2MOE_CACHE`` or ``~/.cache/fl_i2moe``.
        limit: at most this many items (real datasets).
        encoders: reuse loaded backbones. Default: new ones, loaded when needed.
        progress: progress bars while encoding.

    Examples::

        >>> test = load_split(new_config("planted", n=240), "test")
        >>> len(test), test.token_labels(0, 0)[:2]
        (72, ['[CLS]', 'tree'])
    """
    return load_splits(config, (split,), data_dir=data_dir, cache_dir=cache_dir, limit=limit,
                       encoders=encoders, progress=progress)[0]


def load_splits(config: RunConfig, splits: tuple[str, ...], *,
                data_dir: str | os.PathLike[str] | None = None,
                cache_dir: str | os.PathLike[str] | None = None, limit: int | None = None,
                encoders: Encoders | None = None, progress: bool = False) -> list[Split]:
    """Several splits of the run's dataset at once (planted data is built or read once);
    arguments as in :func:`load_split`."""
    entry = dataset_entry(config.dataset)
    for split in splits:
        if split not in entry.splits:
            raise ValueError(f"split must be one of {sorted(set(entry.splits))} for "
                             f"{config.dataset}, got {split!r}.")
    if config.dataset == "planted":
        train, test = planted_splits(config, cache_dir=cache_dir, progress=progress)
        return [planted_split(train) if split == "train" else planted_split(test, len(train))
                for split in splits]
    if data_dir is None:
        raise ValueError(f"{config.dataset} needs data_dir (the dataset folder).")
    shared = encoders or Encoders(config)
    return [_real_split(config, split, data_dir, cache_dir, limit, shared, progress)
            for split in splits]


def _real_split(config: RunConfig, split: str, data_dir: str | os.PathLike[str],
                cache_dir: str | os.PathLike[str] | None, limit: int | None,
                encoders: Encoders, progress: bool) -> Split:
    skips = Skips()
    items = load_items(config.dataset, data_dir, split, limit=limit, skips=skips)
    if skips.total:
        logger.warning("%s %s: skipped %d ids: %s", config.dataset, split, skips.total,
                       dict(skips.counts))
    data = encode_items(items, config, encoders, cache_dir=cache_dir, show_progress=progress)

    def labels(example: int, modality: int) -> list[str]:
        return token_labels(config, items[example], encoders, modality,
                            data.lengths[modality])

    return Split(data, [it.id for it in items], labels)


def planted_splits(config: RunConfig, *, cache_dir: str | os.PathLike[str] | None = None,
                   progress: bool = False) -> tuple[PlantedData, PlantedData]:
    """The (train, test) parts of the run's planted data: the first
    :data:`PLANTED_TRAIN_SHARE` of the examples, and the rest."""
    if config.n is None:
        raise ValueError("a planted run needs n (the number of planted examples).")
    data = load_planted(config.n, seed=config.seed, cache_dir=cache_dir, show_progress=progress)
    n_train = int(PLANTED_TRAIN_SHARE * len(data))
    return data.subset(list(range(n_train))), data.subset(list(range(n_train, len(data))))


def planted_split(part: PlantedData, first: int = 0) -> Split:
    """A :class:`Split` of planted examples; ``first`` is the dataset index of the first."""
    n_patches = int(part.image_features.shape[1])
    side = max(1, round(n_patches ** 0.5))

    def labels(example: int, modality: int) -> list[str]:
        if modality == 0:
            return part.tokens(example)
        return [f"{k // side},{k % side}" for k in range(n_patches)]

    return Split(part.dataset(), [str(first + i) for i in range(len(part))], labels, part)


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


def encode_items(items: list[Item], config: RunConfig, encoders: Encoders, *,
                 cache_dir: str | os.PathLike[str] | None = None,
                 show_progress: bool = False,
                 chunk_size: int = CHUNK_SIZE) -> StreamedFusionDataset:
    """Backbone features of every modality (through the streaming feature store under
    ``<cache_dir>/store``) and the labels; the features stay on disk until read."""
    from fl_i2moe_layer.encoders import FeatureStore, file_key, text_key

    if not items:
        raise ValueError(f"no usable {config.dataset} items in this split (see the skip "
                         "warnings).")
    root = cache_dir if cache_dir is not None else default_cache_dir()
    store = FeatureStore(os.path.join(os.fspath(root), "store"))
    columns, masks = [], []
    for name, kind in config.modalities:
        encoder = encoders.get(kind)
        if kind == "text":
            texts = [item_text(it, name) for it in items]

            def texts_at(idx: list[int], texts: list[str] = texts) -> list[str]:
                return [texts[i] for i in idx]

            got = store.encode(encoder, [text_key(t) for t in texts], texts_at,
                               chunk_size=chunk_size, show_progress=show_progress)
        else:
            paths = [it.images[name] for it in items]
            size = config.image_size

            def load(idx: list[int], paths: list[Any] = paths, size: int = size) -> Tensor:
                return torch.stack([load_image(paths[i], size=size) for i in idx])

            got = store.encode(encoder, [file_key(p) for p in paths], load,
                               preprocessing=f"rgb resize {size}x{size}",
                               chunk_size=chunk_size, show_progress=show_progress)
        columns.append(got.features)
        masks.append(got.mask)
    return StreamedFusionDataset(columns, masks, item_labels(items, config.task))


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
