"""MM-IMDb (Arevalo et al. 2017): plot + poster, 23 genres, multi-label.

Raw tree (MMBT, FL-I2MoE)::

    mmimdb/split.json           {"train": [ids], "dev": [ids], "test": [ids]}
    mmimdb/dataset/<id>.json    "plot": [str, ...], "genres": [str, ...]
    mmimdb/dataset/<id>.jpeg

HDF5 release ``multimodal_imdb.hdf5`` (MultiBench, I2MoE): rows ordered train | dev | test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fl_i2moe_layer.data.common import (
    Item,
    Skips,
    check_disjoint,
    child_or_skip,
    item_json,
    logger,
    read_json,
    readable_image,
    require_dir,
    require_file,
)

HINT = ("Download mmimdb.tar.gz from http://lisi1.unal.edu.co/mmimdb/ and unpack it so that "
        "<data_dir>/split.json and <data_dir>/dataset/ exist.")
GENRES = ("Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
          "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War",
          "History", "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir")
_INDEX = {g.lower(): i for i, g in enumerate(GENRES)}
SPLITS = ("train", "dev", "test")
HDF5_ROWS = {"train": (0, 15552), "dev": (15552, 18160), "test": (18160, 25959)}


def _plot(plots: list[str], choice: str) -> str:
    text = max(plots, key=len) if choice == "longest" else plots[0]
    return text.split("::")[0].strip()  # drop the "::author" suffix


def load_mmimdb(data_dir: str | os.PathLike[str], split: str = "train", *,
                plot: str = "first", check_images: bool = True,
                skips: Skips | None = None) -> list[Item]:
    """Items of one split of the raw tree: ``texts={"plot"}``, ``images={"poster"}``,
    label = 23-long multi-hot list in the HDF5 release's genre order (case-insensitive).

    Args:
        plot: ``"first"`` (FL-I2MoE) or ``"longest"`` (MMBT) plot summary.

    Movies lacking a plot, genres within the 23 or a (readable) poster are skipped and
    counted; genres outside the 23 (News, Adult, ...) are ignored with one warning.

    Examples::

        >>> items = load_mmimdb("data/mmimdb", "dev", plot="longest")
    """
    root = require_dir(data_dir, "data_dir", HINT)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if plot not in ("first", "longest"):
        raise ValueError(f"plot must be 'first' or 'longest', got {plot!r}.")
    skips = skips if skips is not None else Skips()
    splits = read_json(require_file(root / "split.json", HINT))
    if not isinstance(splits, dict):
        raise ValueError(f"{str(root / 'split.json')!r} must map split names to id lists.")
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"split.json lacks the splits {missing}.")
    splits = {s: [str(i) for i in splits[s]] for s in SPLITS}
    check_disjoint(splits, "MM-IMDb split.json")
    warned: set[str] = set()
    items = []
    for movie in splits[split]:
        meta_path = child_or_skip(root, "dataset", movie, ".json", skips)
        if meta_path is None:
            continue
        if not meta_path.is_file():
            skips.add("missing metadata json", movie, meta_path)
            continue
        meta = item_json(meta_path, skips, movie)
        if not isinstance(meta, dict):
            if meta is not None:
                skips.add("metadata json is not an object", movie, meta_path)
            continue
        raw_plots, genres = meta.get("plot") or [], meta.get("genres") or []
        raw_plots = [raw_plots] if isinstance(raw_plots, str) else raw_plots
        if not isinstance(raw_plots, list) or not isinstance(genres, list) \
                or not all(isinstance(g, str) for g in genres):
            skips.add("bad label (genres must be a list of names) or plot", movie, meta_path)
            continue
        plots = [p for p in raw_plots if isinstance(p, str) and p.strip()]
        unknown = {g for g in genres if g.lower() not in _INDEX} - warned
        if unknown:
            logger.warning("MM-IMDb: ignoring genres outside the 23: %s", sorted(unknown))
            warned |= unknown
        label = [0] * len(GENRES)
        for g in genres:
            if g.lower() in _INDEX:
                label[_INDEX[g.lower()]] = 1
        if not plots:
            skips.add("no plot", movie, meta_path)
            continue
        if not any(label):
            skips.add("no genre among the 23", movie, meta_path)
            continue
        jpeg = child_or_skip(root, "dataset", movie, ".jpeg", skips)
        jpg = child_or_skip(root, "dataset", movie, ".jpg", skips) if jpeg else None
        if jpeg is None or jpg is None:  # counted once, by the first refusal
            continue
        poster = jpeg if jpeg.is_file() else jpg if jpg.is_file() else None
        if poster is None or (check_images and not readable_image(poster)):
            skips.add("missing or unreadable poster", movie, poster or jpeg)
            continue
        items.append(Item(movie, {"plot": _plot(plots, plot)}, {"poster": poster}, label))
    return items


def load_mmimdb_hdf5(path: str | os.PathLike[str], split: str = "train") -> dict[str, Any]:
    """One split of ``multimodal_imdb.hdf5`` as tensors: ``features`` (N, 300), ``vgg``
    (N, 4096), ``images`` (N, 3, 256, 160) uint8, ``labels`` (N, 23) float, ``ids``.

    Needs h5py (``pip install h5py``); the genre order is checked against
    ``attrs['target_names']``.
    """
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("load_mmimdb_hdf5 needs h5py: pip install h5py") from exc
    import numpy as np
    import torch

    file = require_file(Path(path).expanduser(), HINT.replace("mmimdb.tar.gz",
                                                              "multimodal_imdb.hdf5"))
    if split not in HDF5_ROWS:
        raise ValueError(f"split must be one of {tuple(HDF5_ROWS)}, got {split!r}.")
    a, b = HDF5_ROWS[split]
    with h5py.File(file, "r") as f:
        names = json.loads(f["genres"].attrs["target_names"])
        if [n.lower() for n in names] != [g.lower() for g in GENRES]:
            raise ValueError(f"{str(file)!r}: unexpected genre order {names}.")
        return {
            "features": torch.from_numpy(np.asarray(f["features"][a:b], dtype=np.float32)),
            "vgg": torch.from_numpy(np.asarray(f["vgg_features"][a:b], dtype=np.float32)),
            "images": torch.from_numpy(np.asarray(f["images"][a:b]).astype(np.uint8)),
            "labels": torch.from_numpy(np.asarray(f["genres"][a:b], dtype=np.float32)),
            "ids": [bytes(i).decode() for i in f["imdb_ids"][a:b]],
        }
