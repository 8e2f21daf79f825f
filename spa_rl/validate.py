"""The checks every command-line number goes through: counts are integers >= 1, bounded numbers lie in
their range, floats are finite, choices are among the allowed values. Each check raises ValueError
naming the flag, so a config's ``__post_init__`` refuses a bad value before any work is done (argparse
only checks that ``--alpha nan`` parses as a float, and ``0`` parses as an int), and ``exit_on_error``
turns that ValueError into the exit with a message the recipes use for every refused setting."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def flag(field_name: str) -> str:
    """The command-line spelling of a config field: ``save_every`` -> ``--save-every``."""
    return "--" + field_name.replace("_", "-")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON/argparse true must not pass as 1


def is_finite_number(v: Any, bound: float = sys.float_info.max) -> bool:
    """A number as JSON or a flag holds it (not true/false) with |v| <= bound: False for NaN and +-inf, and an
    integer too large for a float compares exactly instead of overflowing (math.isfinite would raise)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= bound


def _unset(allow_none: bool) -> str:
    return " (or unset)" if allow_none else ""


def positive_int(name: str, v: Any, *, allow_none: bool = False) -> Any:
    """A count: an integer >= 1 (``None`` too where ``allow_none``: the setting's own default)."""
    if v is None and allow_none:
        return v
    if not _is_int(v) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1{_unset(allow_none)}, got {v!r}")
    return v


def non_negative_int(name: str, v: Any) -> Any:
    """A count where 0 means "off": an integer >= 0."""
    if not _is_int(v) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    return v


def finite(name: str, v: Any, *, allow_none: bool = False) -> Any:
    if v is None and allow_none:
        return v
    if not is_finite_number(v):
        raise ValueError(f"{name} must be a finite number{_unset(allow_none)}, got {v!r}")
    return v


def positive(name: str, v: Any, *, allow_none: bool = False) -> Any:
    if v is None and allow_none:
        return v
    if not is_finite_number(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0{_unset(allow_none)}, got {v!r}")
    return v


def non_negative(name: str, v: Any, *, allow_none: bool = False) -> Any:
    if v is None and allow_none:
        return v
    if not is_finite_number(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0{_unset(allow_none)}, got {v!r}")
    return v


def in_range(
    name: str,
    v: Any,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_none: bool = False,
) -> Any:
    """A number in [lo, hi] (``lo_open`` / ``hi_open``: that end excluded)."""
    if v is None and allow_none:
        return v
    ok = is_finite_number(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}{_unset(allow_none)}, got {v!r}")
    return v


def choice(name: str, v: Any, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if v not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {v!r}")
    return v


@contextmanager
def exit_on_error() -> Iterator[None]:
    """A ValueError raised inside becomes SystemExit with its message (printed alone, exit status 1), as
    the recipes refuse every other setting; argparse's usage text (with Hugging Face parsers, every
    TrainingArguments flag) would bury the one line that matters."""
    try:
        yield
    except ValueError as e:
        raise SystemExit(str(e)) from None
