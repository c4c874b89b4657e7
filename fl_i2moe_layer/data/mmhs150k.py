"""MMHS150K (Gomez et al. 2020): tweet text + image (+ optional OCR text), hate speech.

Layout (docs/data.md lists every dataset's)::

    MMHS150K/MMHS150K_GT.json         {tweet_id: {"tweet_text", "labels": [3 votes], ...}}
    MMHS150K/img_resized/<id>.jpg
    MMHS150K/img_txt/<id>.json        {"img_text": ...}, only where OCR found text
    MMHS150K/splits/{train,val,test}_ids.txt
"""

from __future__ import annotations

import os
from collections import Counter

from fl_i2moe_layer.data.common import (
    Item,
    Skips,
    check_disjoint,
    child_or_skip,
    item_json,
    read_json,
    readable_image,
    require_dir,
    require_file,
)

HINT = ("Download MMHS150K.zip from https://gombru.github.io/2019/10/09/MMHS/ and unpack it so "
        "that <data_dir>/MMHS150K_GT.json, img_resized/ and splits/ exist.")
CLASSES = ("NotHate", "Racist", "Sexist", "Homophobe", "Religion", "OtherHate")
TARGETS = ("binary", "multiclass", "multilabel")
SPLIT_FILES = {"train": "train_ids.txt", "val": "val_ids.txt", "test": "test_ids.txt"}


def _target(votes: list[int], target: str) -> int | list[int] | None:
    if target == "binary":  # hate when at least 2 of the 3 votes are non-zero
        return int(sum(v != 0 for v in votes) >= 2)
    if target == "multiclass":  # majority vote; None when there is no majority
        value, count = Counter(votes).most_common(1)[0]
        return value if count >= 2 else None
    return [int(k in votes) for k in range(1, len(CLASSES))]  # union of hate types


def _votes(raw: object) -> list[int] | None:
    """The 3 annotator votes as ints in 0..5, or None when ``raw`` is anything else."""
    if not isinstance(raw, list) or len(raw) != 3:
        return None
    votes = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            return None
        try:
            votes.append(int(v))
        except ValueError:
            return None
    return votes if all(0 <= v < len(CLASSES) for v in votes) else None


def load_mmhs150k(data_dir: str | os.PathLike[str], split: str = "train", *,
                  target: str = "binary", ocr: bool = True, check_images: bool = True,
                  skips: Skips | None = None) -> list[Item]:
    """Items of one split: ``texts={"tweet", "ocr"}`` (OCR "" when absent or ``ocr=False``),
    ``images={"image": path}``, label per ``target``.

    Args:
        data_dir: the ``MMHS150K`` folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        target: ``"binary"`` (>= 2 of 3 votes hateful), ``"multiclass"`` (majority vote,
            items without a majority skipped) or ``"multilabel"`` (union of the 5 hate types).
        ocr: read ``img_txt/<id>.json``. check_images: skip unreadable images (counted).
        skips: a :class:`Skips` to count skipped ids into.

    Examples::

        >>> items = load_mmhs150k("data/MMHS150K", "val", target="binary")
    """
    root = require_dir(data_dir, "data_dir", HINT)
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}.")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}.")
    skips = skips if skips is not None else Skips()
    gt = read_json(require_file(root / "MMHS150K_GT.json", HINT))
    if not isinstance(gt, dict):
        raise ValueError(f"{str(root / 'MMHS150K_GT.json')!r} must map tweet ids to entries.")
    splits = {}
    for name, fname in SPLIT_FILES.items():
        path = require_file(root / "splits" / fname, HINT)
        splits[name] = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    check_disjoint(splits, "MMHS150K")
    items = []
    for tweet_id in splits[split]:
        entry = gt.get(tweet_id)
        if entry is None:
            skips.add("id missing from MMHS150K_GT.json", tweet_id)
            continue
        votes = _votes(entry.get("labels") if isinstance(entry, dict) else None)
        if votes is None:
            skips.add("bad label (need 3 votes in 0..5)", tweet_id)
            continue
        label = _target(votes, target)
        if label is None:
            skips.add("no majority vote", tweet_id)
            continue
        image = child_or_skip(root, "img_resized", tweet_id, ".jpg", skips)
        if image is None:
            continue
        if not image.is_file() or (check_images and not readable_image(image)):
            skips.add("missing or unreadable image", tweet_id, image)
            continue
        text = ""
        if ocr:
            ocr_path = child_or_skip(root, "img_txt", tweet_id, ".json", skips)
            if ocr_path is None:
                continue
            if ocr_path.is_file():
                found = item_json(ocr_path, skips, tweet_id)
                if not isinstance(found, dict):
                    if found is not None:
                        skips.add("OCR json is not an object", tweet_id, ocr_path)
                    continue
                text = str(found.get("img_text", ""))
        items.append(Item(tweet_id, {"tweet": str(entry.get("tweet_text", "")), "ocr": text},
                          {"image": image}, label))
    return items
