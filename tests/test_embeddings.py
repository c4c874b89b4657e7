"""EmbeddingInputs: token embeddings explained through a hook on the embedding layer (tiny random
transformers configs, never a download).

Oracle: the embedding layer maps id i at position t to a vector, so substituting at position t
the embedding of the pad id is, for the model, the same as substituting the pad id itself. The
model's score (and every SII value) on embeddings with the pad embedding as baseline must equal
the one on ids with the pad id as baseline."""

from __future__ import annotations

import pytest
import torch
from hf_fixtures import ATTENTION, BOS, EOS, IDS, PAD, SPECIAL
from torch import Tensor

from captum_interactions import ShapleyInteractionIndex, default_feature_mask, patch_grid_mask
from captum_interactions.adapters import EmbeddingInputs, contrastive_score, token_players

transformers = pytest.importorskip("transformers", reason="needs the [hf] extra")


def token_layer(clip) -> torch.nn.Module:
    return clip.text_model.embeddings.token_embedding


def test_clip_embeddings_reproduce_the_model_and_pad_embeddings_equal_pad_ids(clip, pixels):
    score = contrastive_score(clip)
    with torch.no_grad(), EmbeddingInputs(token_layer(clip), IDS) as emb:
        f = emb.forward(score)
        assert emb.embeddings.shape == (2, 6, 16) and not emb.embeddings.requires_grad
        torch.testing.assert_close(emb.embeddings, token_layer(clip).weight[IDS])
        # (a) the unmodified embeddings give the model's own score
        torch.testing.assert_close(f(emb.embeddings, pixels, ATTENTION),
                                   score(IDS, pixels, ATTENTION), rtol=0, atol=0)
        # (b) R = 3 rows x B = 2: the real tokens 1, 2 and both replaced by the pad embedding
        # (not the EOS: CLIP finds it by id, so its embedding and its id are not the same)
        pad = emb.embed(torch.zeros_like(IDS))
        rows, ids_rows = [], []
        for t in ([1], [2], [1, 2]):
            e, i = emb.embeddings.clone(), IDS.clone()
            e[:, t], i[:, t] = pad[:, t], PAD
            rows.append(e)
            ids_rows.append(i)
        got = f(torch.cat(rows), pixels.repeat(3, 1, 1, 1), ATTENTION.repeat(3, 1))
        want = score(torch.cat(ids_rows), pixels.repeat(3, 1, 1, 1), ATTENTION.repeat(3, 1))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        # the substitution matters: the replaced rows differ from the original scores
        assert (got - score(IDS, pixels, ATTENTION).repeat(3)).abs().min() > 1e-6


