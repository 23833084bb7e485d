"""Declared parameter bounds: one check, one message per kind of mistake."""

from __future__ import annotations

import math

import pytest

from spikerates.errors import ParameterError
from spikerates.params import Integer, Number, positive_seconds


@pytest.mark.parametrize("value", [1e-9, 0.04, 3, "0.5", 1e300])
def test_positive_seconds_accepts(value):
    assert positive_seconds("tau", value) == float(value)


@pytest.mark.parametrize(
    "value, match",
    [
        (0, r"^tau: must be > 0 seconds, got 0$"),
        (-0.5, "must be > 0 seconds"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        ("abc", "a number in seconds"),
        (None, "a number in seconds"),
        (True, "a number in seconds"),
    ],
)
def test_positive_seconds_rejects(value, match):
    with pytest.raises(ParameterError, match=match):
        positive_seconds("tau", value)


def test_number_bounds_open_and_closed():
    ratio = Number("ratio", low=0, high=1, high_open=True)
    assert ratio(0) == 0.0
    with pytest.raises(ParameterError, match=r"ratio: must be < 1, got 1"):
        ratio(1)
    with pytest.raises(ParameterError, match=r"ratio: must be >= 0"):
        ratio(-1)
    with pytest.raises(ParameterError, match="^other: "):
        ratio(2, name="other")


@pytest.mark.parametrize("value", [0, 1.5, "3", True, None])
def test_integer_rejects(value):
    with pytest.raises(ParameterError, match="chunk_steps: must be an integer >= 1"):
        Integer("chunk_steps", low=1)(value)


def test_integer_accepts_integral_values():
    assert Integer("n", low=0)(3.0) == 3 and Integer("n")(-2) == -2
