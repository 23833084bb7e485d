"""Binned counts against Elephant's time_histogram and the data model."""

from __future__ import annotations

import numpy as np
import pytest

from spikerates.counts import plan_counts
from spikerates.errors import ParameterError
from spikerates.spiketrains import DenseSpikes, SpikeTrains, events_to_dense


def _collect(plan, chunk_steps):
    parts = list(plan.chunks(chunk_steps))
    return np.concatenate([t for t, _ in parts]), np.concatenate([v for _, v in parts])


def test_counts_match_elephant_time_histogram(rng):
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    from elephant.statistics import time_histogram

    trains = SpikeTrains(
        [np.sort(rng.uniform(0, 10, m)) for m in (500, 80, 0)], t_start=0.0, t_stop=10.0
    )
    plan = plan_counts(trains, dt=0.05)
    t, counts = _collect(plan, 37)
    np.testing.assert_allclose(t, 0.05 * np.arange(1, 201), rtol=1e-12)
    for u, times in enumerate(trains.spike_times):
        st = neo.SpikeTrain(times * pq.s, t_start=0 * pq.s, t_stop=10 * pq.s)
        hist = time_histogram([st], 0.05 * pq.s, output="counts")
        # Random times lie on no bin edge, where Elephant's bins (closed on
        # the left) and the grid's (closed on the right) would differ.
        np.testing.assert_array_equal(counts[:, u], np.asarray(hist).ravel())
    assert counts.dtype == np.int64
    rate_plan = plan_counts(trains, dt=0.05, mode="rate")
    _, rates = _collect(rate_plan, 1000)
    np.testing.assert_allclose(rates, counts / 0.05)


def test_chunks_equal_the_whole_grid(sample_trains):
    plan = plan_counts(sample_trains, dt=0.001)
    grid = sample_trains.grid(0.001)
    for steps in (1, 7, 10_000):
        t, counts = _collect(plan, steps)
        np.testing.assert_array_equal(counts, events_to_dense(sample_trains, grid))
        np.testing.assert_allclose(t, grid.times())
    window = plan_counts(sample_trains, dt=0.001, t_start=0.0, t_stop=0.3)
    # Bins (0, 0.3]: the spikes at or before 0 and after 0.3 are outside.
    outside = sum(
        int(np.sum((t <= 0) | (t > 0.3 + 1e-12))) for t in sample_trains.spike_times
    )
    assert outside > 3
    assert window.n_outside == outside
    assert window.output_bytes() == 300 * 5 * 8


def test_unobserved_grid_times_are_nan():
    trains = SpikeTrains(
        [np.array([0.15, 0.55]), np.array([0.35])],
        t_start=0.0,
        t_stop=1.0,
        obs_intervals=[np.array([[0.0, 0.4]]), np.array([[0.0, 1.0]])],
    )
    plan = plan_counts(trains, dt=0.1)
    assert plan.dtype == np.float64
    _, counts = _collect(plan, 3)
    np.testing.assert_array_equal(
        counts[:, 0], [0, 1, 0, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]
    )
    np.testing.assert_array_equal(counts[:, 1], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])


def test_dense_input_keeps_its_grid():
    t = 0.01 * np.arange(1, 11)
    spikes = np.zeros((10, 2))
    spikes[[1, 4, 4], [0, 1, 1]] = 1
    spikes[4, 1] = 2
    dense = DenseSpikes(t, spikes, values="counts")
    plan = plan_counts(dense, t_start=0.02, t_stop=0.08)
    got_t, counts = _collect(plan, 4)
    np.testing.assert_allclose(got_t, t[2:8])
    np.testing.assert_array_equal(counts, spikes[2:8].astype(int))
    assert plan.n_outside == 1
    with pytest.raises(ParameterError, match="does not match"):
        plan_counts(dense, dt=0.02)


def test_bad_parameters(sample_trains):
    with pytest.raises(ParameterError, match="as"):
        plan_counts(sample_trains, dt=0.1, mode="hz")
    with pytest.raises(ParameterError, match="dt"):
        plan_counts(sample_trains)
