"""A fusion model from Hugging Face as it is: BLIP image-text matching (text tokens cross-attend
to the image patches; the ITM head scores "no match" / "match"), from a tiny random config, with
only a lambda for argument order and output="itm_score". Oracles from definitions: the exact SII
equals the inclusion-exclusion sum over coalitions built by hand (token ids replaced by the pad id,
a patch's pixels by 0.0), special and padding tokens keep their ids in every forward call, and the
sampled estimate agrees with the exact value within its own standard error."""

from __future__ import annotations

import itertools

import pytest
import torch
from hf_fixtures import ATTENTION, BOS, EOS, IDS, PAD, SPECIAL, image_batch
from oracles import brute_sii
from torch import Tensor

from captum_interactions import ShapleyInteractionIndex, default_feature_mask, patch_grid_mask
from captum_interactions.adapters import token_players

transformers = pytest.importorskip("transformers", reason="needs the [hf] extra")

MATCH = 1  # itm_score[:, 1] is the "match" logit
N_TOKENS, N_PATCHES = 3, 4  # at most 3 real tokens per example; 2 x 2 patches of 16 x 16
F = N_TOKENS + N_PATCHES
# Real token positions per example (the oracle's own bookkeeping, not the library's mask).
TOKEN_POSITIONS = ([1, 2, 3], [1, 2])


@pytest.fixture(scope="module")
def blip():
    torch.manual_seed(0)
    # A wide initialisation (0.5 instead of 0.02) so the tiny random model has interactions
    # well above rounding; BLIP's default token ids lie outside this 50-token vocabulary.
    config = transformers.BlipConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "initializer_range": 0.5,
                     "bos_token_id": BOS, "sep_token_id": EOS, "pad_token_id": PAD},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16,
                       "initializer_range": 0.5},
        projection_dim=8, image_text_hidden_size=8, initializer_range=0.5)
    return transformers.BlipForImageTextRetrieval(config).eval().double()


@pytest.fixture(scope="module")
def pixels() -> Tensor:
    return image_batch()


def masks_of(blip) -> tuple[Tensor, Tensor]:
    return default_feature_mask((IDS, torch.zeros(2, 3, 32, 32)), overrides={
        0: token_players(ATTENTION, SPECIAL), 1: patch_grid_mask(32, 32, blip.config)})


def kwargs_of(blip) -> dict:
    return dict(additional_forward_args=(ATTENTION,), baselines=(PAD, 0.0),
                feature_mask=masks_of(blip), target=MATCH, output="itm_score")


def forward_of(blip):
    return lambda i, p, a: blip(input_ids=i, pixel_values=p, attention_mask=a)


def brute_force_sii(blip, pixels: Tensor, b: int) -> dict[tuple[int, int], float]:
    """SII of every pair of example b's players from the definition, with the coalition values
    from forward calls on inputs perturbed by hand. Players: the real tokens (library ids
    0, 1, ...) then the patches in row-major order (library ids 3..6)."""
    tokens = TOKEN_POSITIONS[b]
    players = [("token", pos) for pos in tokens] + [("patch", k) for k in range(N_PATCHES)]
    library_id = list(range(len(tokens))) + [N_TOKENS + k for k in range(N_PATCHES)]
    n = len(players)
    coalitions = list(itertools.product((False, True), repeat=n))
    ids = IDS[b].repeat(len(coalitions), 1)
    px = pixels[b].repeat(len(coalitions), 1, 1, 1)
    for row, present in enumerate(coalitions):
        for (kind, where), keep in zip(players, present, strict=True):
            if keep:
                continue
            if kind == "token":
                ids[row, where] = PAD
            else:
                r, c = divmod(where, 2)
                px[row, :, 16 * r:16 * (r + 1), 16 * c:16 * (c + 1)] = 0.0
    with torch.no_grad():
        scores = blip(input_ids=ids, pixel_values=px,
                      attention_mask=ATTENTION[b].repeat(len(coalitions), 1)).itm_score
    value = {present: float(scores[row, MATCH]) for row, present in enumerate(coalitions)}

    def v(members: frozenset[int]) -> float:
        return value[tuple(k in members for k in range(n))]

    return {(library_id[i], library_id[j]): brute_sii(v, n, i, j)
            for i, j in itertools.combinations(range(n), 2)}


