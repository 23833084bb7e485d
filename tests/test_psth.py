"""PSTHs against plain per-trial loops, the rate estimator and simulations."""

from __future__ import annotations

import numpy as np
import pytest

from spikerates.bandwidth import optimal_bandwidth
from spikerates.errors import ParameterError
from spikerates.estimators import rates_kernel
from spikerates.psth import compute_psth, trial_windows_valid
from spikerates.spiketrains import SpikeTrains, bin_index


@pytest.fixture
def recording(rng):
    """Three units over 100 s and 40 events with two conditions."""
    trains = SpikeTrains(
        [np.sort(rng.uniform(0, 100, m)) for m in (2000, 600, 0)],
        unit_ids=np.array([4, 9, 2]),
        t_start=0.0,
        t_stop=100.0,
    )
    events = np.sort(rng.uniform(1, 99, 40))
    groups = np.where(np.arange(40) % 3 == 0, "left", "right")
    return trains, events, groups


def plain_psth(times, events, low, high, dt):
    """Per-trial histograms (left-closed bins), then mean and SEM."""
    edges = low + dt * np.arange(int(round((high - low) / dt)) + 1)
    per_trial = np.array([np.histogram(times - e, edges)[0] / dt for e in events])
    sem = per_trial.std(axis=0, ddof=1) / np.sqrt(len(events))
    return per_trial, per_trial.mean(axis=0), sem


