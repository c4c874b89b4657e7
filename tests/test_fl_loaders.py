"""MM-IMDb, ENRICO and MMHS150K loaders on tiny fixture trees in the published formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fl_fixtures import mmhs150k_tree
from fl_fixtures import save_image as _img

from fl_i2moe_layer.data.common import Skips, load_image
from fl_i2moe_layer.data.enrico import TOPICS, load_enrico
from fl_i2moe_layer.data.mmhs150k import load_mmhs150k
from fl_i2moe_layer.data.mmimdb import GENRES, load_mmimdb, load_mmimdb_hdf5


@pytest.fixture
def mmimdb(tmp_path):
    root = tmp_path / "mmimdb"
    movies = {
        "0000001": {"plot": ["Short one.::anon", "A much longer plot text.::bob"],
                    "genres": ["drama", "News"]},
        "0000002": {"plot": ["Funny."], "genres": ["Comedy", "Sci-Fi"]},
        "0000003": {"plot": [], "genres": ["Drama"]},            # no plot: skipped
        "0000004": {"plot": ["Adults."], "genres": ["Adult"]},    # no known genre: skipped
        "0000005": {"plot": ["No poster."], "genres": ["War"]},  # no poster: skipped
        "0000006": {"plot": ["Broken poster."], "genres": ["War"]},
    }
    for mid, meta in movies.items():
        (root / "dataset").mkdir(parents=True, exist_ok=True)
        (root / "dataset" / f"{mid}.json").write_text(json.dumps(meta))
        if mid not in ("0000005", "0000006"):
            _img(root / "dataset" / f"{mid}.jpeg")
    (root / "dataset" / "0000006.jpeg").write_bytes(b"not a jpeg")
    split = {"train": list(movies), "dev": ["0000007"], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    return root


def test_mmimdb_raw(mmimdb) -> None:
    skips = Skips()
    items = load_mmimdb(mmimdb, "train", skips=skips)
    assert [i.id for i in items] == ["0000001", "0000002"]
    assert items[0].texts["plot"] == "Short one."
    assert items[0].label[GENRES.index("Drama")] == 1 and sum(items[0].label) == 1
    assert items[1].label[GENRES.index("Sci-Fi")] == 1
    assert skips.total == 4
    longest = load_mmimdb(mmimdb, "train", plot="longest")
    assert longest[0].texts["plot"] == "A much longer plot text."
    assert load_image(items[0].images["poster"], size=32).shape == (3, 32, 32)
    assert load_mmimdb(mmimdb, "dev") == []  # id without files: counted skip


def test_mmimdb_errors(mmimdb, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data_dir.*mmimdb\.tar\.gz"):
        load_mmimdb(tmp_path / "missing")
    with pytest.raises(ValueError, match="plot must"):
        load_mmimdb(mmimdb, plot="random")
    (mmimdb / "split.json").write_text(json.dumps({"train": ["0000001"], "dev": ["0000001"],
                                                   "test": []}))
    with pytest.raises(ValueError, match="share 1 ids"):
        load_mmimdb(mmimdb)
    # One bad id costs that example only: skipped, counted, and the split goes on.
    (mmimdb / "split.json").write_text(json.dumps({"train": ["../escape", "0000001"],
                                                   "dev": [], "test": []}))
    skips = Skips()
    assert [i.id for i in load_mmimdb(mmimdb, skips=skips)] == ["0000001"]
    assert skips.counts == {"bad id or link outside the data folder": 1}


def test_mmimdb_hdf5(tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    n = 18161  # the split boundaries are fixed; keep arrays tiny but long enough
    path = tmp_path / "multimodal_imdb.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.zeros((n, 2), np.float32))
        f.create_dataset("vgg_features", data=np.zeros((n, 1), np.float32))
        f.create_dataset("images", data=np.zeros((n, 1), np.int32))
        g = f.create_dataset("genres", data=np.zeros((n, 23), np.int32))
        g.attrs["target_names"] = json.dumps(list(GENRES))
        f.create_dataset("imdb_ids", data=np.array([b"0000001"] * n, dtype="S7"))
    dev = load_mmimdb_hdf5(path, "dev")
    assert dev["labels"].shape == (2608, 23) and dev["ids"][0] == "0000001"
    with pytest.raises(ValueError, match="split must"):
        load_mmimdb_hdf5(path, "val")


def test_enrico(tmp_path) -> None:
    root = tmp_path / "enrico"
    rows = ["screen_id,topic"]
    for k in range(22):
        sid = str(1000 + k)
        rows.append(f"{sid},{TOPICS[k % len(TOPICS)]}")
        _img(root / "screenshots" / f"{sid}.jpg", (k * 10, 0, 0))
        if k != 3:
            _img(root / "wireframes" / f"{sid}.png", (0, k * 10, 0))
    rows += ["50105,list", "9999,spaceship"]
    root.mkdir(exist_ok=True)
    (root / "design_topics.csv").write_text("\n".join(rows) + "\n")
    skips = Skips()
    parts = {s: load_enrico(root, s, skips=skips) for s in ("train", "val", "test")}
    ids = [i.id for p in parts.values() for i in p]
    assert len(ids) == len(set(ids)) == 21 and "50105" not in ids
    # the CSV is read once per split: 3 topic skips; 1003 lacks its wireframe: 1 skip
    assert skips.counts["unknown topic 'spaceship'"] == 3 and skips.total == 4
    item = parts["train"][0]
    assert set(item.images) == {"screenshot", "wireframe"}
    assert TOPICS[item.label] == TOPICS[(int(item.id) - 1000) % len(TOPICS)]
    assert [i.id for i in load_enrico(root, "test")] == [i.id for i in parts["test"]]
    with pytest.raises(FileNotFoundError, match="enrico"):
        load_enrico(tmp_path / "nope")


def test_mmhs150k(tmp_path) -> None:
    root = tmp_path / "MMHS150K"
    ids = ["1114679353714016256", "1063020048816660480", "1108927368075374593",
           "1114558534635618305"]
    gt = {
        ids[0]: {"tweet_text": "a", "labels": [0, 1, 2]},  # 2 hateful votes: hate
        ids[1]: {"tweet_text": "b", "labels": [0, 0, 1]},  # not hate; no majority? 0 wins
        ids[2]: {"tweet_text": "c", "labels": [1, 2, 3]},  # no majority for 6-class
        ids[3]: {"tweet_text": "d", "labels": [0, 9, 0]},  # unknown vote: skipped
    }
    root.mkdir()
    (root / "MMHS150K_GT.json").write_text(json.dumps(gt))
    for i in ids:
        _img(root / "img_resized" / f"{i}.jpg")
    (root / "img_txt").mkdir()
    (root / "img_txt" / f"{ids[0]}.json").write_text(json.dumps({"img_text": "ocr words"}))
    (root / "splits").mkdir()
    (root / "splits" / "train_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "splits" / "val_ids.txt").write_text("")
    (root / "splits" / "test_ids.txt").write_text("")
    skips = Skips()
    items = load_mmhs150k(root, "train", skips=skips)
    assert [i.id for i in items] == ids[:3] and skips.total == 1
    assert [i.label for i in items] == [1, 0, 1]
    assert items[0].texts == {"tweet": "a", "ocr": "ocr words"} and items[1].texts["ocr"] == ""
    multi = load_mmhs150k(root, "train", target="multiclass")
    assert [(i.id, i.label) for i in multi] == [(ids[1], 0)]
    union = load_mmhs150k(root, "train", target="multilabel")
    assert union[0].label == [1, 1, 0, 0, 0]
    (root / "splits" / "test_ids.txt").write_text(ids[0] + "\n")
    with pytest.raises(ValueError, match="'train' and 'test' share"):
        load_mmhs150k(root, "train")
    with pytest.raises(ValueError, match="target must"):
        load_mmhs150k(root, target="six")


def test_a_truncated_jpeg_that_passes_verify_is_skipped_and_counted(tmp_path) -> None:
    """A JPEG cut short keeps a valid header (PIL's verify() accepts it) but cannot be
    decoded: the loader skips it, counts it, and the split goes on."""
    from PIL import Image

    from fl_i2moe_layer.data.common import readable_image

    root = mmhs150k_tree(tmp_path / "mmhs150k")
    images = sorted((root / "img_resized").glob("*.jpg"))
    victim = images[0]
    raw = victim.read_bytes()
    victim.write_bytes(raw[:-20])  # the end of the scan data and the EOI marker
    with Image.open(victim) as img:
        img.verify()  # the header still passes
    assert not readable_image(victim)
    skips = Skips()
    split_ids = set()
    for split in ("train", "val", "test"):
        split_ids |= {item.id for item in load_mmhs150k(root, split, skips=skips)}
    assert victim.stem not in split_ids and split_ids
    assert skips.counts["missing or unreadable image"] == 1


def test_every_per_example_failure_is_skipped_counted_and_logged(tmp_path, caplog) -> None:
    """Bad JSON, a bad label, a bad id, a symlink leaving the data folder, a dangling
    symlink and a truncated image: each costs its example only, is counted by cause, and the
    first of each cause is logged with its file."""
    import logging
    import os

    from fl_fixtures import mmimdb_tree

    root = mmimdb_tree(tmp_path / "mmimdb", per_split=8)
    outside = tmp_path / "elsewhere.jpeg"
    _img(outside)
    data = root / "dataset"
    train = json.loads((root / "split.json").read_text())["train"]
    (data / f"{train[0]}.json").write_text("{not json")                        # bad JSON
    (data / f"{train[1]}.json").write_text(json.dumps({"plot": ["x"], "genres": [3]}))
    (data / f"{train[2]}.jpeg").unlink()
    os.symlink(outside, data / f"{train[2]}.jpeg")                             # leaves root
    (data / f"{train[3]}.jpeg").unlink()
    os.symlink(data / "nowhere.jpeg", data / f"{train[3]}.jpeg")               # dangling
    raw = (data / f"{train[4]}.jpeg").read_bytes()
    (data / f"{train[4]}.jpeg").write_bytes(raw[: len(raw) // 2])              # truncated
    split = json.loads((root / "split.json").read_text())
    split["train"] = [*split["train"], "../../etc/passwd"]                     # bad id
    (root / "split.json").write_text(json.dumps(split))
    skips = Skips()
    with caplog.at_level(logging.WARNING, logger="fl_i2moe_layer.data"):
        items = load_mmimdb(root, "train", skips=skips)
    assert [i.id for i in items] == train[5:]
    assert skips.counts == {
        "unreadable dataset/*.json": 1,
        "bad label (genres must be a list of names) or plot": 1,
        "bad id or link outside the data folder": 2,
        "missing or unreadable poster": 2,
    }
    assert skips.total == 6
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"{train[0]}.json" in logged and f"{train[2]}.jpeg" in logged
    assert skips.first["missing or unreadable poster"][0] == train[3]


def test_mmhs150k_bad_votes_and_entries_are_skipped(tmp_path) -> None:
    root = mmhs150k_tree(tmp_path / "mmhs150k", per_split=4)
    gt = json.loads((root / "MMHS150K_GT.json").read_text())
    ids = (root / "splits" / "train_ids.txt").read_text().split()
    gt[ids[0]]["labels"] = ["x", 0, 1]
    gt[ids[1]]["labels"] = [0, 9, 1]
    gt[ids[2]] = "not an entry"
    (root / "MMHS150K_GT.json").write_text(json.dumps(gt))
    skips = Skips()
    assert [i.id for i in load_mmhs150k(root, "train", skips=skips)] == ids[3:]
    assert skips.counts == {"bad label (need 3 votes in 0..5)": 3}
