"""The perturbation engine: evaluates v(S) for batches of coalitions in bounded chunks.

Coalitions arrive as a boolean tensor ``present`` (R, B, F) on the inputs' device. The engine
cuts R into chunks of ``perturbations_per_eval`` coalitions, builds each perturbed batch with
the removal operator (vectorised gathers and ``torch.where``), runs one forward call per chunk
and returns the selected scalar for every (coalition, example). Peak memory is one chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum._utils.common import (
    _expand_additional_forward_args,
    _format_additional_forward_args,
)
from torch import Tensor
from tqdm.auto import tqdm

from captum_interactions.perturbation.target import TargetSelector
from captum_interactions.players import Players
from captum_interactions.removal import RemovalOperator


class CoalitionEvaluator:
    """Runs a forward function on coalitions of players, chunk by chunk.

    Args:
        forward_func: the model or any callable ``f(*inputs, *additional_forward_args)``.
        inputs: tuple of (B, ...) tensors.
        players: the players of ``inputs``.
        removal: a prepared removal operator.
        target: the target selector.
        additional_forward_args: Captum semantics; tensors are repeated per coalition.
        perturbations_per_eval: coalitions per example in one forward call (the forward batch
            is ``perturbations_per_eval * B`` rows, as in Captum).
        show_progress: show a tqdm bar over the evaluated coalitions.
        total: the number of coalitions the bar counts to.
        desc: the bar's label.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: tuple[Tensor, ...],
        players: Players,
        removal: RemovalOperator,
        target: TargetSelector,
        additional_forward_args: Any,
        perturbations_per_eval: int,
        *,
        show_progress: bool = False,
        total: int | None = None,
        desc: str = "coalitions",
    ) -> None:
        self.forward_func = forward_func
        self.inputs = inputs
        self.players = players
        self.removal = removal
        self.target = target
        self.additional_forward_args = _format_additional_forward_args(additional_forward_args)
        self.perturbations_per_eval = perturbations_per_eval
        self.batch_size = inputs[0].shape[0]
        self.device = inputs[0].device
        self.n_evaluated = 0
        self.output_dtype: torch.dtype = torch.float32
        self._validated = False
        self._bar = tqdm(total=total, desc=desc, unit="coal", disable=not show_progress)

    def expect(self, total: int) -> None:
        """Set how many coalitions the progress bar counts to."""
        self._bar.total = total
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def full(self) -> Tensor:
        """v(N), the unperturbed value of every example: (B,) float64."""
        present = torch.ones(
            1, self.batch_size, self.players.n_players, dtype=torch.bool, device=self.device
        )
        values = self._select(self._forward(present), present, offset=0)
        self.n_evaluated += 1
        self._bar.update(1)
        return values.reshape(self.batch_size)

    def evaluate(self, present: Tensor, offset: int = 0) -> Tensor:
        """v for each coalition: present (R, B, F) bool -> (R, B) float64.

        Args:
            present: coalitions; ``present[r, b, i]`` says whether player i is kept in row r
                of example b.
            offset: index of ``present[0]`` in the whole run (for error messages).
        """
        chunk = self.perturbations_per_eval
        values = []
        for start in range(0, present.shape[0], chunk):
            part = present[start : start + chunk]
            values.append(self._select(self._forward(part), part, offset + start))
            self.n_evaluated += part.shape[0]
            self._bar.update(part.shape[0])
        return torch.cat(values, dim=0)

    def _forward(self, present: Tensor) -> Tensor:
        n_rows = present.shape[0]
        batch, kwargs = self.removal.perturb(self.inputs, self.players, present)
        extra = _expand_additional_forward_args(self.additional_forward_args, n_rows)
        with torch.no_grad():
            output = self.forward_func(*batch, *(extra or ()), **kwargs)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"forward_func must return a tensor, got {type(output).__name__}."
            )
        expected = n_rows * self.batch_size
        if output.dim() == 0 or output.shape[0] != expected:
            raise ValueError(
                f"forward_func returned shape {tuple(output.shape)} for a batch of {expected} "
                f"rows ({n_rows} coalitions x {self.batch_size} examples): the output must have "
                "one entry per input row along dim 0."
            )
        if not self._validated:
            # The first rows are a full batch of examples: enough to check the target.
            self.target.validate(output[: self.batch_size])
            if output.dtype.is_floating_point:
                self.output_dtype = output.dtype
            self._validated = True
        return output

    def _select(self, output: Tensor, present: Tensor, offset: int) -> Tensor:
        n_rows = present.shape[0]
        values = self.target.select(output, n_rows).to(torch.float64)
        values = values.view(n_rows, self.batch_size)
        bad = ~torch.isfinite(values)
        if bad.any():
            where = torch.nonzero(bad)[:5].tolist()
            described = ", ".join(
                f"coalition {offset + r} of example {b} ({int(present[r, b].sum())} players "
                "present)"
                for r, b in where
            )
            raise ValueError(
                f"forward_func returned NaN or Inf for {int(bad.sum())} perturbed row(s), "
                f"e.g. {described}. Check how the model handles removed features (an all-absent "
                "modality under removal='presence' is a common cause)."
            )
        return values