def test_binned_matches_plain_per_trial_loop(recording):
    trains, events, groups = recording
    result = compute_psth(
        trains, events, (-0.5, 1.0), dt=0.05, groups=groups, keep_trials=True
    )
    assert list(result.groups) == ["left", "right"]
    np.testing.assert_allclose(result.t, -0.5 + 0.05 * np.arange(1, 31), rtol=1e-12)
    for g, name in enumerate(result.groups):
        ev = events[groups == name]
        for u in range(2):
            per_trial, mean, sem = plain_psth(
                trains.spike_times[u], ev, -0.5, 1.0, 0.05
            )
            np.testing.assert_allclose(
                result.mean[g, :, u], mean, rtol=1e-12, atol=1e-12
            )
            np.testing.assert_allclose(result.sem[g, :, u], sem, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(
                result.trials[groups == name, :, u], per_trial, rtol=1e-12
            )
            assert result.n_trials[g, u] == ev.size
    # The silent unit: zero rate, zero spread.
    assert np.all(result.mean[:, :, 2] == 0) and np.all(result.sem[:, :, 2] == 0)
    assert np.all(result.n_dropped == 0)


def test_spike_on_a_bin_edge_follows_the_grid_rule():
    # (t[k] - dt, t[k]]: a spike exactly at the event is in the bin ending at 0.
    trains = SpikeTrains([np.array([10.0, 10.25])], t_start=0.0, t_stop=20.0)
    result = compute_psth(trains, [10.0], (-0.5, 0.5), dt=0.25, n_bootstrap=5)
    np.testing.assert_array_equal(result.t, [-0.25, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(result.mean[0, :, 0], [0, 4.0, 4.0, 0])


def test_bootstrap_band_is_the_plain_resampling_loop(recording):
    trains, events, _ = recording
    result = compute_psth(
        trains, events, (-0.2, 0.3), dt=0.1, n_bootstrap=300, seed=5, ci=0.9
    )
    per_trial, _, _ = plain_psth(trains.spike_times[1], events, -0.2, 0.3, 0.1)
    rng = np.random.default_rng([5, 0, 1])
    draws = rng.integers(0, events.size, size=(300, events.size))
    means = per_trial[draws].mean(axis=1)
    low, high = np.quantile(means, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(result.ci_low[0, :, 1], low, rtol=1e-12)
    np.testing.assert_allclose(result.ci_high[0, :, 1], high, rtol=1e-12)
    again = compute_psth(
        trains.select_units([9]), events, (-0.2, 0.3), dt=0.1, n_bootstrap=300, seed=5
    )
    assert not np.array_equal(again.ci_low[0, :, 0], result.ci_low[0, :, 1])


def _true_rate(t0, t1, base, amp, freq):
    """Mean over [t0, t1] of base + amp sin(2 pi freq t), Hz."""
    w = 2 * np.pi * freq
    return base + amp * (np.cos(w * t0) - np.cos(w * t1)) / (w * (t1 - t0))


def test_bootstrap_band_covers_the_true_rate():
    base, amp, freq = 20.0, 15.0, 2.0
    low, high, dt = 0.0, 1.0, 0.05
    n_trials, n_units = 60, 40
    hits = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        events = 2.0 * np.arange(1, n_trials + 1)
        trains = []
        for _ in range(n_units):
            spikes = []
            for e in events:
                n = rng.poisson((base + amp) * (high - low))
                s = rng.uniform(0, high - low, n)
                rate = base + amp * np.sin(2 * np.pi * freq * s)
                spikes.append(e + s[rng.uniform(0, base + amp, n) < rate])
            trains.append(np.concatenate(spikes))
        st = SpikeTrains(trains, t_start=0.0, t_stop=events[-1] + 2.0)
        result = compute_psth(
            st, events, (low, high), dt=dt, n_bootstrap=500, seed=seed
        )
        edges = result.t - dt
        truth = _true_rate(edges, result.t, base, amp, freq)[:, None]
        hits.append((result.ci_low[0] <= truth) & (truth <= result.ci_high[0]))
    coverage = np.mean(hits)
    assert 0.92 <= coverage <= 0.975


def test_kernel_trials_equal_the_rate_estimator_on_the_recording(rng):
    dt = 0.001
    times = [np.sort(rng.uniform(0, 20, 400)), np.sort(rng.uniform(0, 20, 90))]
    trains = SpikeTrains(times, t_start=0.0, t_stop=20.0)
    steps = np.array([2345, 7000, 15001])  # events on the recording's grid
    events = steps * dt
    n = 20000
    grid = (np.arange(n) + 1) * dt
    dense = np.zeros((n, 2))
    for u, t in enumerate(times):
        np.add.at(dense[:, u], bin_index(t, 0.0, dt).astype(int), 1.0 / dt)
    for kind in ("gauss", "expon", "alpha", "expogauss"):
        full = rates_kernel(grid, dense, kind=kind, tau=0.03)
        result = compute_psth(
            trains,
            events,
            (-0.3, 0.5),
            dt=dt,
            kind=kind,
            tau=0.03,
            keep_trials=True,
            n_bootstrap=10,
        )
        for k, step in enumerate(steps):
            rows = step - 300 + np.arange(800)
            np.testing.assert_allclose(
                result.trials[k], full[rows], rtol=1e-9, atol=1e-9, err_msg=kind
            )
        np.testing.assert_allclose(result.tau, [0.03, 0.03])


def test_trials_leaving_the_recording_or_observation_are_dropped():
    times = np.arange(0.05, 10.0, 0.1)
    trains = SpikeTrains(
        [times, times],
        unit_ids=np.array([1, 2]),
        t_start=0.0,
        t_stop=10.0,
        obs_intervals=[np.array([[0.0, 10.0]]), np.array([[0.0, 4.0], [6.0, 10.0]])],
    )
    events = np.array([0.3, 0.5, 3.5, 5.0, 6.5, 9.0, 9.5])
    valid = trial_windows_valid(trains, events, -0.5, 1.0)
    np.testing.assert_array_equal(
        valid,
        [
            [False, False],  # starts before the recording
            [True, True],  # starts exactly at it
            [True, False],  # crosses the gap at 4..6
            [True, False],  # inside the gap
            [True, True],
            [True, True],  # ends exactly at the recording's end
            [False, False],  # ends after it
        ],
    )
    result = compute_psth(trains, events, (-0.5, 1.0), dt=0.1, keep_trials=True)
    np.testing.assert_array_equal(result.n_trials, [[5, 3]])
    np.testing.assert_array_equal(result.n_dropped, [[2, 4]])
    per_trial = result.trials.transpose(0, 2, 1)  # (K, N, M)
    assert np.all(np.isnan(per_trial[~valid]))
    assert not np.any(np.isnan(per_trial[valid]))
    np.testing.assert_allclose(result.mean[0], 10.0, rtol=1e-12)


def test_no_trials_left_gives_nan():
    trains = SpikeTrains([np.array([1.0, 2.0])], t_start=0.0, t_stop=3.0)
    result = compute_psth(trains, [0.1], (-0.5, 0.5), dt=0.1)
    assert result.n_trials[0, 0] == 0 and result.n_dropped[0, 0] == 1
    assert np.all(np.isnan(result.mean)) and np.all(np.isnan(result.ci_low))


def test_one_trial_has_no_sem():
    trains = SpikeTrains([np.array([1.0, 1.05])], t_start=0.0, t_stop=3.0)
    result = compute_psth(trains, [1.0], (-0.5, 0.5), dt=0.1)
    assert np.all(np.isnan(result.sem))
    np.testing.assert_allclose(result.ci_low, result.mean)


def test_tau_auto_is_the_bandwidth_of_the_superimposed_trials(recording):
    trains, events, _ = recording
    result = compute_psth(
        trains, events, (-0.5, 1.0), dt=0.005, kind="gauss", tau="auto", n_bootstrap=5
    )
    offsets = np.concatenate(
        [
            t[(t >= e - 0.5) & (t <= e + 1.0)] - e
            for e in events
            for t in [trains.spike_times[0]]
        ]
    )
    sigma = optimal_bandwidth(offsets, -0.5, 1.0, dt=1.5 / 65536).sigma
    assert 2 * sigma > 0.01
    assert result.tau[0] == pytest.approx(2 * sigma, rel=1e-12)
    # The silent unit takes the bandwidth of all units superimposed.
    pooled = compute_psth(
        trains,
        events,
        (-0.5, 1.0),
        dt=0.005,
        kind="gauss",
        tau="auto",
        pool_tau=True,
        n_bootstrap=5,
    )
    assert np.all(pooled.tau == pooled.tau[0])
    assert result.tau[2] == pooled.tau[0]
    assert pooled.attrs["tau_choice"] == "auto-pooled"


def test_tau_auto_is_at_least_two_bins():
    # Spikes locked to the event within 0.1 ms: the optimum is far below the
    # 50 ms bins of the output, which cannot show it.
    events = np.arange(1.0, 60.0)
    spikes = np.sort(np.concatenate([events + 1e-4 * k for k in range(3)]))
    trains = SpikeTrains([spikes], t_start=0.0, t_stop=61.0)
    result = compute_psth(
        trains, events, (-0.5, 0.5), dt=0.05, kind="gauss", tau="auto", n_bootstrap=5
    )
    assert result.tau[0] == 0.1


def test_events_outside_every_window_and_no_events():
    trains = SpikeTrains([np.array([1.0])], t_start=0.0, t_stop=3.0)
    result = compute_psth(trains, [], (-0.5, 0.5), dt=0.1)
    assert result.mean.shape == (1, 10, 1)
    assert result.n_trials[0, 0] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": (1.0, 0.5)}, "window"),
        ({"window": (0.0, 0.55), "dt": 0.1}, "whole number"),
        ({"dt": -1}, "dt"),
        ({"ci": 1.0}, "ci"),
        ({"n_bootstrap": 0}, "n_bootstrap"),
        ({"kind": "box", "tau": 0.1}, "kind"),
        ({"kind": "gauss"}, "tau"),
        ({"tau": 0.1}, "tau"),
        ({"kind": "expon", "tau": "auto"}, "gauss"),
        ({"kind": "gauss", "tau": "best"}, "tau"),
        ({"kind": "gauss", "tau": 0}, "tau"),
        ({"groups": ["a", "b"]}, "groups"),
    ],
)
def test_bad_parameters(kwargs, match):
    trains = SpikeTrains([np.array([1.0, 2.0])], t_start=0.0, t_stop=3.0)
    args = {"window": (-0.5, 0.5), "dt": 0.1, **kwargs}
    window = args.pop("window")
    with pytest.raises(ParameterError, match=match):
        compute_psth(trains, [1.5], window, **args)
