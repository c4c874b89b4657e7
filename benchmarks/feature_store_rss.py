"""Peak memory and throughput of encoding a real-format split through the streaming feature
store, against the split's size.

Generates an MM-IMDb-format tree (``split.json`` + ``dataset/<id>.json`` and ``<id>.jpeg``:
noise posters of 182 x 268 pixels, the dataset's typical poster size, and short plots) with
the largest size asked for, then, for each size N, runs one child process that loads the
first N movies of the train split with :func:`fl_i2moe_layer.data.load_mmimdb`, encodes them
with the run's frozen encoders (all-MiniLM-L6-v2, EfficientNet-Lite0) into a fresh feature
store (:func:`fl_i2moe_layer.experiments.datasets.encode_items`) and reads every example back
once through a shuffled DataLoader. The child reports its peak resident set size
(``ru_maxrss``), the encoding and reading times. ``--legacy`` measures the former path instead
(every image of the split decoded into one tensor, one cache file for the whole split); use
it only at small N.

Usage::

    python benchmarks/feature_store_rss.py --sizes 2000 5000 20000 --work /tmp/fsr \
        --out docs/feature_store_rss.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORDS = ("love", "war", "space", "laugh", "ghost", "race", "city", "night", "river", "king")


def make_tree(root: Path, n: int) -> Path:
    """An MM-IMDb-format tree of ``n`` movies (kept when it already has them)."""
    import numpy as np
    from PIL import Image

    from fl_i2moe_layer.data.mmimdb import GENRES

    data = root / "dataset"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        mid = f"{k:07d}"
        poster = data / f"{mid}.jpeg"
        if poster.is_file():
            continue
        words = " ".join(WORDS[(k * 7 + j) % len(WORDS)] for j in range(12))
        meta = {"plot": [f"A story of {words}.::anon"],
                "genres": [GENRES[k % 5], GENRES[5 + k % 7]]}
        (data / f"{mid}.json").write_text(json.dumps(meta))
        pixels = rng.integers(0, 256, (268, 182, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(poster, quality=85)
    return root


def cheap_encoders(config: object) -> object:
    """Encoders with the real ones' tokenizer, preprocessing and feature shapes (64 x 384 text
    tokens, 7 x 7 x 1280 patches at 224 px) but trivial backbones (an embedding table; an
    average pool and a 3 -> 1280 linear map), so that the measurement is about the data path
    rather than about the CPU time of MiniLM and EfficientNet."""
    import torch
    from torch import nn

    from fl_i2moe_layer.encoders import ImageEncoder, TextEncoder
    from fl_i2moe_layer.experiments.datasets import Encoders

    class Embed(nn.Module):
        def __init__(self, vocab: int) -> None:
            super().__init__()
            self.table = nn.Embedding(vocab, 384)
            self.config = type("Config", (), {"hidden_size": 384})()

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
            return type("Out", (), {"last_hidden_state": self.table(input_ids)})()

    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 1280)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            cells = nn.functional.adaptive_avg_pool2d(pixels, 7).flatten(2).transpose(1, 2)
            return self.linear(cells)

    class Cheap(Encoders):
        def get(self, kind: str) -> object:
            if kind == "text":
                if self._text is None:
                    real = TextEncoder.minilm(1, max_length=self.config.max_length)
                    self._text = TextEncoder(Embed(len(real.tokenizer)), 1,
                                             tokenizer=real.tokenizer,
                                             max_length=self.config.max_length)
                return self._text
            if self._image is None:
                self._image = ImageEncoder(Pool(), 1280, 1)
            return self._image

    torch.manual_seed(0)
    return Cheap(config)  # type: ignore[arg-type]


def child(root: Path, n: int, cache: Path, legacy: bool, cheap: bool) -> dict[str, float]:
    import torch

    from fl_i2moe_layer.data.mmimdb import load_mmimdb
    from fl_i2moe_layer.experiments.datasets import Encoders, encode_items, new_config

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    ids = [f"{k:07d}" for k in range(n)]
    (root / "split.json").write_text(json.dumps({"train": ids, "dev": [], "test": []}))
    config = new_config("mmimdb")
    encoders: Any = cheap_encoders(config) if cheap else Encoders(config)
    encoders.get("text"), encoders.get("image")
    rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    items = load_mmimdb(root, "train")
    loaded = time.perf_counter()
    if legacy:
        from fl_i2moe_layer.data.common import load_image
        from fl_i2moe_layer.encoders import FeatureCache

        cache_old = FeatureCache(cache)
        texts = [it.texts["plot"] for it in items]
        cache_old.load_or_encode(encoders.get("text"), texts)
        pixels = torch.stack([load_image(it.images["poster"]) for it in items])
        cache_old.load_or_encode(encoders.get("image"), pixels)
        encoded = time.perf_counter()
        read = encoded
    else:
        data = encode_items(items, config, encoders, cache_dir=cache)
        encoded = time.perf_counter()
        loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
        total = 0.0
        for inputs, _, _ in loader:
            total += float(sum(x.sum() for x in inputs))
        read = time.perf_counter()
    return {"n": n, "items": len(items), "peak_rss_mb": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_loading_models_mb": rss_models, "load_items_s": loaded - start,
            "encode_s": encoded - loaded, "read_pass_s": read - encoded,
            "encode_items_per_s": len(items) / max(encoded - loaded, 1e-9),
            "read_items_per_s": (len(items) / (read - encoded)) if read > encoded else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/feature_store_rss"))
    parser.add_argument("--out", type=Path, default=None, help="markdown table to write")
    parser.add_argument("--legacy", action="store_true",
                        help="measure the former whole-split path (small sizes only)")
    parser.add_argument("--backbones", choices=("real", "cheap"), default="real",
                        help="real: MiniLM + EfficientNet-Lite0; cheap: the same tokenizer, "
                             "preprocessing and feature shapes with trivial backbones")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.work / "mmimdb"
    if args.child is not None:
        cache = args.work / f"cache-{args.child}"
        print(json.dumps(child(root, args.child, cache, args.legacy,
                               args.backbones == "cheap")))
        return
    start = time.perf_counter()
    make_tree(root, max(args.sizes))
    print(f"tree of {max(args.sizes)} posters in {time.perf_counter() - start:.0f} s",
          flush=True)
    rows = []
    for n in args.sizes:
        shutil.rmtree(args.work / f"cache-{n}", ignore_errors=True)
        cmd = [sys.executable, __file__, "--child", str(n), "--work", str(args.work)]
        cmd += ["--legacy"] if args.legacy else []
        cmd += ["--backbones", args.backbones]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(args.work / f"cache-{n}", ignore_errors=True)
    lines = ["| examples | peak RSS (MB) | RSS after loading the encoders (MB) | encode (items/s) "
             "| read pass (items/s) |", "|---|---|---|---|---|"]
    lines += [f"| {r['items']:,} | {r['peak_rss_mb']:.0f} | {r['rss_after_loading_models_mb']:.0f}"
              f" | {r['encode_items_per_s']:.1f} | {r['read_items_per_s']:.0f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
