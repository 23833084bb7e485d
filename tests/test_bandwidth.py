"""Optimal Gaussian bandwidth against adaptivekde, closed forms and length."""

from __future__ import annotations

import numpy as np
import pytest

from spikerates.bandwidth import (
    _Spectrum,
    bandwidth_cost,
    optimal_bandwidth,
    optimal_bandwidths,
)
from spikerates.errors import ParameterError, ResourceLimitError


def modulated_train(
    rng: np.random.Generator,
    duration: float,
    mean: float = 10.0,
    depth: float = 0.5,
    freq: float = 0.5,
) -> np.ndarray:
    """Inhomogeneous Poisson train, rate ``mean (1 + depth sin(2 pi freq t))``
    Hz, by thinning."""
    peak = mean * (1 + depth)
    times = np.sort(rng.uniform(0, duration, rng.poisson(peak * duration)))
    rate = mean * (1 + depth * np.sin(2 * np.pi * freq * times))
    return times[rng.uniform(0, peak, times.size) < rate]


def exact_cost(times: np.ndarray, w: float) -> float:
    """Shimazaki & Shinomoto's cost from every pair of spikes."""
    d = (times[:, None] - times[None, :]).ravel()

    def gauss(x, s):
        return np.exp(-0.5 * (x / s) ** 2) / (np.sqrt(2 * np.pi) * s)

    n = times.size
    psi = gauss(d, np.sqrt(2) * w).sum()
    k_off = gauss(d, w).sum() - n * gauss(0.0, w)
    return psi - 2 * k_off


def _sskernel(times: np.ndarray, seed: int):
    """adaptivekde's choice (its golden-section search) and its cost on a
    dense global grid of bandwidths."""
    akde = pytest.importorskip("adaptivekde.sskernel")
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002 (its bootstrap uses the global state)
    try:
        _, t, optw, *_ = akde.sskernel(times, nbs=1)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    # Its histogram, as sskernel builds it, and its own cost function.
    dt = min(np.diff(t))
    edges = np.concatenate((t, [t[-1] + dt])) - dt / 2
    hist = np.histogram(times, edges)[0]
    n = float(hist.sum())
    grid = np.geomspace(2 * dt, (times.max() - times.min()) / 5, 400)
    cost = [akde.CostFunction(hist / n / dt, n, w, dt)[0] for w in grid]
    return optw, grid[int(np.argmin(cost))]


@pytest.mark.parametrize("seed", range(6))
def test_matches_adaptivekde(seed):
    times = modulated_train(np.random.default_rng(seed), 30.0)
    chosen, global_min = _sskernel(times, seed)
    got = optimal_bandwidth(times, times.min(), times.max(), dt=1e-3).sigma
    # adaptivekde's cost, minimised over the whole range: within 5%.
    assert abs(got / global_min - 1) < 0.05
    # Its golden-section search can stop in a local minimum at a few
    # seconds (seeds 0, 2, 3, 4); where it finds the global one they agree,
    # and ours is never worse by the exact pairwise cost.
    if seed in (1, 5):
        assert abs(got / chosen - 1) < 0.05
    assert exact_cost(times, got) <= exact_cost(times, chosen) + 1e-9


def test_cost_matches_pairwise_closed_form(rng):
    times = np.sort(rng.uniform(0, 5.0, 120))
    widths = np.array([0.02, 0.05, 0.2, 0.6])
    got = bandwidth_cost(times, widths, 0.0, 5.0, dt=1e-4)
    want = np.array([exact_cost(times, w) for w in widths])
    np.testing.assert_allclose(got, want, rtol=2e-3)


def test_band_sums_match_the_direct_sum(rng):
    counts = rng.poisson(0.05, 1 << 18).astype(float)
    counts[: 1 << 16] += rng.poisson(0.1, 1 << 16)
    spectrum = _Spectrum(counts, 1e-3, 4000)
    for sigma in (0.003, 0.02, 0.3):
        arg = 2 * np.pi * sigma * spectrum.freq
        direct = float(spectrum.power @ np.exp(-0.5 * arg * arg))
        assert spectrum.pair_sum(sigma) == pytest.approx(direct, rel=1e-6)


