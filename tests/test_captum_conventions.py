"""Captum conventions: input and target formats, additional forward args, feature masks, pairs,
batching, progress bars, the row budget and ``perturbations_per_eval``.

Every check compares against an oracle: a brute-force SII written from the definition, exact
mode, or the same call written another way. No number is copied from a previous run.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import pytest
import torch
from oracles import brute_sii
from torch import Tensor, nn

from captum_interactions import (
    RedundancyGap,
    ShapleyInteractionIndex,
    group_mask,
    patch_grid_mask,
)
from captum_interactions.testing import random_polynomial_game

BOTH = [ShapleyInteractionIndex, RedundancyGap]
N_TEXT, N_IMAGE, HIDDEN = 3, 3, 2
F = N_TEXT + N_IMAGE
# Sampling tests need more players: with F = 6 any budget above 2^6 = 64 rows is exact.
BIG_TEXT, BIG_IMAGE = 5, 4
BIG_F = BIG_TEXT + BIG_IMAGE


# --------------------------------------------------------------------------- fixtures


class TwoTower(nn.Module):
    """text (B, T, 2), image (B, P, 2) -> (B, C) logits (float64), with interactions of every
    order within and across modalities."""

    def __init__(self, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        f64 = dict(dtype=torch.float64)
        self.w_text = nn.Parameter(torch.randn(HIDDEN, 4, generator=gen, **f64))
        self.w_image = nn.Parameter(torch.randn(HIDDEN, 4, generator=gen, **f64))
        self.head = nn.Parameter(torch.randn(4, n_classes, generator=gen, **f64))

    def forward(self, text: Tensor, image: Tensor) -> Tensor:
        t = torch.tanh(text @ self.w_text).sum(1)
        i = torch.tanh(image @ self.w_image).sum(1)
        return (torch.tanh(t) * torch.tanh(i) + torch.tanh(t + 0.5 * i)) @ self.head


def make_inputs(batch: int = 3, n_text: int = N_TEXT, n_image: int = N_IMAGE, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, n_text, HIDDEN, generator=gen, dtype=torch.float64)
    image = torch.randn(batch, n_image, HIDDEN, generator=gen, dtype=torch.float64)
    return text, image


def brute_force_sii(value: Callable[[frozenset[int]], float], n: int) -> Tensor:
    """SII of every pair from the Grabisch-Roubens definition (tests/oracles.py): (n, n)."""
    cached = functools.lru_cache(maxsize=None)(value)
    out = torch.zeros(n, n, dtype=torch.float64)
    for i, j in itertools.combinations(range(n), 2):
        out[i, j] = out[j, i] = brute_sii(cached, n, i, j)
    return out


def exact_sii(model, inputs, **kwargs) -> Tensor:
    return ShapleyInteractionIndex(model).attribute(inputs, method="exact", **kwargs)


def assert_symmetric_zero_diagonal(values: Tensor) -> None:
    assert torch.equal(values, values.transpose(1, 2))
    assert torch.all(values.diagonal(dim1=1, dim2=2) == 0)


def cross_matrix(n_text: int, n_image: int) -> Tensor:
    modality = torch.tensor([0] * n_text + [1] * n_image)
    return modality[:, None] != modality[None, :]


# --------------------------------------------------------------------------- oracle sanity


def test_exact_mode_matches_the_brute_force_definition():
    """Anchors the exact oracle used below to the textbook formula on the real model."""
    model = TwoTower()
    text, image = make_inputs(batch=2)
    values = exact_sii(model, (text, image), target=1, pairs="all")
    for b in range(2):

        def value(s: frozenset[int], b: int = b) -> float:
            keep = torch.tensor([k in s for k in range(F)], dtype=torch.float64)
            t = text[b : b + 1] * keep[:N_TEXT, None]
            i = image[b : b + 1] * keep[N_TEXT:, None]
            return float(model(t, i)[0, 1].detach())

        torch.testing.assert_close(values[b], brute_force_sii(value, F), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("method", ["exact", "sampling"])
def test_single_tensor_equals_one_tuple(method):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 3, generator=gen, dtype=torch.float64)
    weight = torch.randn(3, generator=gen, dtype=torch.float64)

    def model(inp: Tensor) -> Tensor:
        h = torch.tanh(inp @ weight)  # (B, 8)
        return h.sum(1) + h[:, 0] * h[:, 1] * h[:, 2] - h[:, 3] * h[:, 4] * h[:, 7]

    sii = ShapleyInteractionIndex(model)
    kwargs = dict(pairs="all", method=method, n_samples=64)
    from_tensor = sii.attribute(x, **kwargs)
    from_tuple = sii.attribute((x,), **kwargs)
    assert type(from_tensor) is Tensor
    assert from_tensor.shape == (2, 8, 8)
    assert torch.equal(from_tensor, from_tuple)
    assert from_tensor.abs().sum() > 0
    values, stderr = sii.attribute(x, return_stderr=True, **kwargs)
    assert type(values) is Tensor and type(stderr) is Tensor
    assert torch.equal(values, from_tensor) and stderr.shape == values.shape
    assert (stderr.abs().sum() > 0) == (method == "sampling")


@pytest.mark.parametrize("cls", BOTH)
def test_single_tensor_equals_one_tuple_rg(cls):
    model = TwoTower()
    text, image = make_inputs(batch=2)

    def joined(x: Tensor) -> Tensor:
        return model(x[:, :N_TEXT], x[:, N_TEXT:])

    x = torch.cat([text, image], dim=1)
    kwargs = dict(pairs="all", method="exact", target=0)
    from_tensor = cls(joined).attribute(x, **kwargs)
    assert type(from_tensor) is Tensor
    assert torch.equal(from_tensor, cls(joined).attribute((x,), **kwargs))
    # The same players split over two inputs: the same values.
    assert torch.allclose(from_tensor, cls(model).attribute((text, image), **kwargs))


def test_output_dtype_follows_the_forward_output():
    model = TwoTower()
    text, image = make_inputs(batch=2)
    model32 = TwoTower().float()
    v64 = exact_sii(model, (text, image), target=0)
    v32 = exact_sii(model32, (text.float(), image.float()), target=0)
    assert v64.dtype == torch.float64 and v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- target


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    "target",
    [[2, 0, 1], torch.tensor([2, 0, 1]), torch.tensor([[2], [0], [1]]), [(2,), (0,), (1,)]],
    ids=["list", "tensor", "column-tensor", "list-of-tuples"],
)
def test_per_example_targets_equal_single_example_calls(cls, target):
    model = TwoTower()
    text, image = make_inputs(batch=3)
    batched = cls(model).attribute((text, image), target=target, method="exact")
    per_class = [2, 0, 1]
    for b, t in enumerate(per_class):
        alone = cls(model).attribute((text[b : b + 1], image[b : b + 1]), target=t,
                                     method="exact")
        torch.testing.assert_close(batched[b], alone[0], rtol=1e-10, atol=1e-12)
    # ... and the per-example target matters: a shared target gives other values.
    shared = cls(model).attribute((text, image), target=2, method="exact")
    assert not torch.allclose(batched[1], shared[1])


@pytest.mark.parametrize("cls", BOTH)
def test_scalar_target_forms_agree(cls):
    model = TwoTower()
    text, image = make_inputs(batch=3)
    attribute = lambda target: cls(model).attribute(  # noqa: E731
        (text, image), target=target, method="exact", pairs="all"
    )
    reference = attribute(1)
    for same in [(1,), torch.tensor(1), torch.tensor([1]), [1, 1, 1], -2]:
        torch.testing.assert_close(attribute(same), reference, rtol=0, atol=0)
    # Oracle: a model that returns only column 1 needs no target.
    torch.testing.assert_close(
        cls(lambda t, i: model(t, i)[:, 1]).attribute((text, image), method="exact",
                                                      pairs="all"),
        reference, rtol=0, atol=0,
    )


def test_tuple_target_indexes_output_dims_one_to_k():
    base = TwoTower(n_classes=6)
    text, image = make_inputs(batch=3)

    def grid(t: Tensor, i: Tensor) -> Tensor:  # (B, 2, 3) output
        return base(t, i).view(-1, 2, 3)

    values = exact_sii(grid, (text, image), target=(1, 2))
    oracle = exact_sii(lambda t, i: grid(t, i)[:, 1, 2], (text, image))
    torch.testing.assert_close(values, oracle, rtol=0, atol=0)
    per_example = exact_sii(grid, (text, image), target=[(1, 2), (0, 0), (1, 0)])
    for b, (r, c) in enumerate([(1, 2), (0, 0), (1, 0)]):
        alone = exact_sii(lambda t, i, r=r, c=c: grid(t, i)[:, r, c],
                          (text[b : b + 1], image[b : b + 1]))
        torch.testing.assert_close(per_example[b], alone[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(), (1,)], ids=["(B,)", "(B, 1)"])
def test_no_target_for_one_value_per_example(shape):
    model = TwoTower()
    text, image = make_inputs(batch=2)
    single = lambda t, i: model(t, i)[:, 0].reshape((-1, *shape))  # noqa: E731
    torch.testing.assert_close(
        exact_sii(single, (text, image)), exact_sii(model, (text, image), target=0),
        rtol=0, atol=0,
    )


# --------------------------------------------------------------------------- forward args


class ScaledTwoTower(TwoTower):
    """forward(text, image, scale (B, 1), mode: str, power: int)."""

    def forward(self, text, image, scale, mode, power):  # type: ignore[override]
        out = super().forward(text, image) * scale
        if mode == "square":
            out = out**power
        return out


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("method", ["exact", "sampling"])
def test_additional_forward_args_equal_a_closure(cls, method):
    model = ScaledTwoTower()
    text, image = make_inputs(batch=3, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    scale = torch.tensor([[0.5], [2.0], [-1.5]], dtype=torch.float64)
    kwargs = dict(method=method, n_samples=300, target=1, pairs="all", seed=3)
    values = cls(model).attribute(
        (text, image), additional_forward_args=(scale, "square", 2), **kwargs
    )
    for b in range(3):

        def closure(t: Tensor, i: Tensor, b: int = b) -> Tensor:
            return model(t, i, scale[b : b + 1].expand(t.shape[0], 1), "square", 2)

        alone = cls(closure).attribute((text[b : b + 1], image[b : b + 1]), **kwargs)
        torch.testing.assert_close(values[b], alone[0], rtol=1e-9, atol=1e-12)
    # The extra arguments are really used.
    plain = cls(model).attribute(
        (text, image), additional_forward_args=(scale, "none", 2), **kwargs
    )
    assert not torch.allclose(values, plain)


def test_single_non_tuple_additional_forward_arg():
    model = TwoTower()
    text, image = make_inputs(batch=2)
    bias = torch.tensor([[1.0], [-3.0]], dtype=torch.float64)

    def with_bias(t: Tensor, i: Tensor, b: Tensor) -> Tensor:
        return model(t, i)[:, 0] * b[:, 0]

    values = exact_sii(with_bias, (text, image), additional_forward_args=bias)
    oracle = exact_sii(model, (text, image), target=0) * bias.view(-1, 1, 1)
    torch.testing.assert_close(values, oracle, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- feature_mask


@pytest.mark.parametrize("cls", BOTH)
def test_grouping_mask_equals_a_model_with_grouped_input(cls):
    """Text tokens {0, 2} and {1, 3} are two players; the oracle model receives the text
    already grouped as (B, 2, 2, H) with one player per group (a 4-D input has no default
    players, so its mask is explicit)."""
    model = TwoTower()
    text, image = make_inputs(batch=2, n_text=4, n_image=2)
    order = torch.tensor([0, 2, 1, 3])
    inverse = torch.argsort(order)
    masks = (torch.tensor([0, 1, 0, 1]).view(1, 4, 1), torch.tensor([2, 3]).view(1, 2, 1))
    values = cls(model).attribute(
        (text, image), feature_mask=masks, method="exact", target=2, pairs="all"
    )

    def grouped_model(grouped: Tensor, i: Tensor) -> Tensor:
        return model(grouped.reshape(-1, 4, HIDDEN)[:, inverse], i)

    grouped = text[:, order].reshape(2, 2, 2, HIDDEN)
    per_group = (torch.arange(2).view(1, 2, 1, 1), torch.tensor([2, 3]).view(1, 2, 1))
    oracle = cls(grouped_model).attribute((grouped, image), method="exact", target=2,
                                          pairs="all", feature_mask=per_group)
    assert values.shape == (2, 4, 4)
    torch.testing.assert_close(values, oracle, rtol=1e-10, atol=1e-12)
    assert values.abs().sum() > 0


@pytest.mark.parametrize("cls", BOTH)
def test_mask_with_batch_dim_one_equals_mask_with_batch_dim_b(cls):
    model = TwoTower()
    text, image = make_inputs(batch=3)
    small = (torch.tensor([[2, 0, 1]]).unsqueeze(2), torch.tensor([[5, 3, 4]]).unsqueeze(2))
    full = (small[0].expand(3, N_TEXT, HIDDEN), small[1].expand(3, N_IMAGE, HIDDEN).clone())
    no_batch = (small[0][0], small[1][0])  # (T, 1): broadcast like Captum
    kwargs = dict(method="exact", target=0, pairs="all")
    reference = cls(model).attribute((text, image), feature_mask=small, **kwargs)
    for mask in (full, no_batch):
        assert torch.equal(cls(model).attribute((text, image), feature_mask=mask, **kwargs),
                           reference)
    # Oracle: the permuted ids are the default players, renumbered.
    default = cls(model).attribute((text, image), **kwargs)
    perm = torch.tensor([2, 0, 1, 5, 3, 4])  # perm[position] = player id
    torch.testing.assert_close(reference[:, perm][:, :, perm], default, rtol=1e-10, atol=1e-12)


def test_patch_grid_mask_and_group_mask_documented_ids():
    assert torch.equal(
        patch_grid_mask(4, 4, 2)[0, 0],
        torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]),
    )
    assert patch_grid_mask(4, 6, (2, 3), offset=5).shape == (1, 1, 4, 6)
    assert torch.equal(
        patch_grid_mask(4, 6, (2, 3), offset=5)[0, 0],
        torch.tensor([[5] * 3 + [6] * 3] * 2 + [[7] * 3 + [8] * 3] * 2),
    )
    assert patch_grid_mask(4, 4, 2).dtype == torch.long
    assert torch.equal(group_mask([2, 3], offset=4), torch.tensor([[4, 4, 5, 5, 5]]))
    assert torch.equal(group_mask((1, 1, 2)), torch.tensor([[0, 1, 2, 2]]))
    with pytest.raises(ValueError, match="patch_size"):
        patch_grid_mask(4, 5, 2)
    with pytest.raises(ValueError, match="group_sizes"):
        group_mask([2, 0])


def test_patch_and_group_masks_work_for_images_and_vectors():
    """Image (B, 3, 4, 4) with 2x2 patches (players 0-3), vector (B, 5) in groups [2, 3]
    (players 4, 5). The oracle zeroes the pixels and entries of absent players by hand."""
    gen = torch.Generator().manual_seed(4)
    img = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    vec = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    w_img = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    w_vec = torch.randn(5, generator=gen, dtype=torch.float64)

    def model(image: Tensor, vector: Tensor) -> Tensor:
        a = torch.tanh((image * w_img).sum((1, 2, 3)))
        b = torch.tanh(vector @ w_vec)
        return a * b + torch.tanh(image[:, 0, :2, :2].sum((1, 2)) * vector[:, 3])

    masks = (patch_grid_mask(4, 4, 2), group_mask([2, 3], offset=4))
    values = ShapleyInteractionIndex(model).attribute(
        (img, vec), feature_mask=masks, method="exact", pairs="all"
    )
    assert values.shape == (2, 6, 6)
    for b in range(2):

        def value(s: frozenset[int], b: int = b) -> float:
            image, vector = img[b : b + 1].clone(), vec[b : b + 1].clone()
            for patch in range(4):
                if patch not in s:
                    r, c = 2 * (patch // 2), 2 * (patch % 2)
                    image[..., r : r + 2, c : c + 2] = 0
            if 4 not in s:
                vector[:, :2] = 0
            if 5 not in s:
                vector[:, 2:] = 0
            return float(model(image, vector)[0])

        torch.testing.assert_close(values[b], brute_force_sii(value, 6), rtol=1e-9,
                                   atol=1e-12)
    # Cross pairs of the two inputs, and the vector alone with its own group mask.
    cross = ShapleyInteractionIndex(model).attribute((img, vec), feature_mask=masks,
                                                     method="exact")
    assert torch.equal(cross[:, :4, 4:], values[:, :4, 4:])
    assert torch.all(cross[:, :4, :4] == 0) and torch.all(cross[:, 4:, 4:] == 0)
    def vector_model(vector: Tensor) -> Tensor:
        return torch.tanh(vector @ w_vec) * vector[:, 3]

    alone = ShapleyInteractionIndex(vector_model).attribute(
        vec, feature_mask=group_mask([2, 3]), method="exact", pairs="all"
    )
    assert alone.shape == (2, 2, 2)
    head, tail = vec.clone(), vec.clone()
    head[:, 2:] = 0
    tail[:, :2] = 0
    oracle = vector_model(vec) - vector_model(head) - vector_model(tail)  # v(empty) = 0
    torch.testing.assert_close(alone[:, 0, 1], oracle, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("method", ["exact", "sampling"])
def test_pairs_all_cross_and_explicit_agree(cls, method):
    model = TwoTower()
    text, image = make_inputs(batch=2, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    kwargs = dict(method=method, target=0, n_samples=300, seed=1)
    all_pairs = cls(model).attribute((text, image), pairs="all", **kwargs)
    cross = cls(model).attribute((text, image), pairs="cross", **kwargs)
    explicit = torch.tensor([[0, 7], [8, 1], [1, 2]])
    chosen = cls(model).attribute((text, image), pairs=explicit, **kwargs)

    for values in (all_pairs, cross, chosen):
        assert values.shape == (2, BIG_F, BIG_F)
        assert_symmetric_zero_diagonal(values)
    off_diagonal = all_pairs[:, ~torch.eye(BIG_F, dtype=torch.bool)]
    if cls is ShapleyInteractionIndex:
        assert torch.all(off_diagonal != 0)
    else:  # RG >= 0, and zero for pairs without redundancy
        assert torch.all(off_diagonal >= 0) and torch.any(off_diagonal > 0)
    is_cross = cross_matrix(BIG_TEXT, BIG_IMAGE)
    is_chosen = torch.zeros(BIG_F, BIG_F, dtype=torch.bool)
    is_chosen[explicit[:, 0], explicit[:, 1]] = is_chosen[explicit[:, 1], explicit[:, 0]] = True
    for values, requested in ((cross, is_cross), (chosen, is_chosen)):
        assert torch.all(values[:, ~requested] == 0)
        if cls is ShapleyInteractionIndex or method == "exact":
            # SII shares every coalition among all pairs; RG-exact is a per-pair formula.
            torch.testing.assert_close(values[:, requested], all_pairs[:, requested],
                                       rtol=1e-12, atol=1e-12)
        else:  # RG sampled: another pair set draws other quartets
            assert torch.any(values[:, requested] != 0)


def test_rg_candidates_pick_most_negative_sii_pairs():
    model = TwoTower()
    text, image = make_inputs(batch=2)
    kwargs = dict(target=0, n_samples=512, pairs="all")
    values = RedundancyGap(model).attribute((text, image), candidates=3, context="full",
                                            **kwargs)
    sii = ShapleyInteractionIndex(model).attribute((text, image), **kwargs)
    full = RedundancyGap(model).attribute((text, image), context="full", **kwargs)
    upper = torch.triu(torch.ones(F, F, dtype=torch.bool), diagonal=1)
    for b in range(2):
        top = (-sii[b][upper]).topk(3).indices
        chosen = torch.zeros(int(upper.sum()), dtype=torch.bool)
        chosen[top] = True
        torch.testing.assert_close(values[b][upper][chosen], full[b][upper][chosen])
        assert torch.all(values[b][upper][~chosen] == 0)


# --------------------------------------------------------------------------- batching


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("method", ["exact", "sampling"])
def test_batch_of_one_equals_row_of_batch(cls, method):
    model = TwoTower()
    text, image = make_inputs(batch=3, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    kwargs = dict(method=method, target=1, n_samples=300, seed=2, pairs="all")
    batched, err = cls(model).attribute((text, image), return_stderr=True, **kwargs)
    for b in range(3):
        alone, alone_err = cls(model).attribute(
            (text[b : b + 1], image[b : b + 1]), return_stderr=True, **kwargs
        )
        assert alone.shape == (1, BIG_F, BIG_F)
        torch.testing.assert_close(alone[0], batched[b], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(alone_err[0], err[b], rtol=1e-9, atol=1e-12)


def test_show_progress_runs_and_changes_nothing(capsys):
    model = TwoTower()
    text, image = make_inputs(batch=2, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    kwargs = dict(target=0, n_samples=200)
    quiet = ShapleyInteractionIndex(model).attribute((text, image), **kwargs)
    shown = ShapleyInteractionIndex(model).attribute((text, image), show_progress=True,
                                                     **kwargs)
    assert torch.equal(quiet, shown)
    RedundancyGap(model).attribute((text, image), show_progress=True, candidates=2, **kwargs)
    ShapleyInteractionIndex(model).attribute((text[:, :3], image[:, :3]), show_progress=True,
                                             method="exact", target=0)
    assert "coal" in capsys.readouterr().err


# --------------------------------------------------------------------------- budget


@pytest.mark.parametrize("n", [5, 6, 8, 9])
def test_rows_never_exceed_n_samples(n):
    """Odd and even n (a paired middle size n/2 exists only for even n), budgets at the
    minimum, just above it, in between, and beyond 2^n."""
    game = random_polynomial_game(n, seed=n)
    x = torch.ones(1, n, 1)
    n_pairs = n * (n - 1) // 2
    budgets = sorted({3 * n, 3 * n + 1, 4 * n + 3, 8 * n_pairs + 5, 2**n - 3, 2**n + 7})
    for budget in budgets:
        for paired in (True, False):
            game.n_rows = 0
            ShapleyInteractionIndex(game).attribute(x, pairs="all", n_samples=budget,
                                                    paired=paired, perturbations_per_eval=64)
            assert 0 < game.n_rows <= budget, ("SII", paired, budget, game.n_rows)
        for context, minimum in (("sampled", 8 * n_pairs), ("full", 3 * n_pairs + 1)):
            if budget < minimum:
                continue
            game.n_rows = 0
            RedundancyGap(game).attribute(x, pairs="all", n_samples=budget, context=context,
                                          perturbations_per_eval=64)
            assert 0 < game.n_rows <= budget, ("RG", context, budget, game.n_rows)


def test_exact_mode_evaluates_every_coalition_once():
    n = 6
    game = random_polynomial_game(n, seed=0)
    x = torch.ones(2, n, 1)
    values = ShapleyInteractionIndex(game).attribute(x, method="exact", pairs="all",
                                                     perturbations_per_eval=7)
    assert game.n_rows == 2 * 2**n
    torch.testing.assert_close(values[0], game.sii(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- chunking


PPE = [1, 7, 64, 4096]


class RowRecorder(nn.Module):
    """Wraps a model and records the number of rows of every forward call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows: list[int] = []

    def forward(self, *inputs: Tensor) -> Tensor:
        self.rows.append(inputs[0].shape[0])
        return self.model(*inputs)


