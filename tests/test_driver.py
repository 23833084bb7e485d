"""The rate driver: one chunk iterator for every source and estimator.

Oracles: the reference functions on the dense grid (``rates_kernel`` /
``rates_isi`` on ``events_to_dense``), and the reference's own
``nengo_extras`` functions on arrays.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rates_helpers import DT, assert_matches, grid, reference, spike_matrix

import spikerates
from spikerates.driver import (
    RateResult,
    compute_rates,
    iter_rates,
    plan_rates,
)
from spikerates.errors import ParameterError, ResourceLimitError
from spikerates.estimators import rates_isi, rates_kernel
from spikerates.pipeline import estimate_rates
from spikerates.spiketrains import DenseSpikes, SpikeTrains, events_to_dense

KINDS = ("gauss", "expon", "alpha", "expogauss")


@pytest.fixture(scope="module")
def trains() -> SpikeTrains:
    rng = np.random.default_rng(3)
    units = [np.sort(rng.uniform(0.0, 1.2, n)) for n in (30, 0, 1, 80)]
    return SpikeTrains(units, unit_ids=[4, 9, 2, 7], t_start=0.0, t_stop=1.2)


def dense_of(trains: SpikeTrains, dt: float = DT):
    g = trains.grid(dt)
    return g.times(), events_to_dense(trains, g) / dt


@pytest.mark.parametrize("kind", KINDS)
def test_compute_rates_from_trains_equals_reference_on_the_grid(trains, kind):
    result = compute_rates(trains, "kernel", dt=DT, kind=kind, tau=0.02)
    t, amplitude = dense_of(trains)
    assert isinstance(result, RateResult)
    np.testing.assert_allclose(result.t, t, rtol=0, atol=1e-12)
    assert_matches(result.rates, reference.rates_kernel(t, amplitude, kind, 0.02))
    assert result.unit_ids.tolist() == [4, 9, 2, 7]
    assert result.attrs["estimator"] == "kernel" and result.attrs["kind"] == kind
    assert result.dt == DT and result.n_outside == 0


@pytest.mark.parametrize("interp", ["zero", "linear", "cubic"])
def test_compute_rates_isi_from_trains_equals_rates_isi(trains, interp):
    result = compute_rates(trains, "isi", dt=DT, interp=interp, exact=False)
    t, amplitude = dense_of(trains)
    np.testing.assert_array_equal(result.rates, rates_isi(t, amplitude, interp=interp))


def test_package_exports_compute_rates(trains):
    assert spikerates.compute_rates is compute_rates


@pytest.mark.parametrize("method", ["kernel", "isi"])
@pytest.mark.parametrize("chunk_steps", [1, 17, 500, 5000])
def test_chunks_cover_the_grid_in_order(trains, method, chunk_steps):
    whole = compute_rates(trains, method, dt=DT).rates
    t_parts, r_parts = [], []
    for t_chunk, rates_chunk in iter_rates(
        trains, method, dt=DT, chunk_steps=chunk_steps
    ):
        assert rates_chunk.shape == (t_chunk.size, 4) and t_chunk.size >= 1
        t_parts.append(t_chunk)
        r_parts.append(np.array(rates_chunk))
    t = np.concatenate(t_parts)
    assert np.all(np.diff(t) > 0) and t.size == whole.shape[0]
    np.testing.assert_allclose(np.concatenate(r_parts), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["kernel", "isi"])
def test_every_source_gives_the_same_rates(trains, method):
    t, amplitude = dense_of(trains)
    dense = DenseSpikes(t, amplitude, unit_ids=trains.unit_ids, values="amplitude")
    from_trains = compute_rates(trains, method, dt=DT, exact=False).rates
    from_dense = compute_rates(dense, method).rates
    from_arrays = compute_rates((t, amplitude), method).rates
    np.testing.assert_allclose(from_dense, from_trains, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(from_arrays, from_trains, rtol=1e-12, atol=1e-12)


def test_out_buffer_is_filled_in_place(trains):
    plan = plan_rates(trains, "kernel", dt=DT, chunk_steps=100)
    out = np.full((plan.n_steps, plan.n_units), np.nan)
    views = [rates for _, rates in plan.chunks(out=out)]
    assert all(np.shares_memory(v, out) for v in views)
    # chunks of 100 steps may take another method than the whole: the same
    # sums to rounding, and the same exact zeros
    whole = compute_rates(trains, dt=DT).rates
    np.testing.assert_allclose(out, whole, rtol=1e-13, atol=0)
    assert np.array_equal(out == 0, whole == 0)


def test_plan_knows_the_output_before_computing(trains):
    plan = plan_rates(trains, "kernel", dt=0.01, t_start=0.2, t_stop=1.0)
    assert (plan.n_steps, plan.n_units) == (80, 4)
    assert plan.output_bytes() == 80 * 4 * 8
    assert plan.output_bytes(np.float32) == 80 * 4 * 4
    assert plan.attrs["t_start"] == 0.2 and plan.attrs["units"] == "Hz"


def test_progress_counts_input_steps(trains):
    done = []
    plan = plan_rates(trains, "kernel", dt=DT, chunk_steps=64)
    for _ in plan.chunks(progress=done.append):
        pass
    assert sum(done) == plan.n_steps and max(done) <= 64


def test_output_size_limit_is_checked_before_anything_runs(trains):
    with pytest.raises(ResourceLimitError, match=r"--max-output-size") as info:
        plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=1 << 20)
    message = str(info.value)
    assert "3.7 MiB" in message and "120000 steps x 4 units x 8 bytes" in message
    assert "float32" in message and "--dt" in message
    # float32 halves the size; no limit lifts it.
    plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=2 << 20, dtype="float32")
    plan_rates(trains, "kernel", dt=1e-5, max_output_bytes=None)


@pytest.mark.parametrize(
    "source, kwargs, error, match",
    [
        ("trains", {"method": "box"}, ParameterError, "method"),
        ("trains", {}, ParameterError, "bin width"),
        ("trains", {"dt": -1}, ParameterError, "dt"),
        ("trains", {"dt": DT, "tau": 0}, ParameterError, "tau"),
        ("trains", {"dt": DT, "kind": "box"}, ParameterError, "kind"),
        ("trains", {"dt": DT, "causal": True}, ParameterError, "causal"),
        ("trains", {"dt": DT, "chunk_steps": 0}, ParameterError, "chunk_steps"),
        ("trains", {"dt": DT, "chunk_duration": 0}, ParameterError, "chunk_durat"),
        ("trains", {"dt": DT, "dtype": "int8"}, ParameterError, "dtype"),
        (
            "trains",
            {"dt": DT, "interp": "x", "method": "isi"},
            ParameterError,
            "interp",
        ),
        ("arrays", {"dt": DT}, ParameterError, "carry their own grid"),
        ("list", {}, TypeError, "SpikeTrains, a DenseSpikes"),
    ],
)
def test_plan_rejects(trains, source, kwargs, error, match):
    sources = {
        "trains": trains,
        "arrays": (grid(10), np.zeros((10, 2))),
        "list": [np.zeros(3)],
    }
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "kernel")
    with pytest.raises(error, match=match):
        plan_rates(sources[source], method, **kwargs)


def test_dense_window_and_dt_check():
    t = grid(100)
    spikes = np.zeros((100, 2))
    spikes[[10, 50, 90], 0] = 1 / DT
    dense = DenseSpikes(t, spikes, values="amplitude")
    plan = plan_rates(dense, "kernel", t_start=0.02, t_stop=0.08)
    assert plan.n_steps == 60 and plan.n_outside == 2
    np.testing.assert_allclose(plan.times()[[0, -1]], [0.021, 0.08])
    with pytest.raises(ParameterError, match="does not match"):
        plan_rates(dense, "kernel", dt=0.002)
    with pytest.raises(ParameterError, match="holds no time step"):
        plan_rates(dense, "kernel", t_start=0.5, t_stop=0.6)


def test_reference_functions_drain_the_driver():
    t = grid(300)
    rng = np.random.default_rng(1)
    spikes = (rng.random((300, 3)) < 0.05) / DT
    np.testing.assert_array_equal(
        rates_kernel(t, spikes, "alpha", 0.01),
        compute_rates((t, spikes), kind="alpha", tau=0.01).rates,
    )


# ---------------------------------------------------------------------------
# Windows crop the output


def list_writer():
    made = []

    class Writer:
        def __init__(self, n_rows, unit_ids, attrs):
            self.t, self.values = [], []
            made.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def append(self, t_chunk, values):
            self.t.append(np.array(t_chunk))
            self.values.append(np.array(values))

    def result():
        return np.concatenate(made[-1].t), np.concatenate(made[-1].values)

    return Writer, result


def streamed(source, method, **options):
    factory, result = list_writer()
    summary = estimate_rates(source, factory, method=method, **options)
    t, values = result()
    return summary, t, values


random_trains = st.integers(1, 3).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(0.0, 1.0, allow_nan=False), max_size=40),
        min_size=n,
        max_size=n,
    )
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=random_trains,
    dt=st.sampled_from([0.001, 0.002, 0.005]),
    kind=st.sampled_from(KINDS),
    tau=st.sampled_from([0.004, 0.01, 0.03]),
    variant=st.sampled_from(["binned", "exact", "causal"]),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    chunk_steps=st.integers(1, 300),
)
# A spike on a grid time at the very end of an exact kernel's support.
@example([[0.8]], 0.001, "gauss", 0.004, "exact", (1.0, 0.5), 1)
def test_windowed_kernel_rates_equal_the_full_run(
    units, dt, kind, tau, variant, window, chunk_steps
):
    if variant == "causal" and kind not in ("expon", "alpha"):
        kind = "expon"
    options = {"kind": kind, "tau": tau, "dt": dt, "exact": variant == "exact"}
    options["causal"] = variant == "causal"
    trains = SpikeTrains(units, t_start=0.0, t_stop=1.0)
    full = compute_rates(trains, chunk_steps=chunk_steps, **options)
    n = full.rates.shape[0]
    k0, k1 = sorted(int(round(w * n)) for w in window)
    if k1 - k0 < 1:
        return
    a, b = k0 * dt, k1 * dt
    part = compute_rates(trains, t_start=a, t_stop=b, chunk_steps=97, **options)
    np.testing.assert_allclose(part.t, full.t[k0:k1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(part.rates, full.rates[k0:k1], rtol=1e-9, atol=1e-9)
    _, t_out, values = streamed(
        trains, "kernel", t_start=a, t_stop=b, chunk_duration=dt * 41, **options
    )
    np.testing.assert_allclose(values, part.rates, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=random_trains,
    dt=st.sampled_from([0.001, 0.004]),
    interp=st.sampled_from(["zero", "linear", "cubic"]),
    midpoint=st.booleans(),
    exact=st.booleans(),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_windowed_isi_rates_equal_the_full_run(
    units, dt, interp, midpoint, exact, window
):
    options = {"dt": dt, "interp": interp, "midpoint": midpoint, "exact": exact}
    trains = SpikeTrains(units, t_start=0.0, t_stop=1.0)
    full = compute_rates(trains, "isi", **options)
    n = full.rates.shape[0]
    k0, k1 = sorted(int(round(w * n)) for w in window)
    if k1 - k0 < 2:
        return
    a, b = k0 * dt, k1 * dt
    part = compute_rates(trains, "isi", t_start=a, t_stop=b, **options)
    expected = full.rates[k0:k1].copy()
    if midpoint and not exact:
        # A midpoint of two binned spikes can fall exactly on a grid time;
        # which side of it that row takes is float rounding, in the reference
        # as here, and a window's other origin may round the other way.
        for u, times in enumerate(trains.spike_times):
            on_grid = np.unique(np.ceil(np.round(times / dt, 6)))
            halves = (on_grid[1:] + on_grid[:-1]) / 2
            ties = halves[halves == np.round(halves)].astype(int) - 1 - k0
            ties = ties[(ties >= 0) & (ties < k1 - k0)]
            expected[ties, u] = part.rates[ties, u]
    np.testing.assert_allclose(part.rates, expected, rtol=1e-9, atol=1e-9)
    _, _, values = streamed(
        trains, "isi", t_start=a, t_stop=b, chunk_duration=dt * 13, **options
    )
    np.testing.assert_allclose(values, part.rates, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["kernel", "isi"])
@pytest.mark.parametrize("kind", KINDS)
def test_windowed_dense_rates_equal_the_full_run(trains, method, kind):
    t, amplitude = dense_of(trains)
    dense = DenseSpikes(t, amplitude, values="amplitude")
    options = {"kind": kind, "tau": 0.02} if method == "kernel" else {}
    full = compute_rates(dense, method, **options).rates
    part = compute_rates(dense, method, t_start=0.3, t_stop=0.8, **options)
    np.testing.assert_allclose(part.t, t[300:800], rtol=0, atol=1e-12)
    np.testing.assert_allclose(part.rates, full[300:800], rtol=1e-9, atol=1e-9)
    _, _, values = streamed(
        dense, method, t_start=0.3, t_stop=0.8, chunk_duration=0.017, **options
    )
    np.testing.assert_allclose(values, part.rates, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Exact spike times


def isi_per_unit(times, t_first, t_last, grid_t, interp):
    """The reference's rule on exact times, one unit at a time."""
    times = np.unique(times)
    x = np.concatenate([[t_first], times, [t_last]])
    rates = np.zeros(times.size)
    rates[:-1] = 1 / np.diff(times)
    y = np.concatenate([[0.0], rates, [0.0]])
    if interp == "linear":
        return np.interp(grid_t, x, y)
    return y[np.searchsorted(x, grid_t, side="right") - 1]


