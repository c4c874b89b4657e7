"""Shared pieces of the real-dataset loaders: items, skip counting, safe paths, images."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("fl_i2moe_layer.data")


@dataclass
class Item:
    """One example of a real dataset, as the encoders and the feature cache consume it.

    Attributes:
        id: the dataset's id (a string, never parsed as a number).
        texts: modality name -> text (e.g. ``{"plot": ...}``, ``{"tweet": ..., "ocr": ...}``).
        images: modality name -> image path (open with :func:`load_image`).
        label: an int class, or a list of 0/1 for multi-label targets.
    """

    id: str
    texts: dict[str, str]
    images: dict[str, Path]
    label: Any


@dataclass
class Skips:
    """Counted, logged skips: a loader never drops an example silently.

    Each skip is counted by cause; the first of each cause is logged as a warning naming the
    id and the file, the others at debug level (``logging.getLogger("fl_i2moe_layer.data")``
    set to DEBUG lists every skipped file).

    Attributes:
        counts: cause -> number of skipped examples.
        first: cause -> (id, file) of the first example skipped for it.
    """

    counts: Counter = field(default_factory=Counter)
    first: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, reason: str, item_id: str, path: str | os.PathLike[str] | None = None
            ) -> None:
        where = f" ({str(path)!r})" if path is not None else ""
        if not self.counts[reason]:
            self.first[reason] = (item_id, str(path) if path is not None else "")
            logger.warning("skipping %s%s: %s; further skips of this kind are logged at debug "
                           "level and counted", item_id, where, reason)
        else:
            logger.debug("skipping %s%s: %s", item_id, where, reason)
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def require_dir(root: str | os.PathLike[str], name: str, hint: str) -> Path:
    """``root`` as a Path; FileNotFoundError naming ``data_dir`` and what to download."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data_dir {str(path)!r} is not a folder. {hint}")
    return path


def read_json(path: Path) -> Any:
    """A JSON file's content; a file that does not parse raises ValueError naming it (index
    files), while per-item files use :func:`item_json`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}): the file is truncated or "
                         "damaged; download it again.") from error


def item_json(path: Path, skips: Skips, item_id: str) -> Any | None:
    """A per-item JSON file, or None after counting a skip when it does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        skips.add(f"unreadable {path.parent.name}/*.json", item_id, path)
        return None


def require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing. {hint}")
    return path


def safe_child(root: Path, sub: str, item_id: str, suffix: str) -> Path:
    """``root/sub/<id><suffix>``, refusing ids that would escape ``root`` (``..``, ``/``)."""
    if not item_id or "/" in item_id or "\\" in item_id or item_id in (".", "..") \
            or "\0" in item_id:
        raise ValueError(f"id {item_id!r} is not a plain file name: refusing to read outside "
                         f"{str(root)!r}.")
    path = (root / sub / f"{item_id}{suffix}").resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"id {item_id!r} escapes the data folder {str(root)!r}.")
    return path


def child_or_skip(root: Path, sub: str, item_id: str, suffix: str, skips: Skips
                  ) -> Path | None:
    """:func:`safe_child`, or None after counting a skip: an id that is not a plain file name
    (``..``, ``/``) or a file that resolves outside ``root`` (a symlink pointing elsewhere)
    costs that example only, never the split."""
    try:
        return safe_child(root, sub, item_id, suffix)
    except ValueError:
        skips.add("bad id or link outside the data folder", item_id,
                  root / sub / f"{item_id}{suffix}")
        return None


def readable_image(path: Path) -> bool:
    """True if PIL can open, verify and fully decode ``path``.

    ``verify()`` alone checks the header and the chunk structure, and a JPEG cut short passes
    it; decoding every pixel (``load()``) is what catches truncated files, so that the loader
    skips and counts them instead of the encoder failing on them mid-split."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:  # verify() leaves the image unusable: open it again
            img.load()
        return True
    except Exception:  # any decoding failure means "unreadable"
        return False


def load_image(path: str | os.PathLike[str], size: int = 224) -> Any:
    """An RGB image resized to ``size`` × ``size`` as a (3, size, size) float tensor in [0, 1].

    Examples::

        >>> load_image(item.images["poster"]).shape
        torch.Size([3, 224, 224])
    """
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def check_disjoint(splits: dict[str, list[str]], source: str) -> None:
    """ValueError naming the overlapping splits (a known bad MMHS150K download had
    train == test)."""
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = set(splits[a]) & set(splits[b])
            if common:
                raise ValueError(f"{source}: splits {a!r} and {b!r} share {len(common)} ids "
                                 f"(e.g. {sorted(common)[0]!r}); the download is corrupt.")
