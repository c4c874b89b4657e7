"""A feature store that streams: encode a split in chunks, keyed per item, read rows lazily.

:class:`~fl_i2moe_layer.encoders.FeatureCache` keys one file by the whole (encoded) dataset,
so it needs every example in memory before it can even look for the file. This store keys
every *item* instead:

    key(item) = sha256(format | encoder identity | preprocessing | source key)

where the encoder identity digests the backbone's weights and its own preprocessing
(tokenizer vocabulary and length, pixel normalisation), ``preprocessing`` names what happens
before the encoder (e.g. the image size), and the source key names the item's content: an
image file by resolved path, size and modification time (:func:`file_key`), a text by the
sha256 of its characters (:func:`text_key`). Change the weights, the preprocessing or the
file and the key changes, so a stale feature is never read.

Items are encoded ``chunk_size`` at a time (only that chunk's images are decoded) and each
chunk is written atomically as ``<root>/<encoder digest>/chunk-<digest of its keys>.safetensors``
holding ``features`` (n, T, D), ``mask`` (n, T) and, in its header, the item keys. The index
(key -> chunk, row) is rebuilt from the chunk headers, so a split that was killed half-way
resumes with the chunks already written, two splits sharing items share their features,
and leftovers of killed writes are removed when the store opens.

Reading is lazy: :class:`FeatureRows` behaves like an (N, T, D) tensor for ``shape`` and
indexing and reads only the rows asked for, through memory maps of the chunk files (a few
kept open), so peak memory is bounded by the chunk size and the batch, not by the split.
Each chunk's digest is verified the first time a :class:`FeatureRows` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_interactions.validation import check_positive_int
from fl_i2moe_layer.encoders.base import FrozenEncoder
from fl_i2moe_layer.progress import progress
from fl_i2moe_layer.storage import (
    DIGEST_KEY,
    CorruptFileError,
    atomic_save_file,
    load_file,
    remove_stale_temporaries_in,
)

STORE_FORMAT = "fl_i2moe_layer.feature_store/1"
_DTYPES = {"F32": np.float32, "F16": np.float16, "BOOL": np.bool_}


def file_key(path: str | os.PathLike[str]) -> str:
    """The source key of a file: resolved path, size and modification time (ns).

    Rewriting or touching the file changes the key (its features are encoded again); moving
    the dataset folder does too, which costs one re-encoding and never serves stale features.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return f"file:{resolved}:{stat.st_size}:{stat.st_mtime_ns}"


def text_key(text: str) -> str:
    """The source key of a text: the sha256 of its UTF-8 bytes."""
    return "text:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Chunk:
    path: Path
    keys: tuple[str, ...]


class FeatureRows:
    """Lazy (N, T, D) backbone features stored in chunk files.

    Indexing with an int, a slice, a list or a LongTensor returns a tensor holding only those
    rows (read through memory maps; at most ``open_chunks`` maps are kept). ``len`` and
    ``shape`` work as for a tensor. Use :meth:`materialize` for the whole (N, T, D) tensor of
    a small split.

    Attributes:
        shape: (N, T, D).
        dtype: the features' dtype.
    """

    def __init__(self, chunks: Sequence[Path], chunk: Tensor, row: Tensor,
                 shape: tuple[int, int, int], dtype: torch.dtype, *,
                 open_chunks: int = 4, verify: bool = True) -> None:
        self._chunks = list(chunks)
        self._chunk = chunk.long()
        self._row = row.long()
        self.shape = torch.Size(shape)
        self.dtype = dtype
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self._open_limit = check_positive_int("open_chunks", open_chunks)
        self._verify = verify
        self._verified: set[int] = set()

    def __len__(self) -> int:
        return int(self.shape[0])

    def __repr__(self) -> str:
        return (f"FeatureRows(shape={tuple(self.shape)}, dtype={self.dtype}, "
                f"chunks={len(self._chunks)})")

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: maps are reopened there
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state

    def _array(self, c: int) -> np.ndarray:
        """The memory-mapped ``features`` of chunk ``c`` (verified on first use)."""
        if c in self._open:
            self._open.move_to_end(c)
            return self._open[c]
        path = self._chunks[c]
        if self._verify and c not in self._verified:
            load_file(path, what="feature store chunk", require_digest=True)
            self._verified.add(c)
        array = _memmap(path, "features")
        self._open[c] = array
        while len(self._open) > self._open_limit:
            self._open.popitem(last=False)  # dropping the map unmaps the file
        return array

    def __getitem__(self, index: int | slice | Sequence[int] | Tensor) -> Tensor:
        if isinstance(index, int):
            return self[torch.tensor([index])][0]
        if isinstance(index, slice):
            idx = torch.arange(len(self))[index]
        else:
            idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"index out of range for FeatureRows of {len(self)} rows.")
        idx = idx % max(len(self), 1)
        out = torch.empty((idx.numel(), *self.shape[1:]), dtype=self.dtype)
        chunks = self._chunk[idx]
        for c in torch.unique(chunks).tolist():  # one vectorised gather per touched chunk
            where = torch.nonzero(chunks == c, as_tuple=True)[0]
            rows = self._row[idx[where]].numpy()
            out[where] = torch.from_numpy(np.ascontiguousarray(self._array(c)[rows]))
        return out

    def materialize(self) -> Tensor:
        """All rows as one (N, T, D) tensor (memory grows with N: small splits only)."""
        return self[torch.arange(len(self))]


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the offset where its data starts."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise CorruptFileError(f"feature store chunk {str(path)!r} is truncated.")
        (size,) = struct.unpack("<Q", raw)
        if size > 100_000_000:
            raise CorruptFileError(f"feature store chunk {str(path)!r} has no valid header.")
        try:
            header = json.loads(f.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptFileError(f"feature store chunk {str(path)!r} has no valid header "
                                   f"({error}).") from error
    return header, 8 + size


def _memmap(path: Path, name: str) -> np.ndarray:
    header, start = _header(path)
    entry = header.get(name)
    dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry, dict) else None
    if dtype is None or entry is None:
        raise CorruptFileError(f"feature store chunk {str(path)!r} has no readable {name!r}.")
    a, b = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if b - a != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        raise CorruptFileError(f"feature store chunk {str(path)!r}: {name!r} has a bad size.")
    return np.memmap(path, dtype=dtype, mode="r", offset=start + a, shape=shape)