@settings(max_examples=50, deadline=None)
@given(
    units=st.lists(
        st.lists(st.floats(0.001, 0.999, allow_nan=False), max_size=30), max_size=3
    ),
    dt=st.sampled_from([0.001, 0.01, 0.05]),
    interp=st.sampled_from(["zero", "linear"]),
)
def test_exact_isi_equals_a_plain_loop_over_exact_times(units, dt, interp):
    trains = SpikeTrains(units, t_start=0.0, t_stop=1.0)
    result = compute_rates(trains, "isi", dt=dt, interp=interp)
    for u, times in enumerate(trains.spike_times):
        expected = isi_per_unit(times, 0.0, 1.0, result.t, interp)
        np.testing.assert_allclose(result.rates[:, u], expected, rtol=1e-12, atol=0)


def test_exact_isi_keeps_two_spikes_in_one_bin():
    trains = SpikeTrains([[0.1002, 0.1007, 0.3]], t_start=0.0, t_stop=0.5)
    exact = compute_rates(trains, "isi", dt=0.001, midpoint=True).rates[:, 0]
    binned = compute_rates(trains, "isi", dt=0.001, exact=False).rates[:, 0]
    # Two intervals: 0.5 ms, whose rate holds from its middle (0.10045 s) to
    # the next interval's middle, and the rest.
    np.testing.assert_allclose(exact[100:200], 1 / 0.0005)
    np.testing.assert_allclose(exact[200:299], 1 / (0.3 - 0.1007))
    # Binned, the two spikes are one, on the grid time 0.101 s.
    np.testing.assert_allclose(binned[150], 1 / (0.3 - 0.101))
    exact_start = compute_rates(trains, "isi", dt=0.001).rates[:, 0]
    np.testing.assert_allclose(exact_start[100], 1 / (0.3 - 0.1007))


