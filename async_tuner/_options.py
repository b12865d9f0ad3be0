"""Validation of the Tuner's constructor arguments and of strategy options."""

from __future__ import annotations

import concurrent.futures
import decimal
import inspect
import math
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any


def describe(value: Any) -> str:
    """Return ``repr(value)`` shortened, with its type, for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} of type {type(value).__name__}"


def is_real(value: Any) -> bool:
    """Return whether ``value`` is a real number (``decimal.Decimal`` included) and not a bool."""
    return isinstance(value, (numbers.Real, decimal.Decimal)) and not isinstance(value, bool)


def check_positive_number(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is a finite real number > 0 (or None when allowed)."""
    if value is None and allow_none:
        return
    if not is_real(value):
        msg = f"{name} must be a positive number (got {describe(value)})"
        raise TypeError(msg)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite or value <= 0:
        msg = f"{name} must be a positive finite number (got {describe(value)})"
        raise ValueError(msg)


def check_positive_int(name: str, value: Any) -> None:
    """Raise unless ``value`` is an int >= 1 (bools excluded)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        msg = f"{name} must be a positive integer (got {describe(value)})"
        raise TypeError(msg)
    if value < 1:
        msg = f"{name} must be a positive integer (got {value!r})"
        raise ValueError(msg)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as a bool, or raise unless it is a bool (numpy's included)."""
    if type(value).__name__ == "bool" and type(value).__module__ == "numpy":
        return bool(value)
    if not isinstance(value, bool):
        msg = f"{name} must be True or False (got {describe(value)})"
        raise TypeError(msg)
    return value


def check_seed(value: Any) -> int | None:
    """Return ``value`` as an int seed, or raise unless it is None or an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"seed must be an integer or None (got {describe(value)})"
        raise TypeError(msg)
    return int(value)


def check_run_path(name: str, value: Any) -> None:
    """Raise unless ``value`` is None or a relative path that stays inside its parent folder."""
    check_path(name, value)
    if value is None:
        return
    path = os.fspath(value)
    parts = path.replace("\\", "/").split("/")
    if os.path.isabs(path) or ".." in parts or not path.strip():
        msg = f"{name} must be a relative folder name inside log_dir, without '..' (got {path!r})"
        raise ValueError(msg)


def check_callable(name: str, value: Any) -> None:
    """Raise unless ``value`` is callable."""
    if not callable(value):
        msg = f"{name} must be callable (got {describe(value)})"
        raise TypeError(msg)


def check_path(name: str, value: Any) -> None:
    """Raise unless ``value`` is None, a str or an ``os.PathLike``."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        msg = f"{name} must be a path (str or os.PathLike) or None (got {describe(value)})"
        raise TypeError(msg)


def check_executor(value: Any) -> None:
    """Raise unless ``value`` is "thread", "process" or a ``concurrent.futures.Executor``."""
    if isinstance(value, concurrent.futures.Executor):
        return
    if value not in ("thread", "process"):
        msg = (
            'executor must be "thread", "process" or a concurrent.futures.Executor '
            f"(got {describe(value)})"
        )
        raise ValueError(msg)


def is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine: ``async def`` functions, partials of them,
    and objects whose ``__call__`` is ``async def``."""
    while hasattr(fn, "func") and callable(fn):  # functools.partial and similar wrappers
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def bind_options(
    owner: str, impl: Callable[..., Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Check ``options`` against the keyword-only parameters of a strategy's ``tune_impl``.

    Returns the options with defaults filled in.

    Raises:
        TypeError: an option is unknown or a required one is missing.
    """
    parameters = {
        name: parameter
        for name, parameter in inspect.signature(impl).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        valid = ", ".join(parameters) or "none"
        names = ", ".join(map(repr, unknown))
        msg = f"{owner}.tune() got unknown option(s) {names}; valid options: {valid}"
        raise TypeError(msg)
    missing = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        msg = f"{owner}.tune() missing required option(s): {', '.join(map(repr, missing))}"
        raise TypeError(msg)
    bound = {
        name: parameter.default
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    bound.update(options)
    return bound