def test_blip_itm_exact_sii_matches_the_definition(blip, pixels):
    """Shape (2, F, F) with F = real tokens + patches, symmetric, zero within a modality
    under pairs="cross", and every pair equal to the inclusion-exclusion sum computed from
    hand-built coalitions (also within a modality with pairs="all")."""
    sii = ShapleyInteractionIndex(forward_of(blip))
    exact = sii.attribute((IDS, pixels), method="exact", **kwargs_of(blip))
    assert exact.shape == (2, F, F) and exact.dtype == torch.float64
    assert torch.equal(exact, exact.transpose(1, 2))
    assert torch.equal(exact[:, :N_TOKENS, :N_TOKENS], torch.zeros(2, N_TOKENS, N_TOKENS))
    assert torch.equal(exact[:, N_TOKENS:, N_TOKENS:], torch.zeros(2, N_PATCHES, N_PATCHES))
    assert exact[:, :N_TOKENS, N_TOKENS:].abs().max() > 1e-2  # the fusion is not additive
    every = sii.attribute((IDS, pixels), method="exact", pairs="all", **kwargs_of(blip))
    torch.testing.assert_close(every[:, :N_TOKENS, N_TOKENS:], exact[:, :N_TOKENS, N_TOKENS:],
                               rtol=0, atol=1e-12)
    for b in range(2):
        oracle = brute_force_sii(blip, pixels, b)
        assert len(oracle) == (21 if b == 0 else 15)
        for (i, j), expected in oracle.items():
            got = every[b, i, j]
            assert abs(float(got) - expected) <= 1e-9 + 1e-9 * abs(expected), (b, i, j)
            if i < N_TOKENS <= j:
                assert abs(float(exact[b, i, j]) - expected) <= 1e-9 + 1e-9 * abs(expected)
    # Example 1 has two real tokens: player 2 is a dummy there (zero up to rounding), and the
    # oracle above, built without it, agrees on every other pair.
    assert every[1, 2].abs().max() < 1e-12


def test_blip_itm_sampled_agrees_with_exact_within_stderr(blip, pixels):
    sii = ShapleyInteractionIndex(forward_of(blip))
    exact = sii.attribute((IDS, pixels), method="exact", **kwargs_of(blip))
    # A budget of 2^F enumerates every coalition size: the exact values, up to rounding.
    full = sii.attribute((IDS, pixels), n_samples=2**F, **kwargs_of(blip))
    torch.testing.assert_close(full, exact, rtol=1e-8, atol=1e-10)
    # A budget of half of that really samples. One run's replicate stderr is itself noisy
    # here (a few coalitions dominate the residuals): over 240 seeds, 26% of single runs have
    # some entry beyond 5 stderr. The mean of 8 seeds against its pooled stderr
    # sqrt(sum stderr_k^2) / 8 is a calibrated check (30 groups of 8 seeds: max |z| 3.9).
    runs = [sii.attribute((IDS, pixels), n_samples=64, return_stderr=True, seed=seed,
                          **kwargs_of(blip)) for seed in range(8)]
    values = torch.stack([v for v, _ in runs]).mean(0)
    stderr = torch.stack([e for _, e in runs]).pow(2).sum(0).sqrt() / len(runs)
    cross = torch.zeros(F, F, dtype=torch.bool)
    cross[:N_TOKENS, N_TOKENS:] = True
    cross[N_TOKENS:, :N_TOKENS] = True
    live = cross.expand(2, F, F).clone()
    live[1, 2, :] = live[1, :, 2] = False  # example 1's dummy player
    assert (stderr[live] > 0).all()  # really sampled
    assert not torch.equal(runs[0][0], runs[1][0])  # the seeds differ
    assert ((values - exact).abs() <= 5 * stderr + 1e-9).all(), ((values - exact) / stderr)
    z = ((values - exact) / stderr)[live]
    assert z.pow(2).mean().sqrt() < 3.0
    assert torch.equal(values[:, ~cross], torch.zeros_like(values[:, ~cross]))


