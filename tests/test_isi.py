"""ISI rates: parity with the reference per unit, edge cases, streaming pieces."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.interpolate
from hypothesis import given, settings
from hypothesis import strategies as st
from rates_helpers import (
    DT,
    assert_matches,
    grid,
    mixed_spikes_data,
    reference,
    spike_matrix,
)

from spikerates.errors import ParameterError
from spikerates.estimators import rates_isi, spikes2events
from spikerates.isi import ISI_INTERP_KINDS, IsiRates, _grid_positions


@pytest.fixture(scope="module")
def mixed_spikes():
    """Units with 0, 1, 2, many (Poisson) and dense spikes; none on the edges."""
    t, spikes = mixed_spikes_data()
    return t, spikes.copy()


def reference_isi_per_unit(t, spikes, midpoint, interp):
    """The reference per unit; None for units where it raises."""
    columns = []
    for unit in range(spikes.shape[1]):
        try:
            columns.append(
                reference.rates_isi(
                    t, spikes[:, [unit]], midpoint=midpoint, interp=interp
                )[:, 0]
            )
        except ValueError:
            columns.append(None)
    return columns


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_rates_isi_matches_reference(mixed_spikes, interp, midpoint, dtype):
    t, spikes = mixed_spikes
    spikes = spikes.astype(dtype)
    ours = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert ours.shape == spikes.shape and ours.dtype == np.float64
    expected = reference_isi_per_unit(t, spikes, midpoint, interp)
    compared = 0
    for unit, column in enumerate(expected):
        if column is not None:
            assert_matches(ours[:, unit], column)
            compared += 1
    # The reference handles units with enough spikes for any kind.
    assert compared >= 4
    if interp in ("zero", "linear", "nearest", "previous", "next", "slinear"):
        assert_matches(
            ours, reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        )


def test_rates_isi_many_units_and_spikes():
    rng = np.random.default_rng(5)
    n_steps = 5000
    t = grid(n_steps)
    spikes = (rng.random((n_steps, 60)) < rng.uniform(0, 0.1, 60)) / DT
    spikes[[0, -1]] = 0
    for interp, midpoint in itertools.product(["zero", "linear"], [False, True]):
        expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        assert_matches(rates_isi(t, spikes, midpoint=midpoint, interp=interp), expected)


def test_spike_on_first_step_zero():
    # The reference raises (repeated interpolation point at t[0]); the rate
    # of the first ISI starts at t[0].
    t = grid(10)
    spikes = spike_matrix([[0, 3, 7]], 10)
    expected = np.array([1 / 3] * 3 + [1 / 4] * 4 + [0] * 3) / DT
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, interp="zero")
    assert_matches(rates_isi(t, spikes)[:, 0], expected)


def test_spike_on_last_step_zero():
    t = grid(10)
    spikes = spike_matrix([[2, 5, 9]], 10)
    expected = np.array([0] * 2 + [1 / 3] * 3 + [1 / 4] * 4 + [0]) / DT
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, interp="zero")
    assert_matches(rates_isi(t, spikes)[:, 0], expected)


def test_spike_on_first_and_last_step_linear():
    # The reference's linear interpolation (np.interp) accepts the repeated
    # points; the answer is the same as with them de-duplicated.
    t = grid(9)
    spikes = spike_matrix([[0, 2, 8]], 9)
    r1, r2 = 1 / (2 * DT), 1 / (6 * DT)
    expected = np.concatenate([[r1, (r1 + r2) / 2], r2 + (0 - r2) * np.arange(7) / 6])
    assert_matches(rates_isi(t, spikes, interp="linear")[:, 0], expected)
    assert_matches(
        rates_isi(t, spikes, interp="linear"),
        reference.rates_isi(t, spikes, interp="linear"),
    )


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize(
    "interp", ["linear", "nearest", "nearest-up", "previous", "next"]
)
def test_spikes_on_edges_match_reference_where_it_works(interp, midpoint):
    # These kinds accept the repeated points that edge spikes create.
    t = grid(50)
    spikes = spike_matrix([[0, 10, 30, 49], [0, 20], [7, 49], [0, 49]], 50)
    expected = reference.rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert_matches(rates_isi(t, spikes, midpoint=midpoint, interp=interp), expected)


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("interp", ISI_INTERP_KINDS)
def test_units_with_no_or_one_spike_are_zero(interp, midpoint):
    t = grid(50)
    spikes = spike_matrix([[], [20], [0], [49]], 50)
    rates = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    assert rates.shape == (50, 4)
    assert np.all(rates == 0)


def test_cubic_falls_back_to_quadratic_with_two_spikes_at_midpoints():
    # Midpoints of 2 spikes give 3 points: the reference's cubic raises; the
    # quadratic through (t0, 0), (m, 1/isi), (t_end, 0) is a parabola.
    t = grid(40)
    spikes = spike_matrix([[9, 20]], 40)
    with pytest.raises(ValueError):
        reference.rates_isi(t, spikes, midpoint=True, interp="cubic")
    t0, t_end, m, r = t[0], t[-1], 0.5 * (t[9] + t[20]), 1 / (t[20] - t[9])
    expected = r * (t - t0) * (t - t_end) / ((m - t0) * (m - t_end))
    np.testing.assert_allclose(
        rates_isi(t, spikes, midpoint=True, interp="cubic")[:, 0],
        expected,
        rtol=1e-9,
        atol=1e-9,
    )
    # quadratic with 1 spike at midpoints: 2 points, linear between zeros
    one = spike_matrix([[9]], 40)
    assert np.all(rates_isi(t, one, midpoint=True, interp="quadratic") == 0)


@pytest.mark.parametrize("interp", ["slinear", "quadratic", "cubic", "zero"])
def test_spline_with_spike_on_first_step_uses_unique_points(interp):
    t = grid(60)
    steps = [0, 10, 25, 41]
    spikes = spike_matrix([steps], 60)
    events = t[steps]
    # Hand-built points: the spike at t[0] replaces the 0 placed there.
    x = np.concatenate([events, [t[-1]]])
    y = np.concatenate([1 / np.diff(events), [0, 0]])
    expected = scipy.interpolate.interp1d(x, y, kind=interp)(t)
    assert_matches(rates_isi(t, spikes, interp=interp)[:, 0], expected)


def test_isi_streaming_pieces_equal_whole(mixed_spikes):
    t, spikes = mixed_spikes
    spikes = spikes.copy()
    spikes[[0, -1], 3] = 1 / DT
    events = spikes2events(t, spikes.T)
    for interp, midpoint in itertools.product(ISI_INTERP_KINDS, [False, True]):
        whole = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
        isi = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp)
        edges = [0, 1, 300, 301, 999, 1400, 1999, 2000]  # 300: a spike's step
        pieces = [isi.evaluate(t[a:b]) for a, b in itertools.pairwise(edges)]
        assert_matches(np.concatenate(pieces), whole)
        assert isi.evaluate(t[5:5]).shape == (0, spikes.shape[1])


def test_isi_rates_accepts_unsorted_and_repeated_times():
    t = grid(100)
    isi = IsiRates([t[[50, 10, 30, 30]], []], t[0], t[-1])
    expected = rates_isi(t, spike_matrix([[10, 30, 50], []], 100))
    assert_matches(isi.evaluate(t), expected)


@settings(max_examples=40, deadline=None)
@given(
    interp=st.sampled_from(["zero", "linear", "nearest", "previous", "cubic"]),
    midpoint=st.booleans(),
    n_steps=st.integers(2, 120),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_isi_pieces_equal_whole_property(interp, midpoint, n_steps, seed, data):
    """Any split of the grid gives the whole-array rates, spikes anywhere."""
    rng = np.random.default_rng(seed)
    t = grid(n_steps)
    density = data.draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    spikes = (rng.random((n_steps, 4)) < density) / DT
    whole = rates_isi(t, spikes, midpoint=midpoint, interp=interp)
    events = spikes2events(t, spikes.T)
    isi = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp)
    cuts = data.draw(st.lists(st.integers(0, n_steps), max_size=6))
    edges = sorted({0, n_steps, *cuts})
    pieces = [isi.evaluate(t[a:b]) for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_isi_state_is_two_values_per_point():
    """The estimator keeps a time and a rate per point, little else."""
    rng = np.random.default_rng(2)
    t = grid(20000)
    spikes = (rng.random((20000, 30)) < 0.05) / DT
    spikes[[0, -1], :3] = 1 / DT  # repeated points at the edges
    events = spikes2events(t, spikes.T)
    n_spikes = sum(e.size for e in events)
    for interp in ("zero", "linear", "nearest", "cubic"):
        isi = IsiRates(events, t[0], t[-1], interp=interp)
        kept = sum(a.nbytes for a in vars(isi).values() if isinstance(a, np.ndarray))
        assert kept <= 16 * (n_spikes + 2 * 30) + 16 * 30


@pytest.mark.parametrize("midpoint", [False, True])
def test_isi_points_are_deduplicated_for_every_kind(midpoint):
    t = grid(50)
    events = [t[[0, 10, 49]], t[[5, 20]], t[[]]]
    expected = IsiRates(events, t[0], t[-1], midpoint=midpoint).points
    for interp in ISI_INTERP_KINDS:
        points = IsiRates(events, t[0], t[-1], midpoint=midpoint, interp=interp).points
        for (x, y), (x0, y0) in zip(points, expected, strict=True):
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
    x, y = expected[0]
    if not midpoint:
        np.testing.assert_array_equal(x, t[[0, 10, 49]])
        np.testing.assert_array_equal(y, [*(1 / np.diff(t[[0, 10, 49]])), 0])


BAD_T = grid(50).copy()
BAD_T[20] += 1e-5


@pytest.mark.parametrize(
    ("t", "spikes", "kwargs", "error", "match"),
    [
        (BAD_T, np.zeros((50, 2)), {}, ValueError, "uniform"),
        (grid(50), np.zeros((51, 2)), {}, ValueError, "time steps"),
        (grid(50), np.full((50, 2), np.inf), {}, ValueError, "NaN or infinite"),
        (grid(50), np.zeros((50, 2)), {"interp": "spline5"}, ParameterError, "interp"),
        (grid(1), np.zeros((1, 2)), {}, ValueError, "at least 2"),
    ],
)
def test_rates_isi_rejects(t, spikes, kwargs, error, match):
    with pytest.raises(error, match=match):
        rates_isi(t, spikes, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(-(10**6), 10**6),
    n_t=st.integers(1, 300),
    dt=st.sampled_from([1e-3, 1e-4, 1 / 30000, 0.1]),
    queries=st.lists(st.floats(-2, 302, allow_nan=False), max_size=40),
)
def test_grid_positions_equal_searchsorted(start, n_t, dt, queries):
    t_chunk = (start + np.arange(1, n_t + 1)) * dt
    # Grid times, midpoints as the ISI estimator computes them, half steps
    # and arbitrary positions (in steps from the grid's origin).
    half_steps = start + 1.5 + np.arange(n_t)
    times = np.concatenate(
        [
            t_chunk,
            0.5 * (t_chunk[:-1] + t_chunk[1:]),
            half_steps * dt,
            (start + 1 + np.asarray(queries)) * dt,
        ]
    )
    expected = np.searchsorted(t_chunk, times, side="left")
    np.testing.assert_array_equal(_grid_positions(t_chunk, times), expected)


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(st.integers(0, 40), min_size=2, max_size=30),
    kind=st.sampled_from(["nearest", "nearest-up", "previous", "next"]),
)
def test_step_kinds_equal_scipy_interp1d(steps, kind):
    # Points on a coarse lattice and a grid holding every point and every
    # halfway point, so ties between grid times, points and halfway points
    # are everywhere; repeated times included.
    xs = np.sort(np.array(steps, dtype=np.float64)) * 0.25
    if xs[0] == xs[-1]:
        return
    ys = np.arange(xs.size, dtype=np.float64)
    t = xs[0] + 0.125 * np.arange(int((xs[-1] - xs[0]) / 0.125) + 1)
    expected = scipy.interpolate.interp1d(xs, ys, kind=kind, assume_sorted=True)(t)
    # An estimator holding these points as one unit's.
    estimator = IsiRates([[]], xs[0], xs[-1], interp=kind)
    estimator._x, estimator._y = xs, ys
    estimator._start, estimator._count = np.array([0]), np.array([xs.size])
    np.testing.assert_array_equal(estimator.evaluate(t)[:, 0], expected)