def test_clip_sii_on_embeddings_with_pad_embedding_baseline_equals_sii_on_ids(clip, pixels):
    score = contrastive_score(clip)
    players = {0: token_players(ATTENTION, SPECIAL), 1: patch_grid_mask(32, 32, clip.config)}
    id_masks = default_feature_mask((IDS, pixels), overrides=players)
    on_ids = ShapleyInteractionIndex(score).attribute(
        (IDS, pixels), baselines=(PAD, 0.0), additional_forward_args=(ATTENTION,),
        feature_mask=id_masks, method="exact")
    with EmbeddingInputs(token_layer(clip), IDS) as emb:
        text_mask, image_mask = default_feature_mask((emb.embeddings, pixels), overrides=players)
        # A (B, T) token mask does not broadcast to (B, T, H) embeddings: add the H dim.
        sii = ShapleyInteractionIndex(emb.forward(score))
        kwargs = dict(baselines=(emb.embed(torch.zeros_like(IDS)), 0.0),
                      additional_forward_args=(ATTENTION,), method="exact")
        with pytest.raises(ValueError, match="does not broadcast"):
            sii.attribute((emb.embeddings, pixels), feature_mask=(text_mask, image_mask),
                          **kwargs)
        on_embeddings = sii.attribute((emb.embeddings, pixels),
                                      feature_mask=(text_mask.unsqueeze(-1), image_mask),
                                      **kwargs)
    assert on_ids.shape == (2, 7, 7) and on_ids[:, :3, 3:].abs().max() > 1e-6
    torch.testing.assert_close(on_embeddings, on_ids, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def bart():
    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=16, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = transformers.BartModel(config).eval().double()
    model.set_input_embeddings(model.shared)  # one module for the encoder and decoder ids
    assert model.encoder.embed_tokens is model.shared is model.decoder.embed_tokens
    return model


def test_shared_encoder_decoder_embedding_only_the_encoder_call_is_replaced(bart):
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    attention = (ids != 1).long()
    decoder_ids = torch.tensor([[2, 0, 11], [2, 0, 12]])  # another length
    shifted = transformers.models.bart.modeling_bart.shift_tokens_right(ids, 1, 2)  # same shape

    def forward(i: Tensor, a: Tensor, d: Tensor | None) -> Tensor:
        return bart(input_ids=i, attention_mask=a, decoder_input_ids=d).last_hidden_state

    with torch.no_grad(), EmbeddingInputs(bart.get_input_embeddings(), ids) as emb:
        # embed_scale is part of the layer: the substituted embeddings include it
        torch.testing.assert_close(emb.embeddings, bart.shared.weight[ids] * 4.0)
        noise = torch.randn(2, 2, 5, 16, generator=torch.Generator().manual_seed(3),
                            dtype=torch.float64)
        rows = (emb.embeddings + noise).reshape(4, 5, 16)  # R = 2 rows of B = 2
        f = emb.forward(forward)
        for dec in (decoder_ids, shifted):
            got = f(rows, attention.repeat(2, 1), dec.repeat(2, 1))
            # Oracle: the encoder fed the embeddings directly, the decoder its own ids.
            want = bart(inputs_embeds=rows, attention_mask=attention.repeat(2, 1),
                        decoder_input_ids=dec.repeat(2, 1)).last_hidden_state
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
            assert (got - forward(ids.repeat(2, 1), attention.repeat(2, 1),
                                  dec.repeat(2, 1))).abs().max() > 1e-6
        # The model's default decoder ids (input_ids shifted right) are left alone too.
        got = f(rows, attention.repeat(2, 1), None)
        want = bart(inputs_embeds=rows, attention_mask=attention.repeat(2, 1),
                    decoder_input_ids=shifted.repeat(2, 1)).last_hidden_state
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_hook_is_inert_outside_the_wrapped_forward_and_gradients_flow(clip, pixels):
    score = contrastive_score(clip)
    other = torch.tensor([[BOS, 3, 4, EOS, PAD, PAD], [BOS, 10, 11, 12, 13, EOS]])
    with torch.no_grad():
        before = score(IDS, pixels, ATTENTION), score(other, pixels, (other != PAD).long())
    emb = EmbeddingInputs(token_layer(clip), IDS)
    f = emb.forward(score)

    def check_unchanged() -> None:
        with torch.no_grad():
            torch.testing.assert_close(score(IDS, pixels, ATTENTION), before[0], rtol=0, atol=0)
            torch.testing.assert_close(score(other, pixels, (other != PAD).long()), before[1],
                                       rtol=0, atol=0)

    check_unchanged()
    moved = emb.embeddings + torch.randn(emb.embeddings.shape, dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        changed = f(moved, pixels, ATTENTION)
    assert (changed - before[0]).abs().min() > 1e-6
    check_unchanged()  # the substitution ended with the call

    def failing(ids: Tensor, px: Tensor, a: Tensor) -> Tensor:
        score(ids, px, a)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        emb.forward(failing)(moved, pixels, ATTENTION)
    check_unchanged()  # ... even when forward_func raised
    # Gradients reach the substituted embeddings (the hook returns them as they are).
    leaf = emb.embeddings.clone().requires_grad_()
    f(leaf, pixels, ATTENTION).sum().backward()
    assert leaf.grad is not None and leaf.grad[:, 1:4].abs().sum() > 0
    emb.remove()
    emb.remove()  # idempotent
    check_unchanged()
    with pytest.raises(RuntimeError, match=r"was removed.*Create a new EmbeddingInputs"):
        f(emb.embeddings, pixels, ATTENTION)
    with pytest.raises(RuntimeError, match="was removed"):
        emb.forward(score)
    with EmbeddingInputs(token_layer(clip), IDS) as emb2:
        g = emb2.forward(score)
    with pytest.raises(RuntimeError, match="was removed"):
        g(emb2.embeddings, pixels, ATTENTION)


def test_wrong_layer_and_bad_arguments_raise_clear_errors(clip, pixels):
    score = contrastive_score(clip)
    stray = torch.nn.Embedding(50, 16).double()  # never called by the model
    with EmbeddingInputs(stray, IDS) as emb, pytest.raises(
            RuntimeError, match=r"layer Embedding\(50, 16\) was never called.*"
                                r"get_input_embeddings"):
        emb.forward(score)(emb.embeddings, pixels, ATTENTION)
    with EmbeddingInputs(token_layer(clip), IDS) as emb:
        ignores_ids = emb.forward(lambda ids, px, a: score(IDS.flip(0), px, a))
        with pytest.raises(RuntimeError, match=r"was called 1 time\(s\), never with the ids"):
            ignores_ids(emb.embeddings, pixels, ATTENTION)
        f = emb.forward(score)
        e = emb.embeddings
        with pytest.raises(ValueError, match=r"shape \(6, 16\); expected \(R \* B, T, H\)"):
            f(e[0], pixels, ATTENTION)
        with pytest.raises(ValueError, match=r"shape \(3, 6, 16\)"):
            f(torch.cat([e, e[:1]]), pixels, ATTENTION)
        with pytest.raises(ValueError, match=r"shape \(2, 5, 16\)"):
            f(e[:, :5], pixels, ATTENTION)
        with pytest.raises(ValueError, match=r"shape \(2, 6, 8\)"):
            f(e[..., :8], pixels, ATTENTION)
        with pytest.raises(TypeError, match=r"torch.float32.*\.to\(dtype=torch.float64"):
            f(e.float(), pixels, ATTENTION)
        with pytest.raises(TypeError, match="embeddings must be a tensor"):
            f(e.numpy(), pixels, ATTENTION)
        with pytest.raises(TypeError, match="forward_func must be callable"):
            emb.forward(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ids must be an integer tensor"):
            emb.embed(torch.zeros(2, 6))
    with pytest.raises(TypeError, match="layer must be the model's token embedding module"):
        EmbeddingInputs(token_layer(clip).weight, IDS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"input_ids must be an integer tensor.*torch.float32"):
        EmbeddingInputs(token_layer(clip), IDS.float())
    with pytest.raises(TypeError, match=r"input_ids must be an integer tensor.*list"):
        EmbeddingInputs(token_layer(clip), IDS.tolist())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\).*\(6,\)"):
        EmbeddingInputs(token_layer(clip), IDS[0])
    with pytest.raises(ValueError, match=r"layer Identity\(\) returned torch.int64 \(2, 6\).*"
                                         r"expected float embeddings \(B, T, H\)"):
        EmbeddingInputs(torch.nn.Identity(), IDS)  # not an embedding layer
