"""The public estimator facade: spike events, the grid check, the reference
functions on arrays, and the errors of the streaming estimators."""

from __future__ import annotations

import numpy as np
import pytest
from rates_helpers import (
    DT,
    grid,
    mixed_spikes_data,
    reference,
)

from spikerates.errors import ParameterError
from spikerates.estimators import (
    IsiRates,
    KernelFilter,
    rates_isi,
    rates_kernel,
    spikes2events,
    validate_grid,
)


@pytest.fixture(scope="module")
def mixed_spikes():
    """Units with 0, 1, 2, many (Poisson) and dense spikes; none on the edges."""
    t, spikes = mixed_spikes_data()
    return t, spikes.copy()


def test_spikes2events_matches_reference(mixed_spikes):
    t, spikes = mixed_spikes
    ours = spikes2events(t, spikes.T)
    expected = reference.spikes2events(t, spikes.T)
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    single = spikes2events(t, spikes[:, 2])
    assert len(single) == 1 and np.array_equal(single[0], t[[300, 1400]])


# --------------------------------------------------------------- validation


def test_validate_grid_returns_step():
    assert validate_grid(grid(10)) == pytest.approx(DT, rel=1e-12)
    assert validate_grid(np.arange(5)) == 1.0
    # float32 grids of long recordings are as uniform as float32 allows
    assert validate_grid(grid(100_000).astype(np.float32)) == pytest.approx(
        DT, rel=1e-3
    )


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: KernelFilter("gauss", 0.01, 0, 2), ParameterError, "dt"),
        (lambda: KernelFilter("gauss", 0.01, DT, -1), ParameterError, "n_units"),
        (lambda: KernelFilter("gauss", 0, DT, 2), ParameterError, "tau"),
        (
            lambda: KernelFilter("gauss", 0.01, DT, 2).process(np.zeros((5, 3))),
            ValueError,
            "shape",
        ),
        (
            lambda: KernelFilter("expon", 0.01, DT, 1).process([[np.nan]]),
            ValueError,
            "NaN",
        ),
        (lambda: IsiRates([[0.5]], 0.001, 0.1), ValueError, "within"),
        (lambda: IsiRates([[0.05]], 0.1, 0.1), ValueError, "t_first < t_last"),
        (lambda: IsiRates([[np.nan]], 0.0, 0.1), ValueError, "NaN"),
        (
            lambda: IsiRates([[0.05]], 0.0, 0.1, interp="bogus"),
            ParameterError,
            "interp",
        ),
        (
            lambda: IsiRates([[0.05]], 0.0, 0.1).evaluate([0.05, 0.2]),
            ValueError,
            "outside",
        ),
        (lambda: spikes2events(grid(5), np.zeros((2, 4))), ValueError, "last axis"),
    ],
)
def test_streaming_estimators_reject(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_no_units():
    t = grid(100)
    assert rates_kernel(t, np.zeros((100, 0))).shape == (100, 0)
    assert rates_isi(t, np.zeros((100, 0)), interp="cubic").shape == (100, 0)
    assert spikes2events(t, np.zeros((0, 100))) == []
    filt = KernelFilter("expogauss", 0.01, DT, 0)
    rows = filt.process(np.zeros((50, 0))).shape[0] + filt.finish().shape[0]
    assert rows == 50