@dataclass
class StoredFeatures:
    """Features of a list of items, read lazily from a :class:`FeatureStore`.

    Attributes:
        features: lazy (N, T, D) rows (:class:`FeatureRows`).
        mask: (N, T) bool token mask (in memory: small).
        encoded: how many items this call encoded (0: everything came from the store).
    """

    features: FeatureRows
    mask: Tensor
    encoded: int


class FeatureStore:
    """Per-item features of frozen encoders, encoded in chunks and read lazily.

    Args:
        root (str or Path): the store folder (created if missing).

    Examples::

        >>> store = FeatureStore("~/.cache/fl_i2moe/store")
        >>> paths = [item.images["poster"] for item in items]
        >>> got = store.encode(image_encoder, [file_key(p) for p in paths],
        ...                    load=lambda idx: torch.stack([load_image(paths[i]) for i in idx]),
        ...                    preprocessing="size=224")
        >>> got.features.shape, got.features[[0, 5]].shape     # read on demand
        (torch.Size([20000, 49, 1280]), torch.Size([2, 49, 1280]))
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"FeatureStore root {str(self.root)!r} is a file; pass a folder "
                             "(created if missing).")

    def folder(self, encoder: FrozenEncoder, preprocessing: str = "") -> Path:
        """The chunk folder of one encoder and preprocessing."""
        digest = hashlib.sha256(f"{STORE_FORMAT}|{encoder.identity}|{preprocessing}".encode())
        return self.root / digest.hexdigest()[:24]

    @staticmethod
    def item_keys(source_keys: Sequence[str], encoder: FrozenEncoder,
                  preprocessing: str = "") -> list[str]:
        """The store keys of items given their source keys (:func:`file_key`,
        :func:`text_key`)."""
        prefix = f"{STORE_FORMAT}|{encoder.identity}|{preprocessing}|"
        return [hashlib.sha256((prefix + k).encode()).hexdigest() for k in source_keys]

    def _chunks(self, folder: Path) -> list[_Chunk]:
        chunks = []
        for path in sorted(folder.glob("chunk-*.safetensors")):
            try:
                header, _ = _header(path)
                keys = json.loads(header.get("__metadata__", {}).get("keys", "null"))
            except (CorruptFileError, json.JSONDecodeError, OSError):
                keys = None
            if not isinstance(keys, list):  # a truncated or foreign file: encoded again
                path.unlink(missing_ok=True)
                continue
            chunks.append(_Chunk(path, tuple(keys)))
        return chunks

    def encode(self, encoder: FrozenEncoder, source_keys: Sequence[str],
               load: Callable[[list[int]], Any], *, preprocessing: str = "",
               chunk_size: int = 256, batch_size: int = 32, show_progress: bool = False,
               verify: bool = True) -> StoredFeatures:
        """Features of N items, encoding (in chunks) only those not in the store yet.

        Args:
            encoder: the frozen encoder (its ``prepare`` takes what ``load`` returns).
            source_keys: one key per item naming its content (:func:`file_key`,
                :func:`text_key`); equal keys are encoded once.
            load: positions (into ``source_keys``) -> the raw data of those items, as
                ``encoder.prepare`` takes it (a list of texts, a (n, 3, H, W) image tensor).
                Called with at most ``chunk_size`` positions at a time.
            preprocessing: what happens before ``encoder.prepare`` (e.g. ``"size=224"``);
                part of every key.
            chunk_size: items per chunk file (memory while encoding grows with it).
            batch_size: items per backbone call.
            show_progress: a progress bar over the chunks to encode.
            verify: check each chunk's digest on first read.

        Returns:
            :class:`StoredFeatures`: lazy features in item order, the mask, and how many
            items were encoded now.
        """
        check_positive_int("chunk_size", chunk_size)
        check_positive_int("batch_size", batch_size)
        if not source_keys:
            raise ValueError("source_keys is empty: there is nothing to encode.")
        folder = self.folder(encoder, preprocessing)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries_in(folder)
        keys = self.item_keys(source_keys, encoder, preprocessing)
        chunks = self._chunks(folder)
        index = {k: (c, r) for c, chunk in enumerate(chunks) for r, k in enumerate(chunk.keys)}
        first: dict[str, int] = {}
        for position, key in enumerate(keys):
            if key not in index:
                first.setdefault(key, position)
        todo = list(first.values())
        meta = {"format": STORE_FORMAT, "encoder": encoder.identity,
                "preprocessing": preprocessing}
        starts = range(0, len(todo), chunk_size)
        for start in progress(starts, desc=f"encoding {encoder.name}", unit="chunk",
                              disable=not show_progress):
            positions = todo[start : start + chunk_size]
            prepared = encoder.prepare(load(positions))
            feats, masks = [], []
            for b in range(0, len(positions), batch_size):
                f_, m_ = encoder.features(*(t[b : b + batch_size] for t in prepared))
                feats.append(f_.cpu())
                masks.append(m_.cpu())
            chunk_keys = [keys[p] for p in positions]
            name = hashlib.sha256("|".join(chunk_keys).encode()).hexdigest()[:24]
            path = atomic_save_file({"features": torch.cat(feats), "mask": torch.cat(masks)},
                                    folder / f"chunk-{name}.safetensors",
                                    {**meta, "keys": json.dumps(chunk_keys)})
            index |= {k: (len(chunks), r) for r, k in enumerate(chunk_keys)}
            chunks.append(_Chunk(path, tuple(chunk_keys)))
        where = torch.tensor([index[k] for k in keys], dtype=torch.long)
        return self._read(chunks, where, verify=verify, encoded=len(todo))

    def _read(self, chunks: list[_Chunk], where: Tensor, *, verify: bool,
              encoded: int) -> StoredFeatures:
        used = torch.unique(where[:, 0]).tolist()
        shapes, dtypes, masks = set(), set(), {}
        for c in used:
            header, _ = _header(chunks[c].path)
            entry = header["features"]
            shapes.add(tuple(entry["shape"][1:]))
            dtypes.add(entry["dtype"])
            masks[c] = torch.from_numpy(np.array(_memmap(chunks[c].path, "mask")))
            meta = header.get("__metadata__", {})
            if DIGEST_KEY not in meta or meta.get("format") != STORE_FORMAT:
                raise CorruptFileError(f"{str(chunks[c].path)!r} is not a chunk of this "
                                       "feature store (no digest or another format).")
        if len(shapes) != 1 or len(dtypes) != 1:
            raise ValueError(f"the chunks of these items hold features of different shapes "
                             f"{sorted(shapes)}: delete {str(chunks[used[0]].path.parent)!r} "
                             "and encode again.")
        (token_shape,) = shapes
        mask = torch.empty((where.shape[0], token_shape[0]), dtype=torch.bool)
        for c in used:
            sel = torch.nonzero(where[:, 0] == c, as_tuple=True)[0]
            mask[sel] = masks[c][where[sel, 1]]
        dtype = torch.float16 if dtypes == {"F16"} else torch.float32
        rows = FeatureRows([chunks[c].path for c in range(len(chunks))], where[:, 0],
                           where[:, 1], (where.shape[0], *token_shape), dtype, verify=verify)
        return StoredFeatures(rows, mask, encoded)
