"""Checks of public arguments, run once at the public boundary (attribution classes, metrics,
the game factory) and nowhere else: inner modules trust what they are given.

Every check names the argument, shows the bad value and says what is expected. Booleans are
strict (a string such as ``"no"`` is a TypeError, not a truthy value) and integers exclude
``bool``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any, get_args

import torch
from torch import Tensor


def _memory_limit() -> int:
    raw = os.environ.get("CAPTUM_INTERACTIONS_MEMORY_LIMIT")
    if raw is None:
        return 8 * 2**30
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(
            f"CAPTUM_INTERACTIONS_MEMORY_LIMIT={raw!r} is not a number of bytes."
        ) from None


#: Largest working allocation (bytes) the library makes besides the forward calls: the (B, F,
#: F) accumulators, per-coalition bookkeeping, the coalition tensors of the metrics. A request
#: that needs more is refused before anything is allocated. Default 8 GiB; set the environment
#: variable ``CAPTUM_INTERACTIONS_MEMORY_LIMIT`` (bytes) to change it.
MEMORY_LIMIT_BYTES = _memory_limit()
#: Most coalitions per example any estimator accepts (``n_samples``): more rows than an
#: estimate needs at any player count this library handles; a larger value is a typo.
MAX_SAMPLES = 2**31


def check_allocation(what: str, n_bytes: float, remedy: str) -> None:
    """Refuse a working allocation larger than :data:`MEMORY_LIMIT_BYTES`, before it is made.

    Args:
        what: what needs the memory, with the sizes that make it (for the message).
        n_bytes: the estimated size.
        remedy: how to ask for less.
    """
    if n_bytes > MEMORY_LIMIT_BYTES:
        raise ValueError(
            f"{what} needs about {_human_bytes(n_bytes)}, more than the "
            f"{_human_bytes(MEMORY_LIMIT_BYTES)} limit (CAPTUM_INTERACTIONS_MEMORY_LIMIT). "
            f"{remedy}"
        )


def _human_bytes(n_bytes: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes:.0f} bytes"


def check_samples(name: str, value: Any) -> int:
    """A positive number of coalitions per example, at most :data:`MAX_SAMPLES`."""
    value = check_positive_int(name, value)
    if value > MAX_SAMPLES:
        raise ValueError(
            f"{name}={value} exceeds the limit of {MAX_SAMPLES} coalitions per example (2^31): "
            "no estimate here needs that many rows; check the value (a typo?)."
        )
    return value


def check_float(name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, strict_minimum: bool = False,
                strict_maximum: bool = False) -> float:
    """A finite real number (not a bool) within the given bounds."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    low_bad = minimum is not None and (value <= minimum if strict_minimum else value < minimum)
    high_bad = maximum is not None and (value >= maximum if strict_maximum else value > maximum)
    if low_bad or high_bad:
        if minimum is not None and maximum is not None:
            bounds = (("(" if strict_minimum else "[") + f"{minimum:g}, {maximum:g}"
                      + (")" if strict_maximum else "]"))
            raise ValueError(f"{name} must lie in {bounds}, got {value:g}.")
        if minimum is not None:
            raise ValueError(
                f"{name} must be {'>' if strict_minimum else '>='} {minimum:g}, got {value:g}.")
        raise ValueError(
            f"{name} must be {'<' if strict_maximum else '<='} {maximum:g}, got {value:g}.")
    return value


def check_choice(name: str, value: Any, mode: Any) -> Any:
    """``value`` if it is one of the strings of the ``Literal`` alias ``mode``.

    Examples::

        >>> from captum_interactions.modes import Method
        >>> check_choice("method", "exact", Method)
        'exact'
    """
    allowed: tuple[str, ...] = get_args(mode)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {allowed}, got {type(value).__name__} {value!r}.")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """An int (not a bool), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """An int >= 1."""
    return check_int(name, value, minimum=1)


def check_seed(seed: Any) -> int:
    return check_int("seed", seed)


