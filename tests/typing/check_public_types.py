"""Checked by mypy in `make test` (never run): what a type checker infers for users' calls."""

from __future__ import annotations

from torch import Tensor, nn
from typing_extensions import assert_type

from captum_interactions import RedundancyGap, ShapleyInteractionIndex
from captum_interactions.metrics import PairMaskingFaithfulness, PairMaskingResult
from captum_interactions.perturbation import ModelGame, model_game


def attributions(model: nn.Module, text: Tensor, image: Tensor) -> None:
    sii = ShapleyInteractionIndex(model)
    assert_type(sii.attribute((text, image), target=0), Tensor)
    assert_type(sii.attribute((text, image), target=0, return_stderr=True),
                tuple[Tensor, Tensor])
    rg = RedundancyGap(model)
    assert_type(rg.attribute((text, image), candidates=4, return_stderr=False), Tensor)
    assert_type(rg.attribute((text, image), return_stderr=True), tuple[Tensor, Tensor])
    scores = sii.attribute((text, image), target=0)
    assert_type(PairMaskingFaithfulness(model).evaluate((text, image), scores, target=0),
                PairMaskingResult)
    assert_type(model_game(model, (text, image), target=0), ModelGame)


def runtime_flag(model: nn.Module, x: Tensor, with_stderr: bool) -> None:
    out = ShapleyInteractionIndex(model).attribute(x, return_stderr=with_stderr)
    assert_type(out, Tensor | tuple[Tensor, Tensor])
