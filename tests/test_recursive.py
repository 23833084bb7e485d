"""The recursive method of the FIR engine (truncated exponential and alpha
kernels as linear recurrences).

Oracles: the reference's per-unit ``np.convolve`` of the sampled kernel (the
exact FIR sums), over records of a million steps, and the other methods.
"""

from __future__ import annotations

import numpy as np
import pytest
from rates_helpers import DT, assert_matches, grid, reference

from spikerates.estimators import rates_kernel
from spikerates.fir import FirStage, Recursion
from spikerates.kernels import sampled_kernel


def convolve_oracle(kern, delay, x):
    """The reference's lowpass: one full np.convolve per column, then the delay."""
    n = x.shape[0]
    return np.stack([np.convolve(kern, col)[delay : delay + n] for col in x.T], axis=1)


def run_stage(kern, delay, x, chunk, method="recursive"):
    stage = FirStage(kern, delay, x.shape[1], method)
    parts = [
        stage.run(x[k0 : k0 + chunk], validate=True) for k0 in range(0, len(x), chunk)
    ]
    parts.append(stage.flush())
    return stage, np.concatenate(parts)


def poisson(n_steps, n_units, rate_hz, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((n_steps, n_units)) < rate_hz * DT) / DT


@pytest.mark.parametrize("kind", ["expon", "alpha"])
@pytest.mark.parametrize("rate_hz", [10.0, 50.0])
def test_round_off_stays_bounded_over_a_million_steps(kind, rate_hz):
    n_steps = 1_000_000
    x = poisson(n_steps, 2, rate_hz, seed=int(rate_hz))
    # a silent stretch (exact zeros) and bins holding two spikes
    x[400_000:430_000] = 0.0
    x[600_000:700_000:50, 0] = 2 / DT
    kern, delay = sampled_kernel(kind, 40.0, normalize=False, causal=False)
    stage, ours = run_stage(kern, delay, x, chunk=100_000)
    # every row went through the recurrence, none fell back to direct sums
    assert stage.recursive_rows == n_steps
    assert stage.recursive_fallback_rows == 0
    expected = convolve_oracle(kern, delay, x)
    zero = expected == 0
    assert zero.sum() > 50_000
    # exact zeros wherever the reference has them
    assert np.all(ours[zero] == 0.0)
    rel = np.abs(ours[~zero] - expected[~zero]) / expected[~zero]
    # far inside the 1e-9 contract, and not growing along the record
    assert rel.max() < 1e-11
    first, last = rel[: rel.size // 10].max(), rel[-rel.size // 10 :].max()
    assert last < 10 * first + 1e-13


@pytest.mark.parametrize("kind", ["expon", "alpha"])
def test_recursive_rates_match_the_reference(kind):
    t = grid(20_000)
    spikes = poisson(20_000, 30, 25.0, seed=3)
    expected = reference.rates_kernel(t, spikes, kind=kind, tau=0.05)
    ours = rates_kernel(t, spikes, kind=kind, tau=0.05, method="recursive")
    assert_matches(ours, expected)
    assert np.array_equal(ours == 0, expected == 0)


def test_expogauss_takes_the_recurrence_then_a_short_fir():
    t = grid(20_000)
    spikes = poisson(20_000, 30, 25.0, seed=4)
    expected = reference.rates_kernel(t, spikes, kind="expogauss", tau=0.04)
    assert_matches(rates_kernel(t, spikes, kind="expogauss", tau=0.04), expected)


@pytest.mark.parametrize(
    "kind, expected",
    [("expon", "expon"), ("alpha", "alpha"), ("gauss", None)],
)
@pytest.mark.parametrize("tau_steps", [3.0, 40.0, 500.0])
def test_detects_the_kernels_that_have_a_recurrence(kind, expected, tau_steps):
    kern, _ = sampled_kernel(kind, tau_steps, normalize=False, causal=False)
    found = Recursion.detect(kern)
    assert (found.kind if found else None) == expected
    if found:
        assert found.r == pytest.approx(np.exp(-1 / tau_steps), rel=1e-12)


@pytest.mark.parametrize(
    "kern",
    [
        np.ones(10),
        np.array([1.0, 0.5, 0.25]),
        0.9 ** np.arange(10) * (-1) ** np.arange(10),
    ],
    ids=["flat", "short", "alternating"],
)
def test_other_kernels_have_none(kern):
    assert Recursion.detect(kern) is None


def test_negative_input_is_filtered_by_another_method():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 5))
    kern, delay = sampled_kernel("expon", 20.0, normalize=False, causal=False)
    stage, ours = run_stage(kern, delay, x, chunk=700)
    assert stage.recursive_rows == 0
    np.testing.assert_allclose(
        ours, convolve_oracle(kern, delay, x), rtol=1e-9, atol=1e-12
    )