def continuous_kernel(kind, x, tau_steps):
    """Closed forms in steps: (value, first, end, delay)."""
    if kind == "gauss":
        std = tau_steps / 2
        value = np.exp(-0.5 * (x / std) ** 2) / (std * np.sqrt(2 * np.pi))
        return value, -4 * std, 4 * std, int(np.round(4 * std))
    if kind == "expon":
        value = np.exp(-x / tau_steps) / tau_steps
    else:
        value = x * np.exp(-x / tau_steps) / tau_steps**2
    return value, 0.0, 5 * tau_steps, int(np.round(tau_steps))


TRUNCATED_MASS = {
    "gauss": math.erf(4 / math.sqrt(2)),
    "expon": 1 - math.exp(-5),
    "alpha": 1 - 6 * math.exp(-5),
}


def exact_kernel_loop(spike_times, grid_t, dt, kind, tau, causal=False):
    tau_steps = tau / dt
    rates = np.zeros((grid_t.size, len(spike_times)))
    row = np.arange(grid_t.size)
    for u, times in enumerate(spike_times):
        for s in times:
            # Offset in steps of each grid time from the spike (a spike
            # within 1e-9 steps of a grid time is on it, as in binning).
            position = (s - grid_t[0]) / dt
            if abs(position - round(position)) <= 1e-9:
                position = round(position)
            x_rows = row - position
            _, first, end, delay = continuous_kernel(kind, 0.0, tau_steps)
            delay = 0 if causal else delay
            x = x_rows + delay + first
            value, *_ = continuous_kernel(kind, x, tau_steps)
            inside = (x >= first) & (x < end)
            rates[inside, u] += value[inside] / (dt * TRUNCATED_MASS[kind])
    return rates


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=st.lists(
        st.lists(st.floats(0, 0.5, allow_nan=False), max_size=15), max_size=3
    ),
    dt=st.sampled_from([0.001, 0.003, 0.02]),
    kind=st.sampled_from(["gauss", "expon", "alpha"]),
    tau=st.sampled_from([0.005, 0.02, 0.05]),
    causal=st.booleans(),
    chunk_steps=st.integers(1, 200),
)
def test_exact_kernel_equals_a_per_spike_loop(
    units, dt, kind, tau, causal, chunk_steps
):
    causal = causal and kind != "gauss"
    trains = SpikeTrains(units, t_start=0.0, t_stop=0.5)
    result = compute_rates(
        trains,
        kind=kind,
        tau=tau,
        dt=dt,
        exact=True,
        causal=causal,
        chunk_steps=chunk_steps,
    )
    expected = exact_kernel_loop(trains.spike_times, result.t, dt, kind, tau, causal)
    np.testing.assert_allclose(result.rates, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["gauss", "expon", "alpha"])
