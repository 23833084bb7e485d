"""Declared bounds of numeric parameters, checked in one place.

A parameter is declared once with its name, bounds and unit, then called on
a value to check and convert it::

    TAU = Number("tau", low=0, low_open=True, unit="seconds")
    tau = TAU(tau)  # float, or ParameterError("tau: must be > 0 seconds, ...")

This module imports nothing heavy, so any layer can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spikerates.errors import ParameterError

__all__ = ["Integer", "Number", "positive_seconds"]


@dataclass(frozen=True)
class Number:
    """A real parameter with optional bounds.

    Parameters
    ----------
    name : str
        The parameter's name, used in error messages.
    low, high : float, optional
        Bounds (inclusive unless ``low_open`` / ``high_open``).
    low_open, high_open : bool
        Exclude the bound itself.
    unit : str
        Unit named in messages, e.g. ``"seconds"``.
    """

    name: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    unit: str = ""

    def __call__(self, value: Any, name: str | None = None) -> float:
        """Check ``value`` and return it as a float (``ParameterError`` if bad)."""
        name = self.name if name is None else name
        unit = f" {self.unit}" if self.unit else ""
        in_unit = f" in {self.unit}" if self.unit else ""
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                name, f"must be a number{in_unit}, got {value!r}"
            ) from None
        if not math.isfinite(number):
            raise ParameterError(
                name, f"must be a finite number{in_unit}, got {value!r}"
            )
        if self.low is not None:
            if number < self.low or (self.low_open and number == self.low):
                sign = ">" if self.low_open else ">="
                raise ParameterError(
                    name, f"must be {sign} {self.low:g}{unit}, got {value!r}"
                )
        if self.high is not None:
            if number > self.high or (self.high_open and number == self.high):
                sign = "<" if self.high_open else "<="
                raise ParameterError(
                    name, f"must be {sign} {self.high:g}{unit}, got {value!r}"
                )
        return number


@dataclass(frozen=True)
class Integer:
    """An integer parameter with an optional lower bound (inclusive)."""

    name: str
    low: int | None = None

    def __call__(self, value: Any, name: str | None = None) -> int:
        """Check ``value`` and return it as an int (``ParameterError`` if bad)."""
        name = self.name if name is None else name
        ok = not isinstance(value, bool)
        try:
            ok = ok and int(value) == value
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok or (self.low is not None and value < self.low):
            bound = f" >= {self.low}" if self.low is not None else ""
            raise ParameterError(name, f"must be an integer{bound}, got {value!r}")
        return int(value)


_POSITIVE_SECONDS = Number("value", low=0.0, low_open=True, unit="seconds")


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a float number of seconds > 0 (``ParameterError`` naming
    ``name`` otherwise): the check shared by ``tau``, ``dt``,
    ``chunk_duration``..."""
    return _POSITIVE_SECONDS(value, name)