def test_a_large_dynamic_range_is_left_to_another_method():
    # one huge value next to tiny ones: the recurrence's round-off bound,
    # relative to the smallest possible output, is far too large
    x = np.zeros((4000, 3))
    x[::37, :] = 1e-6
    x[2000, 1] = 1e9
    kern, delay = sampled_kernel("alpha", 30.0, normalize=False, causal=False)
    stage, ours = run_stage(kern, delay, x, chunk=4000)
    assert stage.recursive_rows == stage.recursive_fallback_rows
    expected = convolve_oracle(kern, delay, x)
    zero = expected == 0
    assert np.all(ours[zero] == 0)
    np.testing.assert_allclose(ours[~zero], expected[~zero], rtol=1e-9, atol=0)


def test_groups_over_their_bound_fall_back_to_direct_sums():
    # a long burst (a spike at every step) drives the peak output to the
    # kernel's sum: those groups are recomputed, the others are not
    x = poisson(30_000, 4, 10.0, seed=6)
    x[10_000:14_000, 2] = 1 / DT
    kern, delay = sampled_kernel("alpha", 30.0, normalize=False, causal=False)
    stage, ours = run_stage(kern, delay, x, chunk=6000)
    assert 0 < stage.recursive_fallback_rows < stage.recursive_rows
    expected = convolve_oracle(kern, delay, x)
    zero = expected == 0
    assert np.all(ours[zero] == 0)
    np.testing.assert_allclose(ours[~zero], expected[~zero], rtol=1e-9, atol=0)


def test_windows_without_spikes_give_exact_zeros():
    x = np.zeros((5000, 2))
    x[[100, 101, 2500], 0] = 1 / DT
    kern, delay = sampled_kernel("expon", 40.0, normalize=False, causal=False)
    _, ours = run_stage(kern, delay, x, chunk=512)
    expected = convolve_oracle(kern, delay, x)
    assert np.array_equal(ours == 0, expected == 0)
    assert not ours[:, 1].any()


@pytest.mark.parametrize("kind", ["expon", "alpha"])
def test_threads_take_whole_groups_and_give_the_same_rates(kind, monkeypatch):
    from spikerates import threads

    x = poisson(40_000, 300, 30.0, seed=7)
    x[20_000:24_000, 5] = 1 / DT  # a burst whose groups fall back (alpha)
    kern, delay = sampled_kernel(kind, 30.0, normalize=False, causal=False)
    # a machine with room for both threads, whatever else is running
    monkeypatch.setattr(threads, "_proc_running_elsewhere", lambda: 0)
    monkeypatch.setattr(threads, "available", lambda: 2)
    seen = set()
    original = threads.map_threads

    def recording(function, items, n=None):
        seen.add((len(items), n))
        return original(function, items, n)

    monkeypatch.setattr(threads, "map_threads", recording)
    results = {}
    for n in (1, 2):
        threads.configure(n)
        try:
            stage, results[n] = run_stage(kern, delay, x, chunk=10_000)
        finally:
            threads.configure(None)
        results[n, "rows"] = (stage.recursive_rows, stage.recursive_fallback_rows)
    assert (8, 2) in seen  # four runs of groups per thread
    assert np.array_equal(results[1], results[2])
    assert results[1, "rows"] == results[2, "rows"]
    assert results[2, "rows"][0] == len(x)
    if kind == "alpha":
        assert 0 < results[2, "rows"][1] < len(x)
    expected = convolve_oracle(kern, delay, x)
    zero = expected == 0
    assert np.all(results[2][zero] == 0)
    np.testing.assert_allclose(results[2][~zero], expected[~zero], rtol=1e-9, atol=0)