def check_bool(name: str, value: Any) -> bool:
    """A real bool: strings, ints and None are refused rather than read as truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} "
                        f"{value!r}.")
    return value


def check_callable(forward_func: Any, name: str = "forward_func") -> None:
    if not callable(forward_func):
        what = "(a model or a function)" if name == "forward_func" else "(a function)"
        raise TypeError(f"{name} must be callable {what}, got {type(forward_func).__name__}.")


def check_finite(name: str, value: Tensor) -> None:
    bad = ~torch.isfinite(value)
    if bad.any():
        where = torch.nonzero(bad)[0].tolist()
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or Inf value(s), e.g. at index {where}; "
            f"{name} must be finite."
        )


def as_number_list(name: str, values: Any) -> list[Any]:
    """A non-empty sequence of real numbers (a single number is accepted too); its entries are
    ``numbers.Real`` (ints stay ints)."""
    if is_number(values):
        values = (values,)
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}.")
    if len(values) == 0:
        raise ValueError(f"{name} is empty; pass at least one value.")
    for value in values:
        if not is_number(value):
            raise TypeError(f"{name} must hold numbers, got {value!r}.")
    return list(values)


def is_number(value: object) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def format_inputs(inputs: Tensor | tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    """Captum's tensor-or-tuple convention (a list works like a tuple), validated: always a
    non-empty tuple of tensors that share the batch size (> 0) and the device."""
    formatted = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    if not formatted:
        raise ValueError("inputs is an empty tuple; pass at least one tensor.")
    for m, inp in enumerate(formatted):
        if not isinstance(inp, Tensor):
            raise TypeError(f"inputs[{m}] must be a torch.Tensor, got {type(inp).__name__}.")
        if inp.dim() == 0:
            raise ValueError(f"inputs[{m}] is a scalar; inputs need a batch dimension.")
    batch_sizes = [inp.shape[0] for inp in formatted]
    if len(set(batch_sizes)) > 1:
        raise ValueError(
            f"inputs have different batch sizes {batch_sizes}: every input tensor must share "
            "the batch dimension (dim 0)."
        )
    if batch_sizes[0] == 0:
        raise ValueError("inputs have batch size 0.")
    devices = {inp.device for inp in formatted}
    if len(devices) > 1:
        raise ValueError(f"inputs live on several devices {sorted(map(str, devices))}.")
    if formatted[0].device.type == "meta":
        raise ValueError("inputs are meta tensors (no data): move them to 'cpu' or 'cuda'.")
    for m, inp in enumerate(formatted):
        if inp.dtype == torch.bool:
            continue
        if (inp.dtype.is_floating_point or inp.dtype.is_complex) and not bool(
                torch.isfinite(inp).all()):
            where = torch.nonzero(~torch.isfinite(inp))[0].tolist()
            raise ValueError(
                f"inputs[{m}] holds NaN or Inf (e.g. at index {where}): v(S) would be NaN for "
                "every coalition that keeps it. Replace them by finite values, padded positions "
                "included (e.g. zeros): the model receives every position of the inputs."
            )
    return formatted


def check_pair_scores(
    name: str, scores: Any, pair_index: Tensor, batch: int, n: int, device: torch.device
) -> Tensor:
    """(B, P) float64 scores of the requested pairs ``pair_index`` (P, 2), symmetrised
    (``(scores[i, j] + scores[j, i]) / 2``), from a real (B, F, F) tensor such as SII or RG
    values; every requested pair must be finite."""
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(scores).__name__}.")
    if scores.dtype == torch.bool or scores.dtype.is_complex:
        raise TypeError(f"{name} must be real-valued, got dtype {scores.dtype}.")
    if tuple(scores.shape) != (batch, n, n):
        raise ValueError(
            f"{name} has shape {tuple(scores.shape)}; expected (B, F, F) = {(batch, n, n)} "
            "(one pair-score matrix per example over the players of inputs/feature_mask, as "
            "returned by ShapleyInteractionIndex or RedundancyGap)."
        )
    scores = scores.detach().to(device, torch.float64)
    upper = scores[:, pair_index[:, 0], pair_index[:, 1]]
    lower = scores[:, pair_index[:, 1], pair_index[:, 0]]
    bad = ~(torch.isfinite(upper) & torch.isfinite(lower))
    if bad.any():
        b, p = torch.nonzero(bad)[0].tolist()
        i, j = pair_index[p].tolist()
        raise ValueError(
            f"{name} holds NaN or Inf on {int(bad.sum())} requested pair(s), e.g. "
            f"{name}[{b}, {i}, {j}]; {name} must be finite on every requested pair."
        )
    return 0.5 * (upper + lower)
