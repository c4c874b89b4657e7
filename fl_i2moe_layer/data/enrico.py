"""ENRICO (Leiva et al. 2020): mobile UI screenshot + wireframe (+ optional view hierarchy),
20 design topics.

Layout::

    enrico/design_topics.csv          "screen_id,topic"
    enrico/screenshots/<id>.jpg
    enrico/wireframes/<id>.png
    enrico/hierarchies/<id>.json      optional
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from fl_i2moe_layer.data.common import (
    Item,
    Skips,
    child_or_skip,
    item_json,
    readable_image,
    require_dir,
    require_file,
)

HINT = ("Download design_topics.csv, screenshots/ and wireframes/ (optionally hierarchies/) "
        "from https://github.com/luileito/enrico into <data_dir>.")
TOPICS = ("bare", "calculator", "camera", "chat", "editor", "form", "gallery", "list", "login",
          "maps", "mediaplayer", "menu", "modal", "news", "other", "profile", "search",
          "settings", "terms", "tutorial")
DROPPED = ("50105", "50109")  # corrupt wireframes, dropped by every public loader
SPLITS = ("train", "val", "test")


def load_enrico(data_dir: str | os.PathLike[str], split: str = "train", *, seed: int = 42,
                fractions: tuple[float, float, float] = (0.65, 0.15, 0.20),
                hierarchy: bool = False, check_images: bool = True,
                skips: Skips | None = None) -> list[Item]:
    """Items of one split: ``images={"screenshot", "wireframe"}``, label = topic index
    (alphabetical), and with ``hierarchy=True`` ``texts={"hierarchy": json text}``.

    The split follows the public loaders: drop 50105 / 50109, shuffle with a seeded RNG
    (seed 42), cut 65 / 15 / 20 %.

    Examples::

        >>> items = load_enrico("data/enrico", "test")
    """
    root = require_dir(data_dir, "data_dir", HINT)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    skips = skips if skips is not None else Skips()
    rows = []
    table = require_file(root / "design_topics.csv", HINT)
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("screen_id", "topic") if c not in columns]
        if missing:
            raise ValueError(f"{str(table)!r} lacks the column(s) {missing} (header: {columns}); "
                             "ENRICO's design_topics.csv starts with 'screen_id,topic'.")
        reader.fieldnames = columns
        for row in reader:
            screen, topic = (row["screen_id"] or "").strip(), (row["topic"] or "").strip().lower()
            if screen in DROPPED:
                continue
            if topic not in TOPICS:
                skips.add(f"unknown topic {topic!r}", screen)
                continue
            rows.append((screen, TOPICS.index(topic)))
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train = round(fractions[0] * len(rows))
    n_val = round(fractions[1] * len(rows))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
              "test": (n_train + n_val, len(rows))}[split]
    items = []
    for i in order[bounds[0] : bounds[1]].tolist():
        screen, label = rows[i]
        shot = child_or_skip(root, "screenshots", screen, ".jpg", skips)
        wire = child_or_skip(root, "wireframes", screen, ".png", skips) if shot else None
        if shot is None or wire is None:  # counted once, by the first refusal
            continue
        if not (shot.is_file() and wire.is_file()) or (
                check_images and not (readable_image(shot) and readable_image(wire))):
            skips.add("missing or unreadable screenshot / wireframe", screen, shot)
            continue
        texts = {}
        if hierarchy:
            h = child_or_skip(root, "hierarchies", screen, ".json", skips)
            if h is None:
                continue
            found = item_json(h, skips, screen) if h.is_file() else {}
            if found is None:
                continue
            texts["hierarchy"] = json.dumps(found) if found else ""
        items.append(Item(screen, texts, {"screenshot": shot, "wireframe": wire}, label))
    return items
