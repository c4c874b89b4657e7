"""Tiny dataset trees in the published formats of MM-IMDb, ENRICO and MMHS150K (flat-colour
images), shared by the loader tests and the real-dataset CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from fl_i2moe_layer.data.enrico import TOPICS
from fl_i2moe_layer.data.mmimdb import GENRES


def save_image(path: Path, colour=(200, 30, 30), size=(40, 60)) -> None:
    """A flat-colour RGB image at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def mmimdb_tree(root: Path, per_split: int = 4) -> Path:
    """``per_split`` movies per split (train / dev / test), each with a plot, genres among
    the 23 and a poster."""
    words = ("love", "war", "space", "laugh", "ghost", "race")
    splits: dict[str, list[str]] = {}
    k = 0
    for split in ("train", "dev", "test"):
        splits[split] = []
        for _ in range(per_split):
            mid = f"{k:07d}"
            meta = {"plot": [f"A story of {words[k % len(words)]} and friends.::anon"],
                    "genres": [GENRES[k % 3], GENRES[3 + k % 2]]}
            (root / "dataset").mkdir(parents=True, exist_ok=True)
            (root / "dataset" / f"{mid}.json").write_text(json.dumps(meta))
            save_image(root / "dataset" / f"{mid}.jpeg", ((37 * k) % 256, 80, 120))
            splits[split].append(mid)
            k += 1
    (root / "split.json").write_text(json.dumps(splits))
    return root


def enrico_tree(root: Path, n: int = 14) -> Path:
    """``n`` screens with a screenshot and a wireframe each, topics cycling over the 20."""
    rows = ["screen_id,topic"]
    for k in range(n):
        sid = str(1000 + k)
        rows.append(f"{sid},{TOPICS[k % len(TOPICS)]}")
        save_image(root / "screenshots" / f"{sid}.jpg", ((k * 17) % 256, 0, 0))
        save_image(root / "wireframes" / f"{sid}.png", (0, (k * 17) % 256, 0))
    root.mkdir(parents=True, exist_ok=True)
    (root / "design_topics.csv").write_text("\n".join(rows) + "\n")
    return root


def mmhs150k_tree(root: Path, per_split: int = 4) -> Path:
    """``per_split`` tweets per split, alternating hateful (2 of 3 votes) and not; OCR text
    for every other tweet."""
    gt = {}
    root.mkdir(parents=True, exist_ok=True)
    (root / "img_txt").mkdir(exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)
    k = 0
    for split in ("train", "val", "test"):
        ids = []
        for _ in range(per_split):
            tid = str(1114679353714016256 + k)
            votes = [0, 1, 2] if k % 2 else [0, 0, 1]
            gt[tid] = {"tweet_text": f"tweet number {k}", "labels": votes}
            save_image(root / "img_resized" / f"{tid}.jpg", (0, 0, (k * 29) % 256))
            if k % 2 == 0:
                (root / "img_txt" / f"{tid}.json").write_text(json.dumps({"img_text": "ocr"}))
            ids.append(tid)
            k += 1
        (root / "splits" / f"{split}_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "MMHS150K_GT.json").write_text(json.dumps(gt))
    return root


BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "red", "blue",
              "on"]


def tiny_bert(path: Path) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) and its tokenizer saved to ``path``."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(BERT_VOCAB))
    transformers.BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    return path
