"""Captum's usage-logging decorator with a type: captum ships no type information, and an
untyped decorator would turn every public method it wraps into ``Any`` for type checkers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from captum.log import log_usage as _captum_log_usage

F = TypeVar("F", bound=Callable[..., Any])


def log_usage() -> Callable[[F], F]:
    """``captum.log.log_usage()``, keeping the signature of the decorated function."""
    return cast(Callable[[F], F], _captum_log_usage())
