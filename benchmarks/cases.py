"""The attribution problems the accuracy benchmarks are run on.

(a) a polynomial game with planted pairwise and three-way Möbius terms (exact SII in closed
form), (b) a small trained fusion Transformer with 8 + 8 players (exact SII by enumerating
2^16 coalitions), (c) FL-I2MoE trained on the planted text + image data, its 10 tokens and 49
patches grouped into 8 + 8 players (exact by enumeration), and (d) trained fusion
Transformers and polynomial games with 64-1024 players, where only the game has an exact SII.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import CountingModel, TimedGame, run_shapiq, upper_pairs
from captum_interactions import ShapleyInteractionIndex
from captum_interactions.perturbation import model_game
from captum_interactions.testing import (
    random_polynomial_game,
    train_tiny_fusion,
)


@dataclass
class Case:
    """One attribution problem: the model, a batch of examples and how to explain them.

    ``pair_mask`` is the (n, n) bool mask of the scored pairs; ``exact`` (B, n, n) is filled
    by :func:`exact_sii` (or given in closed form)."""

    name: str
    model: Any
    inputs: tuple[Tensor, ...]
    n_players: int
    pairs: Any
    pair_mask: Tensor
    kwargs: dict[str, Any] = field(default_factory=dict)
    exact: Tensor | None = None
    planted: tuple[int, int] | None = None
    note: str = ""

    def attribute(self, n_samples: int, seed: int, **options: Any) -> Tensor:
        return ShapleyInteractionIndex(self.model).attribute(
            self.inputs, pairs=self.pairs, n_samples=n_samples, seed=seed, **self.kwargs,
            **options)

    def example(self, b: int) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        """Example ``b``'s inputs and attribution options (its slice of tensor
        ``additional_forward_args``), for estimators that take one example at a time."""
        kwargs = dict(self.kwargs)
        extra = kwargs.get("additional_forward_args")
        if extra is not None:
            kwargs["additional_forward_args"] = tuple(e[b : b + 1] for e in extra)
        return tuple(x[b : b + 1] for x in self.inputs), kwargs


@dataclass
class Timing:
    """Where an :func:`estimate` call spent its time: ``model_seconds`` inside the model's
    forwards and ``model_rows`` rows they evaluated (all examples); for shapiq also
    ``game_seconds`` and ``game_rows`` inside its game callable (our perturbation engine and the
    model), summed over the examples."""

    model_seconds: float = 0.0
    model_rows: int = 0
    game_seconds: float = 0.0
    game_rows: int = 0


def estimate(case: Case, estimator: str, budget: int, seed: int,
             ours: dict[str, dict[str, Any]], timing: Timing | None = None) -> list[Tensor]:
    """One (n, n) float64 CPU estimate per example: this project's estimator with the options
    ``ours[estimator]``, or shapiq's ``"shapiq <name>"`` through the same perturbation engine
    and chunk size. With ``timing``, the model is wrapped to time its forwards (and shapiq's
    game callable to time the game) and the totals are added to ``timing``."""
    model = case.model
    counting = None
    if timing is not None:
        counting = CountingModel(case.model, case.inputs[0].device)
        model = counting
    if estimator in ours:
        run = dataclasses.replace(case, model=model)
        out = list(run.attribute(budget, seed, perturbations_per_eval=1024,
                                 **ours[estimator]).double().cpu())
    else:
        name = estimator.removeprefix("shapiq ")
        pairs = upper_pairs(case.pair_mask).cpu()
        out = []
        for b in range(case.inputs[0].shape[0]):
            inputs, kwargs = case.example(b)
            game = TimedGame(model_game(model, inputs, perturbations_per_eval=1024,
                                        **kwargs).as_shapiq_game())
            out.append(run_shapiq(name, game, case.n_players, budget, seed, pairs))
            if timing is not None:
                timing.game_seconds += game.seconds
                timing.game_rows += game.rows
    if timing is not None and counting is not None:
        timing.model_seconds += counting.seconds
        timing.model_rows += counting.rows
    return out


def cross_mask(n_text: int, n_image: int, device: torch.device | str = "cpu") -> Tensor:
    n = n_text + n_image
    mask = torch.zeros(n, n, dtype=torch.bool, device=device)
    mask[:n_text, n_text:] = True
    mask[n_text:, :n_text] = True
    return mask


def exact_sii(case: Case) -> Tensor:
    """Exact SII by enumerating the 2^n coalitions (n <= 20)."""
    return ShapleyInteractionIndex(case.model).attribute(
        case.inputs, pairs=case.pairs, method="exact", perturbations_per_eval=4096,
        **case.kwargs).double()


def polynomial_case(n: int, device: torch.device, *, n_pairs: int = 20, n_triples: int = 10,
                    seed: int = 0, n_main: int | None = None) -> Case:
    """``n_main``: players with a main effect (None: all of them)."""
    game = random_polynomial_game(n, n_pairs=n_pairs, n_triples=n_triples, seed=seed,
                                  n_main=n_main)
    case = Case(f"(a) polynomial game, {n} players", game.to(device),
                (torch.ones(1, n, 1, dtype=torch.float64, device=device),), n, "all",
                ~torch.eye(n, dtype=torch.bool, device=device))
    case.exact = game.sii().unsqueeze(0).to(device)
    mains = "main effects" if n_main is None else f"{n_main} main effects"
    case.note = f"{mains} + {n_pairs} pairwise + {n_triples} three-way terms, all pairs"
    return case


def fusion_case(n_text: int, n_image: int, device: torch.device, *, examples: int,
                steps: int = 400, seed: int = 0, hidden: int = 16,
                dtype: torch.dtype = torch.float64, lr: float | None = None) -> Case:
    """A TinyFusionTransformer (``hidden`` wide) trained on its planted task: label =
    (text 0 AND image 0) OR c, with c carried by both text 1 and image 1. Target = logit of
    class 1; explained in ``dtype``. ``lr``: Adam's learning rate (None: that of
    ``train_tiny_fusion``)."""
    model, text, image = train_tiny_fusion(seed=seed, steps=steps, n_text=n_text,
                                           n_image=n_image, hidden=hidden,
                                           lr=3e-3 if lr is None else lr)
    model = model.to(device=device, dtype=dtype)
    # Positive examples of the synergy rule first: the planted pair (0, n_text) is active there.
    positive = (text[:, 0, 0] > 0) & (image[:, 0, 0] > 0)
    order = torch.argsort(positive.int(), descending=True, stable=True)[:examples]
    inputs = (text[order].to(device=device, dtype=dtype),
              image[order].to(device=device, dtype=dtype))
    n = n_text + n_image
    name = (f"(b) trained fusion Transformer, {n_text}+{n_image} players" if n <= 20 else
            f"(d) trained fusion Transformer, {n_text}+{n_image} players")
    return Case(name, model, inputs, n, "cross", cross_mask(n_text, n_image, device),
                kwargs={"target": 1}, planted=(0, n_text),
                note=f"{examples} held-out examples, target logit 1, cross pairs")


def fl_i2moe_case(device: torch.device, *, quick: bool, examples: int = 1,
                  groups: int = 8) -> Case:
    """FL-I2MoE (hidden 32, float32) trained on planted MiniLM + EfficientNet-Lite0 features;
    its mixture logit explained with presence removal. Tokens and patches are grouped into
    ``groups`` + ``groups`` players (text: consecutive tokens, [CLS] and [SEP] joining the
    first and last word; image: bands of the 7 x 7 patch grid in row-major order)."""
    from fl_i2moe_layer.experiments import build_model, new_config
    from fl_i2moe_layer.experiments.evaluation import pair_examples
    from fl_i2moe_layer.experiments.runs import fit_model

    config = new_config("planted", model="fl_i2moe", hidden_dim=32, seed=0, epochs=20)
    model = build_model(config)
    if quick:
        gen = torch.Generator().manual_seed(0)
        text = torch.randn(examples, 10, 384, generator=gen)
        image = torch.randn(examples, 49, 1280, generator=gen)
        masks = (torch.ones(examples, 10, dtype=torch.bool),
                 torch.ones(examples, 49, dtype=torch.bool))
        note = "untrained (quick run), random features"
    else:
        from fl_i2moe_layer.data.planted import load_planted

        data = load_planted(480, seed=1)
        train, test = data.subset(list(range(400))), data.subset(list(range(400, 480)))
        metrics = fit_model(model, config, train.dataset(), test.dataset())
        sub = test.subset(pair_examples(test, "synergy", limit=examples))
        ds = sub.dataset()
        text, image = ds.inputs
        masks = tuple(ds.masks)
        note = (f"trained on 400 planted examples (test accuracy {metrics['accuracy']:.3f}); "
                f"{examples} synergy examples, mixture logit")
    model = model.to(device).eval()
    with torch.no_grad():
        xs = tuple(p(x.to(device)) for p, x in
                   zip(model.projections, (text, image), strict=True))
    masks = tuple(m.to(device) for m in masks)
    words = torch.arange(8, device=device) * groups // 8
    text_groups = torch.cat([words[:1], words, words[-1:]])
    image_groups = groups + torch.arange(49, device=device) * groups // 49
    feature_mask = (text_groups.view(1, 10, 1), image_groups.view(1, 49, 1))
    case = Case(f"(c) FL-I2MoE on planted data, {groups}+{groups} grouped players",
                model.fusion.as_forward_func("mixture"), xs, 2 * groups, "cross",
                cross_mask(groups, groups, device),
                kwargs={"target": 0, "additional_forward_args": masks, "removal": "presence",
                        "feature_mask": feature_mask})
    case.note = note
    return case