def test_exact_kernel_on_grid_times_is_the_sampled_kernel(kind):
    t = grid(400)
    steps = [[30, 31, 200], [100, 399]]
    trains = SpikeTrains([t[s] for s in steps], t_start=0.0, t_stop=0.4)
    exact = compute_rates(trains, kind=kind, tau=0.01, dt=DT, exact=True).rates
    binned = rates_kernel(t, spike_matrix(steps, 400), kind, 0.01)
    np.testing.assert_allclose(exact, binned / TRUNCATED_MASS[kind], rtol=1e-9)


def test_exact_expogauss_is_exact_exponential_then_gaussian():
    trains = SpikeTrains([[0.1003, 0.2507], [0.3]], t_start=0.0, t_stop=0.5)
    got = compute_rates(trains, kind="expogauss", tau=0.02, dt=DT, exact=True)
    first = exact_kernel_loop(trains.spike_times, got.t, DT, "expon", 0.02)
    std = 0.02 / DT / 4 / 2
    k = np.arange(-4 * std, 4 * std)
    gauss = np.exp(-0.5 * (k / std) ** 2)
    gauss /= gauss.sum()
    delay = int(np.round(4 * std))
    expected = np.stack(
        [np.convolve(gauss, col)[delay : delay + col.size] for col in first.T], axis=1
    )
    np.testing.assert_allclose(got.rates, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps_per_tau", [1, 2, 4])
def test_mean_rate_is_the_count_over_time_at_coarse_dt(kind, steps_per_tau):
    rng = np.random.default_rng(5)
    tau = 0.04
    dt = tau / steps_per_tau
    # Exact evaluation is right on average over where spikes fall in their
    # bins: many spikes make the mean's spread (0.2% here) well below 1%.
    n = 4000
    trains = SpikeTrains([np.sort(rng.uniform(1, 9, n))], t_start=0.0, t_stop=10.0)
    for options in ({"exact": True}, {"normalize": True}):
        rates = compute_rates(trains, kind=kind, tau=tau, dt=dt, **options).rates
        np.testing.assert_allclose(rates.mean() * 10.0, n, rtol=0.01)


# ---------------------------------------------------------------------------
# Border correction and observation intervals


def count_inside(times, intervals):
    return sum(int(np.sum((times >= a) & (times <= b))) for a, b in intervals)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=random_trains,
    dt=st.sampled_from([0.001, 0.004]),
    kind=st.sampled_from([*KINDS, "expon causal", "alpha causal"]),
    tau=st.sampled_from([0.005, 0.03]),
    exact=st.booleans(),
    window=st.tuples(st.floats(0, 0.4), st.floats(0.6, 1)),
    gaps=st.booleans(),
)
def test_border_corrected_rates_integrate_to_the_spike_count(
    units, dt, kind, tau, exact, window, gaps
):
    kind, _, causal = kind.partition(" ")
    a = round(window[0] / dt) * dt
    b = round(window[1] / dt) * dt
    obs = None
    if gaps:
        obs = [np.array([[0.0, 0.45], [0.55, 1.0]]) for _ in units]
    trains = SpikeTrains(units, t_start=0.0, t_stop=1.0, obs_intervals=obs)
    options = dict(kind=kind, tau=tau, dt=dt, exact=exact, causal=bool(causal))
    result = compute_rates(
        trains, t_start=a, t_stop=b, border_correction=True, **options
    )
    plain = compute_rates(trains, t_start=a, t_stop=b, **options)
    intervals = [[a, b]] if obs is None else [[a, min(b, 0.45)], [max(a, 0.55), b]]
    for u, times in enumerate(trains.spike_times):
        integral = np.nansum(result.rates[:, u]) * dt
        if np.nansum(plain.rates[:, u]) == 0:
            continue  # nothing inside to scale (a lone spike past the kernel)
        np.testing.assert_allclose(integral, count_inside(times, intervals), rtol=1e-6)
    if gaps:
        in_gap = (result.t > 0.45 + 1e-9) & (result.t < 0.55 - 1e-9)
        assert np.all(np.isnan(result.rates[in_gap]))
        assert not np.isnan(result.rates[~in_gap]).any()
    _, _, values = streamed(
        trains, "kernel", t_start=a, t_stop=b, border_correction=True,
        chunk_duration=37 * dt, **options,
    )  # fmt: skip
    np.testing.assert_allclose(values, result.rates, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sigma_steps", [4, 10])
def test_gaussian_border_correction_agrees_with_elephant(sigma_steps):
    import neo
    import quantities as pq
    from elephant.kernels import GaussianKernel
    from elephant.statistics import instantaneous_rate

    rng = np.random.default_rng(9)
    dt, t_stop = 0.001, 1.0
    sigma = sigma_steps * dt
    times = [np.sort(rng.uniform(0, t_stop, n)) for n in (40, 15)]
    # Off the grid, so both binning conventions agree on every spike's bin.
    times = [np.round(t / dt) * dt + 0.37 * dt for t in times]
    times = [t[t < t_stop] for t in times]
    ours = compute_rates(
        SpikeTrains(times, t_start=0.0, t_stop=t_stop),
        kind="gauss",
        tau=2 * sigma,
        dt=dt,
        border_correction=True,
    )
    trains = [
        neo.SpikeTrain(t * pq.s, t_start=0 * pq.s, t_stop=t_stop * pq.s) for t in times
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = instantaneous_rate(
            trains,
            sampling_period=dt * pq.s,
            kernel=GaussianKernel(sigma * pq.s),
            cutoff=4.0,
            border_correction=True,
        )
    theirs = np.asarray(theirs.rescale(pq.Hz).magnitude)
    # Elephant labels bin [t, t + dt) with t, spikerates bin (t - dt, t] with
    # t: the same rows. Its kernel has one more tap (at +4 sigma); it divides
    # by the continuous Gaussian's mass inside the window, evaluated at each
    # bin's left edge (half a bin from where its convolution puts the rate),
    # where spikerates divides by the sampled kernel's mass on the window's
    # rows: within 4 sigma of the ends the two differ by up to ~10%.
    assert theirs.shape == ours.rates.shape
    scale = ours.rates.max()
    edge = 4 * sigma_steps
    inner = slice(edge, -edge)
    np.testing.assert_allclose(ours.rates[inner], theirs[inner], atol=3e-3 * scale)
    np.testing.assert_allclose(ours.rates, theirs, rtol=0.15, atol=3e-3 * scale)
    np.testing.assert_allclose(
        ours.rates.sum(axis=0) * dt, theirs.sum(axis=0) * dt, rtol=1e-6
    )
    np.testing.assert_allclose(
        ours.rates.sum(axis=0) * dt, [t.size for t in times], rtol=1e-6
    )


def test_rates_are_nan_outside_observed_intervals_and_equal_inside():
    rng = np.random.default_rng(4)
    units = [np.sort(rng.uniform(0, 1, 50)) for _ in range(3)]
    obs = [np.array([[0.0, 1.0]]), np.array([[0.2, 0.5], [0.7, 0.9]]), None]
    plain = SpikeTrains(units, t_start=0.0, t_stop=1.0)
    observed = SpikeTrains(units, t_start=0.0, t_stop=1.0, obs_intervals=obs)
    for method in ("kernel", "isi"):
        want = compute_rates(plain, method, dt=DT).rates
        got = compute_rates(observed, method, dt=DT)
        t = got.t
        inside = (t >= 0.2 - 1e-12) & (t <= 0.5 + 1e-12) | (t >= 0.7 - 1e-12) & (
            t <= 0.9 + 1e-12
        )
        np.testing.assert_array_equal(got.rates[:, [0, 2]], want[:, [0, 2]])
        assert np.all(np.isnan(got.rates[~inside, 1]))
        np.testing.assert_array_equal(got.rates[inside, 1], want[inside, 1])
        # Means count observed time only.
        assert np.isfinite(np.nanmean(got.rates[:, 1]))


def test_epochs_restrict_observation_and_keep_spikes_on_their_start():
    trains = SpikeTrains([[0.1, 0.2, 0.3, 0.6, 0.65]], t_start=0.0, t_stop=1.0)
    epochs = [[0.2, 0.4], [0.6, 0.8]]
    result = compute_rates(
        trains, dt=0.01, tau=0.02, epochs=epochs, border_correction=True
    )
    observed = ~np.isnan(result.rates[:, 0])
    t = result.t
    np.testing.assert_array_equal(
        observed,
        ((t >= 0.2 - 1e-9) & (t <= 0.4 + 1e-9))
        | ((t >= 0.6 - 1e-9) & (t <= 0.8 + 1e-9)),
    )
    # The spikes on both epochs' starts count: 0.2, 0.3, 0.6 and 0.65 s.
    np.testing.assert_allclose(np.nansum(result.rates) * 0.01, 4, rtol=1e-9)
    with pytest.raises(ParameterError, match="epochs"):
        compute_rates(DenseSpikes(grid(10), np.zeros((10, 1))), epochs=epochs)


def test_spike_on_the_window_start_counts_with_border_correction():
    trains = SpikeTrains([[0.5, 0.55, 0.9]], t_start=0.0, t_stop=2.0)
    result = compute_rates(
        trains, dt=0.01, tau=0.02, t_start=0.5, t_stop=1.0, border_correction=True
    )
    np.testing.assert_allclose(result.rates.sum() * 0.01, 3, rtol=1e-9)


# ---------------------------------------------------------------------------
# Notes


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"tau": 1.5}, "tau is in seconds"),
        ({"dt": 0.2, "tau": 0.04}, "holds"),
        ({"kind": "alpha", "dt": 0.01, "tau": 0.02}, "alpha kernel sampled"),
        ({"t_stop": 3.0}, "after the recording"),
    ],
)
def test_notes_on_suspicious_input(trains, options, fragment):
    options = {"dt": DT, **options}
    plan = plan_rates(trains, "kernel", **options)
    assert any(fragment in note for note in plan.notes), plan.notes
    assert compute_rates(trains, **options).notes == plan.notes