def test_sii_independent_of_perturbations_per_eval():
    model = TwoTower()
    text, image = make_inputs(batch=2, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    runs = []
    for ppe in PPE:
        recorder = RowRecorder(model)
        runs.append(ShapleyInteractionIndex(recorder).attribute(
            (text, image), target=2, n_samples=64, seed=5, perturbations_per_eval=ppe,
            pairs="all", return_stderr=True,
        ))
        # Captum semantics: one forward call holds at most perturbations_per_eval * B rows.
        assert max(recorder.rows) <= ppe * 2 and sum(recorder.rows) <= 64 * 2
    for values, err in runs[1:]:
        torch.testing.assert_close(values, runs[0][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(err, runs[0][1], rtol=1e-8, atol=1e-12)
    assert runs[0][1].abs().sum() > 0  # really sampled
    # Another seed gives other (sampled) values: the comparison above is not vacuous.
    other = ShapleyInteractionIndex(model).attribute(
        (text, image), target=2, n_samples=64, seed=6, pairs="all"
    )
    assert not torch.allclose(other, runs[0][0])


@pytest.mark.parametrize("context", ["sampled", "full"])
def test_rg_independent_of_perturbations_per_eval(context):
    model = TwoTower()
    text, image = make_inputs(batch=2, n_text=BIG_TEXT, n_image=BIG_IMAGE)
    runs = []
    for ppe in PPE:
        recorder = RowRecorder(model)
        runs.append(RedundancyGap(recorder).attribute(
            (text, image), target=2, n_samples=160, seed=5, perturbations_per_eval=ppe,
            context=context, return_stderr=True,
        ))
        assert max(recorder.rows) <= ppe * 2 and sum(recorder.rows) <= 160 * 2
    for values, err in runs[1:]:
        torch.testing.assert_close(values, runs[0][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(err, runs[0][1], rtol=1e-8, atol=1e-12)
    assert runs[0][0].abs().sum() > 0


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sii_sampling_on_cuda_agrees_with_exact():
    model = TwoTower().cuda()
    text, image = (x.cuda() for x in make_inputs(batch=2, n_text=BIG_TEXT, n_image=BIG_IMAGE))
    sii = ShapleyInteractionIndex(model)
    values, err = sii.attribute((text, image), target=0, n_samples=200, return_stderr=True,
                                pairs="all", seed=0)
    exact = sii.attribute((text, image), target=0, method="exact", pairs="all")
    assert values.device.type == "cuda" and err.device.type == "cuda"
    assert exact.device.type == "cuda"
    assert torch.all(err[:, ~torch.eye(BIG_F, dtype=torch.bool)] > 0)  # really sampled
    # Within a few stderr: 16 replicates give t-tailed z-scores, so bound their RMS over the
    # 72 pair entries and their maximum (on CPU, 200 seeds: RMS <= 2.6, max <= 9.9).
    z = ((values - exact) / err)[:, ~torch.eye(BIG_F, dtype=torch.bool)]
    assert z.pow(2).mean().sqrt() < 3.0 and z.abs().max() < 12.0
    # The exact oracle itself matches a CPU run.
    cpu = ShapleyInteractionIndex(model.cpu()).attribute(
        (text.cpu(), image.cpu()), target=0, method="exact", pairs="all"
    )
    torch.testing.assert_close(exact.cpu(), cpu, rtol=1e-9, atol=1e-12)