def test_bandwidth_does_not_grow_with_recording_length():
    # Stationary modulation: the optimum is a property of the process.
    short = [
        optimal_bandwidth(modulated_train(np.random.default_rng(s), 100.0), 0, 100.0)
        for s in range(3)
    ]
    long = [
        optimal_bandwidth(modulated_train(np.random.default_rng(s), 400.0), 0, 400.0)
        for s in range(3)
    ]
    a = np.mean([r.sigma for r in short])
    b = np.mean([r.sigma for r in long])
    assert abs(b / a - 1) < 0.2
    # A 1000-point evaluation grid on 400 s has bins of 0.4 s, coarser than
    # the optimum itself: ours stays fine.
    assert all(r.dt < b / 16 for r in long)


def test_chosen_width_minimises_the_cost(rng):
    times = modulated_train(rng, 60.0)
    result = optimal_bandwidth(times, 0.0, 60.0)
    assert result.widths[0] <= result.sigma <= result.widths[-1]
    grid = np.geomspace(result.sigma / 3, result.sigma * 3, 41)
    cost = bandwidth_cost(times, grid, 0.0, 60.0, dt=result.dt)
    at_best = bandwidth_cost(times, [result.sigma], 0.0, 60.0, dt=result.dt)[0]
    assert at_best <= cost.min() + 1e-9 * abs(cost.min())
    assert np.all(np.diff(result.widths) >= 0)
    assert result.n_spikes == times.size


def test_fine_structure_needs_finer_bins(rng):
    # 40 ms bursts every 2 s over 600 s: the coarse pass (9 ms bins) cannot
    # resolve the optimum and the search refines the bins.
    centres = np.arange(1.0, 600.0, 2.0)
    times = np.sort(np.concatenate([c + rng.normal(0, 0.01, 20) for c in centres]))
    result = optimal_bandwidth(times, 0.0, 600.0, dt=1e-4)
    assert result.dt < 600.0 / 65536
    assert 0.002 < result.sigma < 0.03


def test_pooled_is_the_superimposed_train(rng):
    trains = [modulated_train(rng, 50.0, mean=4.0) for _ in range(3)]
    pooled = optimal_bandwidths(trains, 0.0, 50.0, pool=True)
    one = optimal_bandwidth(np.concatenate(trains), 0.0, 50.0).sigma
    np.testing.assert_allclose(pooled, one)
    each = optimal_bandwidths(trains, 0.0, 50.0)
    for t, s in zip(trains, each, strict=True):
        assert s == optimal_bandwidth(t, 0.0, 50.0).sigma


def test_too_few_spikes_give_nan():
    assert np.isnan(optimal_bandwidth(np.array([1.0]), 0, 10).sigma)
    assert np.isnan(optimal_bandwidth(np.array([]), 0, 10).sigma)
    assert np.isnan(optimal_bandwidth(np.array([1.0, 2.0]), 3.0, 3.0).sigma)
    sig = optimal_bandwidths([np.array([]), np.array([1.0, 1.5, 4.0])], 0.0, 5.0)
    assert np.isnan(sig[0]) and np.isfinite(sig[1])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.array([1.0, 2.0]), 0, 3), {"dt": 0}, ParameterError, "dt"),
        ((np.array([1.0, 2.0]), 3, 0), {}, ParameterError, "t_stop"),
        ((np.array([1.0, 2.0]), 0, 3), {"max_width": -1}, ParameterError, "max_width"),
        (
            (np.array([1.0, 2.0]), 0, 1e5),
            {"dt": 1e-6},
            ResourceLimitError,
            "coarser dt",
        ),
    ],
)
def test_bad_parameters(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        optimal_bandwidth(*args, **kwargs)
