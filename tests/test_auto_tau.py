"""Kernel rates with a bandwidth per unit against one-unit runs."""

from __future__ import annotations

import numpy as np
import pytest

from spikerates.auto_tau import (
    choose_taus,
    estimate_rates_per_unit,
    iter_rates_per_unit,
)
from spikerates.bandwidth import optimal_bandwidth
from spikerates.driver import compute_rates
from spikerates.errors import ParameterError
from spikerates.spiketrains import SpikeTrains


@pytest.fixture
def trains(rng):
    t = np.sort(rng.uniform(0, 30, 900))
    keep = rng.uniform(size=t.size) < 0.5 * (1 + np.sin(2 * np.pi * 0.5 * t))
    return SpikeTrains(
        [t[keep], np.sort(rng.uniform(0, 30, 200)), np.array([3.0])],
        unit_ids=np.array([4, 8, 15]),
        t_start=0.0,
        t_stop=30.0,
    )


def test_choose_taus(trains):
    taus = choose_taus(trains, 0.001)
    for u in range(2):
        sigma = optimal_bandwidth(trains.spike_times[u], 0.0, 30.0, dt=0.001).sigma
        assert taus[u] == pytest.approx(2 * sigma, rel=1e-12)
    pooled = choose_taus(trains, 0.001, pool=True)
    assert np.all(pooled == pooled[0])
    # The one-spike unit takes the pooled value.
    assert taus[2] == pooled[0]
    with pytest.raises(ParameterError, match="two spikes"):
        choose_taus(SpikeTrains([np.array([1.0])], t_start=0, t_stop=2), 0.01)


@pytest.mark.parametrize("kind", ["gauss", "alpha"])
def test_per_unit_rates_equal_one_unit_runs(trains, kind):
    taus = np.array([0.05, 0.3, 0.011])
    plan, chunks = iter_rates_per_unit(
        trains, taus, dt=0.002, t_start=1.0, t_stop=29.0, chunk_duration=2.5, kind=kind
    )
    parts = list(chunks)
    assert len(parts) > 5
    t = np.concatenate([p[0] for p in parts])
    rates = np.concatenate([p[1] for p in parts])
    for u, tau in enumerate(taus):
        one = compute_rates(
            trains.select_units([trains.unit_ids[u]]),
            "kernel",
            kind=kind,
            tau=float(tau),
            dt=0.002,
            t_start=1.0,
            t_stop=29.0,
        )
        np.testing.assert_allclose(t, one.t, rtol=1e-12)
        np.testing.assert_allclose(rates[:, u], one.rates[:, 0], rtol=1e-12, atol=1e-12)
    assert plan.n_steps == t.size


def test_estimate_to_a_writer(trains):
    got = {}

    class Writer:
        def __init__(self, n_rows, unit_ids, attrs):
            got.update(n_rows=n_rows, unit_ids=unit_ids, attrs=attrs, rows=[])

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def append(self, t, values):
            got["rows"].append(values)

    taus = np.array([0.05, 0.1, 0.2])
    steps = []
    summary = estimate_rates_per_unit(
        trains, Writer, taus, dt=0.01, dtype=np.float32, progress=steps.append
    )
    assert summary["n_steps"] == got["n_rows"] == sum(steps) == 3000
    np.testing.assert_array_equal(got["attrs"]["tau"], taus)
    assert got["rows"][0].dtype == np.float32
    np.testing.assert_array_equal(got["unit_ids"], [4, 8, 15])