def test_blip_special_tokens_keep_their_ids_and_attention_is_repeated(blip, pixels):
    """Every forward call: the -1 positions (BOS, EOS, padding) hold their ids, the other
    positions their id or the pad id, each patch its pixels or zeros; the attention mask is one
    copy per coalition row; the 2^F coalitions of each example are all distinct."""
    seen: list[tuple[Tensor, Tensor, Tensor]] = []

    def recording(i: Tensor, p: Tensor, a: Tensor):
        seen.append((i.clone(), p.clone(), a.clone()))
        return blip(input_ids=i, pixel_values=p, attention_mask=a)

    kwargs = kwargs_of(blip)
    ShapleyInteractionIndex(recording).attribute((IDS, pixels), method="exact",
                                                 perturbations_per_eval=50, **kwargs)
    assert len(seen) > 1  # several forward calls, each checked
    for ids, px, attention in seen:
        assert ids.shape[0] == px.shape[0] == attention.shape[0]
        assert ids.shape[0] % 2 == 0
    ids = torch.cat([s[0] for s in seen]).view(-1, 2, IDS.shape[1])
    px = torch.cat([s[1] for s in seen]).view(-1, 2, 3, 32, 32)
    attention = torch.cat([s[2] for s in seen]).view(-1, 2, IDS.shape[1])
    rows = ids.shape[0]
    assert rows == 2**F
    assert torch.equal(attention, ATTENTION.expand(rows, -1, -1))
    fixed = (kwargs["feature_mask"][0] < 0).expand_as(IDS)
    assert torch.equal(ids[:, fixed], IDS[fixed].expand(rows, -1))
    player = ~fixed
    kept = ids[:, player] == IDS[player]
    assert (kept | (ids[:, player] == PAD)).all()
    patches = px.unflatten(3, (2, 16)).unflatten(5, (2, 16))  # (rows, 2, 3, r, 16, c, 16)
    original = pixels.unflatten(2, (2, 16)).unflatten(4, (2, 16))
    same = (patches == original).all(dim=(2, 4, 6))  # (rows, 2, r, c)
    zero = (patches == 0).all(dim=(2, 4, 6))
    assert (same | zero).all()
    for b in range(2):
        tokens = (ids[:, b, TOKEN_POSITIONS[b]] == IDS[b, TOKEN_POSITIONS[b]]).long()
        pattern = torch.cat([tokens, same[:, b].flatten(1).long()], 1)
        distinct = torch.unique(pattern, dim=0).shape[0]
        assert distinct == 2 ** pattern.shape[1]  # example 1: each coalition twice (dummy)


def test_blip_output_selector_errors(blip, pixels):
    kwargs = kwargs_of(blip)
    kwargs.pop("output")
    sii = ShapleyInteractionIndex(forward_of(blip))
    with pytest.raises(ValueError, match=r"output='itm_scores' is not in the forward output "
                                         r"\(\[.*'itm_score'.*\]\)"):
        sii.attribute((IDS, pixels), method="exact", output="itm_scores", **kwargs)
    with pytest.raises(TypeError, match=r"mapping without 'logits'.*itm_score.*pass output="):
        sii.attribute((IDS, pixels), method="exact", **kwargs)
    by_callable = sii.attribute((IDS, pixels), method="exact",
                                output=lambda out: out.itm_score[:, MATCH], **{
                                    k: v for k, v in kwargs.items() if k != "target"})
    by_name = sii.attribute((IDS, pixels), method="exact", output="itm_score", **kwargs)
    torch.testing.assert_close(by_callable, by_name, rtol=0, atol=0)