def test_no_notes_for_ordinary_input(trains):
    assert plan_rates(trains, "kernel", dt=DT).notes == []
    # alpha's tails are cut by the reference at any dt: not a grid bias
    assert plan_rates(trains, "kernel", dt=DT, kind="alpha").notes == []
    assert plan_rates(trains, "kernel", dt=DT, normalize=True, kind="alpha").notes == []
    assert plan_rates(trains, "kernel", dt=DT, exact=True, kind="alpha").notes == []


def test_note_for_large_outputs_and_last_spike_borders():
    trains = SpikeTrains([[0.1, 5.0]])
    plan = plan_rates(trains, "kernel", dt=1e-6, t_stop=300.0, max_output_bytes=None)
    assert any("float32" in note and "GiB" in note for note in plan.notes)
    plan = plan_rates(trains, "kernel", dt=DT, border_correction=True)
    assert any("last spike" in note for note in plan.notes), plan.notes


def test_huge_kernels_and_grids_are_refused_before_allocating(trains):
    with pytest.raises(ResourceLimitError, match=r"tau = 10000 s .* taps"):
        plan_rates(trains, "kernel", dt=1e-6, tau=1e4, max_output_bytes=None)
    with pytest.raises(ResourceLimitError) as info:
        plan_rates(trains, "kernel", dt=0.001, t_stop=1e300)
    assert len(str(info.value)) < 400
