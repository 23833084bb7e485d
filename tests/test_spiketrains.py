"""The data model: grid rules, exact binning, values rule, dense <-> events."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.spiketrains import (
    DenseSpikes,
    Grid,
    SpikeTrains,
    bin_spikes,
    check_grid,
    count_outside,
    decide_values,
    dense_to_events,
    events_to_dense,
    intersect_intervals,
    ragged_to_trains,
    snap_to_grid,
    trains_to_ragged,
)

DTS = [0.001, 0.0005, 0.1, 1.0, 1 / 30000, 0.003]


def oracle_bin(s: float, grid: Grid) -> int | None:
    """Bin of one spike by exact rational arithmetic on the decimal values.

    The grid times are the exact rationals t_start + (k+1) dt; a spike within
    1e-9 dt of one belongs to its bin, otherwise to the k with
    t[k] - dt < s < t[k].
    """
    t0, dt, x = Fraction(grid.t_start), Fraction(grid.dt), Fraction(s)
    steps = (x - t0) / dt
    nearest = round(steps)
    if abs(steps - nearest) <= Fraction(1, 10**9):
        k = nearest - 1
    else:
        k = int(-((-steps.numerator) // steps.denominator)) - 1  # ceil(steps) - 1
    return k if 0 <= k < grid.n_steps else None


def oracle_counts(spike_times, grid: Grid) -> np.ndarray:
    out = np.zeros((grid.n_steps, len(spike_times)), dtype=np.int64)
    for j, times in enumerate(spike_times):
        for s in times:
            k = oracle_bin(float(s), grid)
            if k is not None:
                out[k, j] += 1
    return out


# --- Grid ------------------------------------------------------------------


def test_grid_times_and_stop():
    grid = Grid(-0.5, 0.25, 4)
    np.testing.assert_array_equal(grid.times(), [-0.25, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(grid.times(1, 3), [0.0, 0.25])
    assert grid.t_stop == 0.5


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"t_start": 0.0, "dt": 0.0, "n_steps": 3}, "dt"),
        ({"t_start": 0.0, "dt": -1.0, "n_steps": 3}, "dt"),
        ({"t_start": np.nan, "dt": 1.0, "n_steps": 3}, "t_start"),
        ({"t_start": 0.0, "dt": 1.0, "n_steps": -1}, "t_stop"),
    ],
)
def test_grid_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        Grid(**kwargs)


def test_grid_range_checked():
    with pytest.raises(ValueError, match="outside the grid"):
        Grid(0.0, 1.0, 3).times(2, 5)


# --- default grid ------------------------------------------------------------


@pytest.mark.parametrize(
    "times, dt, t_start, n_steps",
    [
        # t_start = 0 when every spike is after 0; t_stop the first grid time
        # at or after the last spike.
        ([[0.0105, 0.002]], 0.001, 0.0, 11),
        ([[0.004]], 0.001, 0.0, 4),
        # A spike at 0 lies in the bin ending at 0: t_start moves to -dt.
        ([[0.0, 0.5]], 0.1, -0.1, 6),
        # Negative times: t_start = the grid point just below the earliest.
        ([[-0.25, 0.1]], 0.1, -0.3, 4),
        ([[-0.2, 0.1]], 0.1, -0.3, 4),
        ([[0.3], [-1.05]], 0.5, -1.5, 4),
        # No spikes at all: an empty grid at 0.
        ([[], []], 0.01, 0.0, 0),
    ],
)
def test_default_grid(times, dt, t_start, n_steps):
    grid = SpikeTrains([np.array(t) for t in times]).grid(dt)
    assert grid.t_start == pytest.approx(t_start, abs=1e-12)
    assert grid.n_steps == n_steps
    # Every spike lands in the default grid.
    trains = [np.array(t, float) for t in times]
    assert count_outside(trains, grid) == 0


def test_explicit_window_counts_outside():
    trains = SpikeTrains([np.array([0.05, 0.15, 0.35, 0.95]), np.array([1.2])])
    grid = trains.grid(0.1, t_start=0.1, t_stop=0.9)
    assert (grid.t_start, grid.n_steps) == (0.1, 8)
    counts = bin_spikes(trains.spike_times, grid)
    assert counts.sum() == 2
    assert count_outside(trains.spike_times, grid) == 3


def test_window_hints_from_source_are_defaults():
    trains = SpikeTrains([np.array([0.5])], t_start=-1.0, t_stop=2.0)
    grid = trains.grid(0.5)
    assert (grid.t_start, grid.n_steps) == (-1.0, 6)
    assert trains.grid(0.5, t_start=0.0).n_steps == 4


def test_t_stop_before_t_start_is_an_error():
    with pytest.raises(ParameterError, match="t_stop"):
        SpikeTrains([np.array([0.5])]).grid(0.1, t_start=1.0, t_stop=0.5)


# --- exact binning ---------------------------------------------------------


@pytest.mark.parametrize("dt", DTS)
def test_spikes_on_grid_times_go_to_that_bin(dt):
    # Times computed in several ways, all meant to be the grid time j*dt.
    j = np.arange(1, 200)
    variants = [j * dt, np.cumsum(np.full(199, dt)), j / (1 / dt), j * dt + 1e-12 * dt]
    grid = Grid(0.0, dt, 200)
    for times in variants:
        counts = bin_spikes([times], grid)
        np.testing.assert_array_equal(np.flatnonzero(counts[:, 0]), j - 1)


def test_float_noise_on_a_bin_edge():
    # 0.1 + 0.2 = 0.30000000000000004 is the grid time 0.3, not in the next bin.
    counts = bin_spikes([np.array([0.1 + 0.2])], Grid(0.0, 0.1, 5))
    assert np.flatnonzero(counts[:, 0]).tolist() == [2]


def test_just_after_an_edge_goes_to_the_next_bin():
    dt = 0.001
    counts = bin_spikes([np.array([0.002 + 1e-6 * dt])], Grid(0.0, dt, 5))
    assert np.flatnonzero(counts[:, 0]).tolist() == [2]


times_strategy = st.lists(
    st.one_of(
        # On bin edges (as decimals and as float products).
        st.integers(-50, 150).map(lambda j: j * 0.001),
        st.integers(-50, 150).map(lambda j: float(f"{j / 1000:.3f}")),
        # Anywhere, including far outside the grid.
        st.floats(-0.1, 0.2, allow_nan=False),
        st.integers(-50, 150).map(lambda j: j * 0.001 + 0.0004),
    ),
    max_size=15,
)


@settings(max_examples=50, deadline=None)
@given(
    units=st.lists(times_strategy, max_size=4),
    t_start=st.sampled_from([0.0, -0.01, 0.005, -0.0423]),
    n_steps=st.integers(0, 120),
)
def test_binning_matches_exact_oracle(units, t_start, n_steps):
    grid = Grid(t_start, 0.001, n_steps)

    def clear_of_the_tolerance(s: float) -> bool:
        # A time 1e-9 dt from a grid time, to float precision, is a tie that
        # rounding decides either way.
        steps = (Fraction(s) - Fraction(t_start)) / Fraction(grid.dt)
        off = abs(steps - round(steps))
        return abs(off - Fraction(1, 10**9)) > Fraction(1, 10**12)

    units = [[s for s in u if clear_of_the_tolerance(s)] for u in units]
    spike_times = [np.sort(np.array(u, dtype=float)) for u in units]
    counts = bin_spikes(spike_times, grid)
    np.testing.assert_array_equal(counts, oracle_counts(spike_times, grid))
    total = sum(t.size for t in spike_times)
    assert counts.sum() + count_outside(spike_times, grid) == total


@settings(max_examples=50, deadline=None)
@given(
    units=st.lists(times_strategy, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 200), max_size=5),
)
def test_binning_by_chunks_equals_whole(units, cuts):
    grid = Grid(-0.05, 0.001, 200)
    spike_times = [np.sort(np.array(u, dtype=float)) for u in units]
    whole = bin_spikes(spike_times, grid)
    edges = [0, *sorted(cuts), 200]
    pieces = [
        bin_spikes(spike_times, grid, a, b)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_bin_spikes_counts_repeats_and_keeps_empty_units():
    counts = bin_spikes([np.array([0.5, 0.5, 0.5]), np.array([])], Grid(0.0, 0.5, 2))
    np.testing.assert_array_equal(counts, [[3, 0], [0, 0]])
    assert counts.dtype == np.int64


def test_snap_to_grid_gives_grid_times_of_occupied_bins():
    grid = Grid(-0.1, 0.1, 10)
    snapped = snap_to_grid([np.array([0.05, 0.07, 0.3, 5.0]), np.array([])], grid)
    times = grid.times()
    np.testing.assert_array_equal(snapped[0], [times[1], times[3]])
    assert snapped[1].size == 0


# --- SpikeTrains -------------------------------------------------------------


def test_spike_trains_sort_and_convert(sample_trains):
    for times in sample_trains.spike_times:
        assert times.dtype == np.float64
        assert np.all(np.diff(times) >= 0)
    assert sample_trains.n_units == 5
    assert sample_trains.spike_times[0].tolist() == [-0.002, 0.001, 0.25, 0.5]
    float32 = SpikeTrains([np.array([0.3, 0.1], dtype=np.float32)])
    assert float32.spike_times[0].tolist() == [np.float32(0.1), np.float32(0.3)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spike_times": [np.array([0.1, np.nan])]}, "nan spike time"),
        ({"spike_times": [np.array([np.inf])]}, "inf spike time"),
        ({"spike_times": [np.array([0.1])], "unit_ids": [1, 2]}, "2 unit ids for 1"),
        ({"spike_times": [[0.1], [0.2]], "unit_ids": [4, 4]}, "4 appears more than"),
        ({"spike_times": [[0.1]], "labels": ["a", "b"]}, "2 labels for 1 units"),
        ({"spike_times": [["a"]]}, "not numbers"),
        ({"spike_times": [[0.1]], "t_start": 1.0, "t_stop": 0.0}, "before t_start"),
    ],
)
def test_spike_trains_reject_bad_data(kwargs, match):
    with pytest.raises(SpikeDataError, match=match):
        SpikeTrains(**{"source": "rec.nwb", **kwargs})


def test_select_units_and_labels(sample_trains):
    picked = sample_trains.select_units(["42", 7])
    # The source's order is kept.
    assert picked.unit_ids.tolist() == [7, 42]
    assert picked.labels.tolist() == ["good", "good"]
    good = sample_trains.select_labels("good")
    assert good.unit_ids.tolist() == [7, 11, 42]
    with pytest.raises(SpikeDataError, match="no unit with id 5"):
        sample_trains.select_units([5])
    with pytest.raises(SpikeDataError, match="no unit labels"):
        SpikeTrains([np.zeros(1)]).select_labels("good")


def test_string_unit_ids():
    trains = SpikeTrains([[0.1], [0.2]], unit_ids=np.array(["b", "a"], dtype=object))
    assert trains.unit_ids.dtype.kind == "U"
    assert trains.select_units(["a"]).spike_times[0].tolist() == [0.2]


# --- values rule -------------------------------------------------------------


@pytest.mark.parametrize(
    "spikes, dt, expected",
    [
        (np.array([[0, 1000.0], [2000.0, 0]]), 0.001, "amplitude"),
        (np.array([[0, 1, 3], [2, 0, 0]]), 0.001, "counts"),
        (np.array([[0, 1.0], [2.0, 0]], dtype=np.float32), 0.001, "counts"),
        # A multiple of 1/dt within rtol 1e-6 counts as amplitude.
        (np.array([[1 / 0.003 * (1 + 1e-9)]]), 0.003, "amplitude"),
        # Both readings coincide at dt = 1; amplitude is tried first.
        (np.array([[0, 1], [1, 0]]), 1.0, "amplitude"),
        (np.zeros((3, 2)), 0.001, "amplitude"),
        (np.array([[True, False]]), 0.001, "counts"),
    ],
)
def test_decide_values_auto(spikes, dt, expected):
    assert decide_values(spikes, dt) == expected


@pytest.mark.parametrize(
    "spikes, mode, match",
    [
        (np.array([[0.5, 1000.0]]), "auto", "give values='counts' or"),
        (np.array([[-1.0, 0.0]]), "auto", "must be >= 0"),
        (np.array([[np.nan]]), "amplitude", "finite"),
        (np.array([[np.inf]]), "counts", "finite"),
        (np.array([[0.5]]), "counts", "non-negative integers"),
        (np.array([["x"]]), "auto", "numbers"),
    ],
)
def test_decide_values_errors(spikes, mode, match):
    with pytest.raises(SpikeDataError, match=match):
        decide_values(spikes, 0.001, mode, source="x.npz")


def test_decide_values_explicit_modes():
    spikes = np.array([[0.5 / 0.001]])
    assert decide_values(spikes, 0.001, "amplitude") == "amplitude"
    assert decide_values(np.array([[2.0]]), 0.001, "counts") == "counts"
    with pytest.raises(ParameterError, match="values"):
        decide_values(spikes, 0.001, "rates")


# --- DenseSpikes -------------------------------------------------------------


def test_amplitude_chunk_counts_and_amplitude():
    t = 0.002 * np.arange(1, 5)
    counts = np.array([[0, 1], [2, 0], [0, 0], [1, 1]])
    dense = DenseSpikes(t, counts, values="counts")
    chunk = dense.amplitude_chunk(1, 3)
    assert chunk.dtype == np.float64
    np.testing.assert_allclose(chunk, counts[1:3] / 0.002, rtol=1e-12)
    amp = (counts / 0.002).astype(np.float32)
    dense = DenseSpikes(t, amp)
    assert dense.values == "amplitude"
    np.testing.assert_array_equal(dense.amplitude_chunk(), amp.astype(np.float64))
    np.testing.assert_array_equal(dense.counts_chunk(), counts)


@pytest.mark.parametrize(
    "t, spikes, kwargs, match",
    [
        ([0.1, 0.2, 0.35], np.zeros((3, 1)), {}, "uniform"),
        ([0.3, 0.2, 0.1], np.zeros((3, 1)), {}, "must increase"),
        ([0.1, 0.1, 0.2], np.zeros((3, 1)), {}, "must increase"),
        ([0.1, np.nan, 0.3], np.zeros((3, 1)), {}, "finite"),
        ([0.1, 0.2, 0.3], np.zeros((2, 3)), {}, "shape"),
        ([0.1, 0.2], np.zeros((3, 2)), {}, "transposed"),
        ([0.1, 0.2, 0.3], np.zeros((3, 1)), {"dt": 0.2}, "disagrees"),
        ([0.1, 0.2, 0.3], np.zeros((3, 2)), {"unit_ids": [1]}, "1 unit ids for 2"),
        ([0.5], np.zeros((1, 1)), {}, "give dt"),
        ([0.1, 0.2, 0.3], -np.ones((3, 1)), {}, ">= 0"),
    ],
)
def test_dense_spikes_reject_bad_data(t, spikes, kwargs, match):
    with pytest.raises(SpikeDataError, match=match):
        DenseSpikes(np.array(t), spikes, source="rec.h5", **kwargs)


def test_dense_float32_time_axis_is_uniform_enough():
    t = (np.arange(1, 2001) * 0.001).astype(np.float32)
    dense = DenseSpikes(t, np.zeros((2000, 1)))
    assert dense.dt == pytest.approx(0.001, rel=1e-6)


def test_dense_select_units():
    dense = DenseSpikes(
        [0.1, 0.2], np.array([[1, 2, 3], [4, 5, 6]]), unit_ids=[5, 6, 7]
    )
    sub = dense.select_units(["7", 5])
    assert sub.unit_ids.tolist() == [5, 7]
    np.testing.assert_array_equal(sub.counts_chunk(), [[1, 3], [4, 6]])


# --- dense <-> events ----------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    counts=st.integers(1, 60).flatmap(
        lambda m: st.lists(
            st.lists(st.integers(0, 3), min_size=m, max_size=m), max_size=4
        )
    ),
    t0=st.sampled_from([0.0, -1.0, 12.5, 3600.0]),
    dt=st.sampled_from(DTS),
    amplitude=st.booleans(),
)
def test_dense_events_dense_is_identity(counts, t0, dt, amplitude):
    n_steps = len(counts[0]) if counts else 5
    matrix = np.array(counts, dtype=np.int64).T.reshape(n_steps, len(counts))
    t = t0 + dt * np.arange(1, n_steps + 1)
    if n_steps < 2:
        return
    values = matrix / dt if amplitude else matrix
    dense = DenseSpikes(t, values, unit_ids=np.arange(10, 10 + len(counts)))
    trains = dense_to_events(dense)
    assert trains.unit_ids.tolist() == dense.unit_ids.tolist()
    grid = trains.grid(dense.dt)
    assert grid.n_steps == n_steps
    # Within 1e-9 dt, or the float64 resolution at t (3600 s at 1/30000 s).
    atol = max(1e-9 * dt, 4 * np.finfo(float).eps * np.abs(t).max())
    np.testing.assert_allclose(grid.times(), t, rtol=0, atol=atol)
    np.testing.assert_array_equal(events_to_dense(trains, grid), matrix)


@pytest.mark.parametrize("t0", [0.0, 3600.0, -7200.0, 86400.0])
@pytest.mark.parametrize("dt", [1 / 30000, 1e-3, 0.1])
def test_identity_far_from_zero(t0, dt):
    # A spike in every bin far along a recording: float64 resolution of t
    # exceeds 1e-9 dt there, and binning must still give every bin back.
    n_steps = 5000
    t = t0 + dt * np.arange(1, n_steps + 1)
    matrix = np.ones((n_steps, 1), dtype=np.int64)
    trains = dense_to_events(DenseSpikes(t, matrix, values="counts"))
    grid = trains.grid(dt)
    assert grid.n_steps == n_steps
    np.testing.assert_array_equal(events_to_dense(trains, grid), matrix)


def test_dense_to_events_places_spikes_at_t():
    t = np.array([1.0, 2.0, 3.0])
    trains = dense_to_events(DenseSpikes(t, [[0, 1], [2, 0], [0, 0]], values="counts"))
    assert [x.tolist() for x in trains.spike_times] == [[2.0, 2.0], [1.0]]
    assert (trains.t_start, trains.t_stop) == (0.0, 3.0)


# --- ragged arrays -----------------------------------------------------------


def test_ragged_round_trip(sample_trains):
    flat, ends = trains_to_ragged(sample_trains)
    back = ragged_to_trains(flat, ends)
    for a, b in zip(back, sample_trains.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "flat, index, match",
    [
        ([0.1, 0.2, 0.3], [2, 1, 3], "must not decrease"),
        ([0.1, 0.2, 0.3], [1, 4], "out of range"),
        ([0.1, 0.2, 0.3], [-1, 3], "out of range"),
        ([0.1, 0.2, 0.3], [1, 2], "last offset is 2"),
        ([0.1, 0.2], [], "no units"),
        ([0.1, 0.2], [0.5, 2], "integers"),
        ([[0.1, 0.2], [0.3, 0.4]], [4], "1-D"),
    ],
)
def test_ragged_errors(flat, index, match):
    with pytest.raises(SpikeDataError, match=match):
        ragged_to_trains(np.array(flat), np.array(index), source="f.npz")


def test_dense_to_events_by_blocks_equals_whole(rng):
    counts = rng.poisson(0.3, size=(503, 4))
    dense = DenseSpikes(0.001 * np.arange(1, 504), counts, values="counts")
    whole = dense_to_events(dense)
    blocks = dense_to_events(dense, block_rows=17)
    for a, b in zip(whole.spike_times, blocks.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sum(t.size for t in whole.spike_times) == counts.sum()


# --- the grid check ----------------------------------------------------------


@pytest.mark.parametrize(
    "t, dt, match",
    [
        ([0.1, 0.2, 0.35], None, "uniform"),
        ([0.3, 0.2, 0.1], None, "must increase"),
        ([[0.1, 0.2]], None, "1-D"),
        ([0.1, np.inf], None, "finite"),
        ([0.5], None, "give dt"),
        ([0.1, 0.2, 0.3], 0.2, "disagrees"),
        ([0.1, 0.2, 0.3], -1.0, "dt"),
    ],
)
def test_check_grid_one_rule_two_error_types(t, dt, match):
    # Arrays given to the library are parameters; a file's t is bad data.
    with pytest.raises(ParameterError, match=match):
        check_grid(np.array(t), dt)
    error = ParameterError if dt == -1.0 else SpikeDataError
    with pytest.raises(error, match=match) as info:
        check_grid(np.array(t), dt, in_file=True, source="rec.h5")
    if error is SpikeDataError:
        assert str(info.value).startswith("rec.h5: t: ")


def test_check_grid_returns_float64_and_mean_step():
    t, step = check_grid(np.arange(1, 11) * 0.001)
    assert t.dtype == np.float64 and step == pytest.approx(0.001, rel=1e-12)
    t32, step32 = check_grid((np.arange(1, 100_001) * 0.001).astype(np.float32))
    assert step32 == pytest.approx(0.001, rel=1e-6)
    assert check_grid([0.5], 0.01)[1] == 0.01


# --- operations of the data model -------------------------------------------


def test_restrict_keeps_the_closed_window_and_intersects_observation():
    trains = SpikeTrains(
        [np.array([0.0, 0.5, 1.0, 1.5, 2.0]), np.array([0.9, 1.2])],
        unit_ids=[1, 2],
        t_start=0.0,
        t_stop=2.0,
        obs_intervals=[np.array([[0.0, 2.0]]), np.array([[0.8, 1.3]])],
    )
    sub = trains.restrict(0.5, 1.5)
    assert [s.tolist() for s in sub.spike_times] == [[0.5, 1.0, 1.5], [0.9, 1.2]]
    assert (sub.t_start, sub.t_stop) == (0.5, 1.5)
    assert [iv.tolist() for iv in sub.obs_intervals] == [[[0.5, 1.5]], [[0.8, 1.3]]]
    assert sub.unit_ids.tolist() == [1, 2]


def test_restrict_epochs_merges_and_keeps_spikes_on_edges():
    trains = SpikeTrains([np.arange(0.0, 3.01, 0.25)], t_start=0.0, t_stop=3.0)
    sub = trains.restrict_epochs([[2.0, 2.5], [0.5, 1.0], [0.75, 1.25]])
    assert sub.spike_times[0].tolist() == [0.5, 0.75, 1.0, 1.25, 2.0, 2.25, 2.5]
    assert sub.obs_intervals[0].tolist() == [[0.5, 1.25], [2.0, 2.5]]
    assert (sub.t_start, sub.t_stop) == (0.0, 3.0)
    with pytest.raises(ParameterError, match="epochs"):
        trains.restrict_epochs([[1.0, 0.5]])


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=6),
    b=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=6),
)
def test_intersect_intervals_equals_a_pointwise_test(a, b):
    a = [(lo, lo + w) for lo, w in a]
    b = [(lo, lo + w) for lo, w in b]
    got = intersect_intervals(np.array(a).reshape(-1, 2), np.array(b).reshape(-1, 2))
    points = np.arange(-1, 62, 0.5)

    def inside(intervals):
        return np.array([any(lo <= p <= hi for lo, hi in intervals) for p in points])

    np.testing.assert_array_equal(inside(got.tolist()), inside(a) & inside(b))
    assert np.all(np.diff(got[:, 0]) > 0) if len(got) > 1 else True


def test_bin_and_chunks_follow_the_binning_rule(sample_trains):
    grid = sample_trains.grid(0.001)
    counts = sample_trains.bin(grid)
    np.testing.assert_array_equal(counts, bin_spikes(sample_trains.spike_times, grid))
    for chunk_steps, batch in [(1, 1), (7, 3), (100, 1 << 16), (5000, 10)]:
        rebuilt = np.zeros_like(counts)
        for k0, k1, rows, units in sample_trains.iter_chunks(
            grid, chunk_steps, batch_spikes=batch
        ):
            assert 0 <= rows.min(initial=0) and rows.max(initial=-1) < k1 - k0
            np.add.at(rebuilt, (rows + k0, units), 1)
        np.testing.assert_array_equal(rebuilt, counts)


def test_chunks_beyond_the_grid_continue_its_rule():
    trains = SpikeTrains([np.array([-0.0105, 0.0005, 0.0305])], t_start=0.0)
    grid = trains.grid(0.01, t_start=0.0, t_stop=0.02)
    found = [
        (k0 + rows).tolist()
        for k0, _, rows, _ in trains.iter_chunks(grid, 2, first=-3, stop=5)
    ]
    assert sum(found, []) == [-2, 0, 3]


def test_dense_to_events_from_chunks_and_per_bin():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.array([[0, 1], [2, 0], [0, 0], [1, 3]])
    pieces = [(t[:2], counts[:2]), (t[2:], counts[2:])]
    trains = dense_to_events(pieces, unit_ids=[5, 6], t_start=0.0, t_stop=4.0)
    assert [s.tolist() for s in trains.spike_times] == [[2.0, 2.0, 4.0], [1.0, 4, 4, 4]]
    assert trains.unit_ids.tolist() == [5, 6] and trains.t_stop == 4.0
    once = dense_to_events(pieces, per_bin=True)
    assert [s.tolist() for s in once.spike_times] == [[2.0, 4.0], [1.0, 4.0]]
    dense = DenseSpikes(t, counts, values="counts")
    once_dense = dense_to_events(dense, per_bin=True)
    for a, b in zip(once.spike_times, once_dense.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    assert dense_to_events([], unit_ids=[1, 2]).n_units == 2


def test_restrict_to_a_grid_uses_the_binning_rule():
    trains = SpikeTrains(
        [np.array([0.1, 0.1 + 1e-13, 0.2, 0.35, 0.5])],
        obs_intervals=[np.array([[0.0, 1.0]])],
    )
    grid = Grid(0.1, 0.1, 3)  # bins (0.1, 0.2], (0.2, 0.3], (0.3, 0.4]
    sub = trains.restrict(grid)
    assert sub.spike_times[0].tolist() == [0.2, 0.35]
    assert (sub.t_start, sub.t_stop) == (0.1, pytest.approx(0.4))
    assert sub.obs_intervals[0].tolist() == [[0.1, pytest.approx(0.4)]]
    np.testing.assert_array_equal(sub.bin(grid), trains.bin(grid))


def test_exclude_intervals_removes_invalid_times_from_observation():
    trains = SpikeTrains(
        [np.array([0.1, 0.3, 0.4, 0.5, 0.9]), np.array([0.45])],
        t_start=0.0,
        t_stop=1.0,
        obs_intervals=[None, np.array([[0.0, 0.6]])],
    )
    valid = trains.exclude_intervals([[0.3, 0.5]])
    assert valid.spike_times[0].tolist() == [0.1, 0.3, 0.5, 0.9]
    assert valid.spike_times[1].tolist() == []
    assert valid.obs_intervals[0].tolist() == [[0.0, 0.3], [0.5, 1.0]]
    assert valid.obs_intervals[1].tolist() == [[0.0, 0.3], [0.5, 0.6]]
    assert trains.exclude_intervals([]).spike_times[0].size == 5


def test_ragged_index_of_the_largest_uint64_is_named_as_it_is():
    from spikerates.errors import SpikeDataError
    from spikerates.spiketrains import ragged_to_trains

    index = np.array([2, 2**64 - 1], dtype=np.uint64)
    with pytest.raises(SpikeDataError, match="offset 18446744073709551615 is out"):
        ragged_to_trains(np.arange(5.0), index)


def test_unit_ids_that_are_not_utf8_are_refused_in_one_line(tmp_path):
    from spikerates import io
    from spikerates.errors import SpikeDataError
    from spikerates.spiketrains import normalize_unit_ids

    with pytest.raises(SpikeDataError, match=r"not UTF-8 \(b'\\x93ab'\)"):
        normalize_unit_ids(np.array([b"\x93ab"], dtype="S3"))
    path = tmp_path / "ids.npz"
    np.savez(
        path,
        spike_times=np.array([0.1, 0.2]),
        spike_times_index=np.array([1, 2]),
        unit_ids=np.array([b"ok", b"\xff\xfe"], dtype="S2"),
    )
    with pytest.raises(SpikeDataError, match="not UTF-8"):
        io.read_spikes(path)
