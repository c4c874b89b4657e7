"""The streaming feature store: per-item keys, chunked encoding that resumes, lazy reads that
equal direct encoding, invalidation, corruption and leftovers of killed writes."""

from __future__ import annotations

import json
import os

import pytest
import torch
from fl_fixtures import save_image
from safetensors import safe_open
from torch import nn

from fl_i2moe_layer.data.common import load_image
from fl_i2moe_layer.encoders import FeatureStore, ImageEncoder, file_key
from fl_i2moe_layer.storage import CorruptFileError
from fl_i2moe_layer.training import FusionDataset, StreamedFusionDataset


class Patches(nn.Module):
    """A tiny conv backbone: (B, 3, 16, 16) pixels -> (B, 16, 5) patch tokens."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, kernel_size=4, stride=4)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.conv(pixels).flatten(2).transpose(1, 2)


@pytest.fixture
def images(tmp_path):
    paths = []
    for k in range(11):
        path = tmp_path / "img" / f"{k}.png"
        save_image(path, ((23 * k) % 256, (71 * k) % 256, 90), size=(16, 16))
        paths.append(path)
    return paths


def _encoder() -> ImageEncoder:
    return ImageEncoder(Patches(), feature_dim=5, hidden_dim=4)


class Loader:
    """``load`` for the store, counting the items it was asked for; fails after ``fail_after``
    calls (a run killed while encoding)."""

    def __init__(self, paths, fail_after: int | None = None) -> None:
        self.paths, self.fail_after, self.asked, self.calls = paths, fail_after, [], 0

    def __call__(self, idx: list[int]) -> torch.Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.asked += idx
        return torch.stack([load_image(self.paths[i], size=16) for i in idx])


def _direct(encoder, paths) -> torch.Tensor:
    pixels = torch.stack([load_image(p, size=16) for p in paths])
    return encoder.features(pixels)[0]


def test_lazy_rows_equal_direct_encoding_and_are_read_on_demand(tmp_path, images) -> None:
    encoder = _encoder()
    store = FeatureStore(tmp_path / "store")
    got = store.encode(encoder, [file_key(p) for p in images], Loader(images), chunk_size=4,
                       batch_size=3)
    expected = _direct(encoder, images)
    assert got.encoded == 11 and got.features.shape == expected.shape == (11, 16, 5)
    assert len(list(store.folder(encoder).glob("chunk-*.safetensors"))) == 3
    torch.testing.assert_close(got.features.materialize(), expected, rtol=0, atol=0)
    torch.testing.assert_close(got.features[[10, 0, 5, 5]], expected[[10, 0, 5, 5]])
    torch.testing.assert_close(got.features[2:9:3], expected[2:9:3])
    torch.testing.assert_close(got.features[-1], expected[-1])
    assert got.mask.shape == (11, 16) and bool(got.mask.all())
    with pytest.raises(IndexError, match="out of range"):
        got.features[[11]]
    again = store.encode(encoder, [file_key(p) for p in images], Loader(images), chunk_size=4)
    assert again.encoded == 0  # everything from the store


def test_a_killed_encoding_resumes_without_redoing_finished_chunks(tmp_path, images) -> None:
    encoder = _encoder()
    store = FeatureStore(tmp_path / "store")
    keys = [file_key(p) for p in images]
    killed = Loader(images, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        store.encode(encoder, keys, killed, chunk_size=3)
    assert sorted(killed.asked) == list(range(6))
    resumed = Loader(images)
    got = store.encode(encoder, keys, resumed, chunk_size=3)
    assert sorted(resumed.asked) == list(range(6, 11)) and got.encoded == 5
    torch.testing.assert_close(got.features.materialize(), _direct(encoder, images))


def test_keys_follow_the_file_the_preprocessing_and_duplicates(tmp_path, images) -> None:
    encoder = _encoder()
    store = FeatureStore(tmp_path / "store")
    store.encode(encoder, [file_key(p) for p in images], Loader(images))
    save_image(images[4], (1, 2, 3), size=(16, 16))  # rewritten file: new size or mtime
    os.utime(images[4], ns=(1, 1))
    loader = Loader(images)
    got = store.encode(encoder, [file_key(p) for p in images], loader)
    assert loader.asked == [4]
    torch.testing.assert_close(got.features[4], _direct(encoder, [images[4]])[0])
    other = Loader(images)
    store.encode(encoder, [file_key(p) for p in images], other, preprocessing="size=8")
    assert sorted(other.asked) == list(range(11))  # another preprocessing: its own keys
    twice = Loader(images)
    fresh = FeatureStore(tmp_path / "fresh")
    dup = fresh.encode(encoder, [file_key(images[0])] * 3 + [file_key(images[1])], twice)
    assert twice.asked == [0, 3] and dup.encoded == 2
    torch.testing.assert_close(dup.features[2], dup.features[0])


def test_corrupt_chunks_are_refused_or_rebuilt_and_stale_temporaries_removed(
        tmp_path, images) -> None:
    encoder = _encoder()
    store = FeatureStore(tmp_path / "store")
    keys = [file_key(p) for p in images]
    store.encode(encoder, keys, Loader(images), chunk_size=6)
    folder = store.folder(encoder)
    first, second = sorted(folder.glob("chunk-*.safetensors"))
    raw = bytearray(first.read_bytes())
    raw[-1] ^= 0xFF  # one flipped bit in the features: the digest catches it on read
    first.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="digest"):
        store.encode(encoder, keys, Loader(images), chunk_size=6).features.materialize()
    with safe_open(str(second), framework="pt") as f:
        lost = len(json.loads(f.metadata()["keys"]))
    second.write_bytes(second.read_bytes()[:50])  # truncated: removed and encoded again
    dead = folder / ".chunk-x.safetensors.999999999.abcd1234.tmp"
    dead.write_bytes(b"half")
    loader = Loader(images)
    store.encode(encoder, keys, loader, chunk_size=6)
    assert not dead.exists() and len(loader.asked) == lost


def test_streamed_dataset_batches_equal_the_in_memory_dataset(tmp_path, images) -> None:
    encoder = _encoder()
    store = FeatureStore(tmp_path / "store")
    got = store.encode(encoder, [file_key(p) for p in images], Loader(images), chunk_size=4)
    labels = torch.arange(11).float()
    streamed = StreamedFusionDataset([got.features, got.features], [got.mask, got.mask], labels)
    dense = FusionDataset([got.features.materialize()] * 2, [got.mask] * 2, labels)
    assert streamed.lengths == dense.lengths == (16, 16)
    assert streamed.feature_dims == dense.feature_dims == [5, 5]
    loader_a = torch.utils.data.DataLoader(streamed, batch_size=4, shuffle=True,
                                           generator=torch.Generator().manual_seed(0))
    loader_b = torch.utils.data.DataLoader(dense, batch_size=4, shuffle=True,
                                           generator=torch.Generator().manual_seed(0))
    for (xa, ma, ya), (xb, mb, yb) in zip(loader_a, loader_b, strict=True):
        torch.testing.assert_close(ya, yb)
        for a, b in zip(xa + ma, xb + mb, strict=True):
            torch.testing.assert_close(a, b)
    idx = torch.tensor([3, 1])
    torch.testing.assert_close(streamed.select(idx).inputs[0], dense.inputs[0][idx])
    with pytest.raises(ValueError, match=r"inputs\[0\] has shape"):
        StreamedFusionDataset([got.features], [got.mask], labels[:3])


def test_bad_arguments_are_refused(tmp_path, images) -> None:
    encoder = _encoder()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"FeatureStore root .* is a file"):
        FeatureStore(tmp_path / "file")
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(ValueError, match="chunk_size"):
        store.encode(encoder, [file_key(images[0])], Loader(images), chunk_size=0)
    with pytest.raises(ValueError, match="source_keys is empty"):
        store.encode(encoder, [], Loader(images))
    with pytest.raises(FileNotFoundError):
        file_key(tmp_path / "missing.png")
