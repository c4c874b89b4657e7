"""Progress bars that suit where the output goes.

On a terminal (or in a Jupyter kernel) :func:`progress` is a tqdm bar. When stderr is not a
terminal (a log file, a pipe, CI), redrawing a bar would fill the log with carriage returns, so
it logs single lines instead, at most one every ``interval`` seconds (default
:data:`LINE_INTERVAL`), on the ``fl_i2moe_layer.progress`` logger at INFO level, plus a final
line for bars that are kept (``leave=True``)::

    training: 12/40 (30%), 31s elapsed, ~72s left, train_loss=0.4123, val_loss=0.3010
    training: done, 40/40 in 101s, train_loss=0.1021, val_loss=0.0933

``fl-i2moe`` configures logging so that these lines reach stderr, and then also turns off
Hugging Face's own bars (:func:`quiet_foreign_bars`); a program that uses the package
configures logging itself (``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

logger = logging.getLogger("fl_i2moe_layer.progress")

#: Seconds between two lines when stderr is not a terminal.
LINE_INTERVAL = 30.0

T = TypeVar("T")


def interactive() -> bool:
    """True when a redrawn bar is readable: stderr is a terminal, or a Jupyter kernel runs."""
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False
    return "ipykernel" in sys.modules


def quiet_foreign_bars() -> None:
    """Turn off Hugging Face's own tqdm bars (transformers' "Loading weights", Hub downloads),
    which redraw with carriage returns, unless ``HF_HUB_DISABLE_PROGRESS_BARS`` says otherwise.
    ``fl-i2moe`` calls it when stderr is not a terminal."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] != "1":
        return
    if "huggingface_hub" in sys.modules:  # read the variable when it was imported
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


class Progress(Generic[T]):
    """Iterate over ``iterable`` while showing progress (see the module docstring).

    Args:
        iterable: what to iterate over.
        desc: the bar's label.
        total: the number of items (default: ``len(iterable)`` when it has one).
        disable: show nothing at all.
        leave: keep the bar (tqdm) / log a final line (lines) when done.
        interval: seconds between lines when stderr is not a terminal. Default:
            :data:`LINE_INTERVAL`.
        unit: what an item is (``"it"``, ``"epoch"``, ``"batch"``).
    """

    def __init__(self, iterable: Iterable[T], *, desc: str, total: int | None = None,
                 disable: bool = False, leave: bool = True, interval: float | None = None,
                 unit: str = "it") -> None:
        self.iterable, self.desc, self.leave, self.unit = iterable, desc, leave, unit
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.interval = LINE_INTERVAL if interval is None else float(interval)
        self.postfix: dict[str, object] = {}
        self.mode = "off" if disable else ("bar" if interactive() else "lines")
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(iterable, desc=desc, total=total, leave=leave, unit=unit)

    def set_postfix(self, values: dict[str, object] | None = None, **kwargs: object) -> None:
        """Values shown after the count (``loss=0.41``), as tqdm's ``set_postfix``."""
        self.postfix = {**(values or {}), **kwargs}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix)

    def __iter__(self) -> Iterator[T]:
        if self.mode == "bar":
            yield from self._bar
            return
        if self.mode == "off":
            yield from self.iterable
            return
        start = last = time.monotonic()
        count = 0
        try:
            for item in self.iterable:
                yield item
                count += 1
                now = time.monotonic()
                if now - last >= self.interval and (self.total is None or count < self.total):
                    last = now
                    logger.info("%s", self._line(count, now - start))
        finally:  # also when the loop stops early (``break``: early stopping)
            if self.leave:
                logger.info("%s", self._line(count, time.monotonic() - start, done=True))

    def _line(self, count: int, elapsed: float, *, done: bool = False) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        if done:
            of = f"/{self.total}" if self.total is not None else ""
            state = "done" if self.total is None or count >= self.total else "stopped"
            return f"{self.desc}: {state}, {count}{of} {self.unit} in {elapsed:.0f}s{extra}"
        if self.total:
            left = elapsed / count * (self.total - count) if count else 0.0
            return (f"{self.desc}: {count}/{self.total} {self.unit} "
                    f"({100 * count // self.total}%), {elapsed:.0f}s elapsed, ~{left:.0f}s "
                    f"left{extra}")
        return f"{self.desc}: {count} {self.unit}, {elapsed:.0f}s elapsed{extra}"


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None,
             disable: bool = False, leave: bool = True, interval: float | None = None,
             unit: str = "it") -> Progress[T]:
    """A :class:`Progress` over ``iterable`` (tqdm bar on a terminal, log lines otherwise).

    Examples::

        >>> for batch in progress(loader, desc="epoch 3", leave=False):
        ...     ...
    """
    return Progress(iterable, desc=desc, total=total, disable=disable, leave=leave,
                    interval=interval, unit=unit)
