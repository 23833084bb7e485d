"""Tests of spikerates.neurons.

Oracles: nengo_extras 0.5 (softplus, lif_j, SoftLIFRate, FastLIF.step_math)
and nengo 4.1 (LIFRate, LIF.step), plus closed forms and finite differences.
"""

import nengo
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from nengo_extras import neurons as ref

from spikerates.errors import ParameterError
from spikerates.neurons import (
    LIF,
    NEURON_TYPES,
    FastLIF,
    LIFRate,
    SoftLIFRate,
    gain_bias,
    lif_j,
    make_neuron_type,
    max_rates_intercepts,
    softplus,
)
from spikerates.simulate import simulate


def assert_parity(actual, expected):
    """1e-9 relative agreement; 1e-12 absolute where the expected value is 0."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    zero = expected == 0
    np.testing.assert_array_less(np.abs(actual[zero]), 1e-12 + 1e-300)
    np.testing.assert_allclose(actual[~zero], expected[~zero], rtol=1e-9, atol=0)


def tuning(n, seed, rates=(10.0, 300.0), intercepts=(-1.0, 0.95)):
    rng = np.random.default_rng(seed)
    return gain_bias(rng.uniform(*rates, n), rng.uniform(*intercepts, n))


def oracle_inputs(x):
    """The reference computes in the input's precision, spikerates in float64.

    A float32 input is therefore compared with the reference evaluated on
    the same (exactly representable) values in float64.
    """
    return np.asarray(x, dtype=np.float64)


DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------------------
# parity with nengo_extras / nengo


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [0.01, 0.3, 1.0, 4.0])
def test_softplus_matches_reference(dtype, sigma):
    x = np.concatenate(
        [np.linspace(-60, 60, 2001), [-800.0, -300.0, 0.0, 33.9, 34.0, 300.0]]
    ).astype(dtype)
    expected = ref.softplus(oracle_inputs(x), sigma=sigma)
    assert_parity(softplus(x, sigma), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "tau_ref, tau_rc, amplitude",
    [(0.002, 0.02, 1.0), (0.0, 0.05, 0.3), (0.004, 0.01, 2)],
)
def test_lif_j_matches_reference(dtype, tau_ref, tau_rc, amplitude):
    j = np.logspace(-30, 4, 500).astype(dtype)
    expected = ref.lif_j(oracle_inputs(j), tau_ref, tau_rc, amplitude=amplitude)
    assert_parity(lif_j(j, tau_ref, tau_rc, amplitude), expected)


def test_lif_j_is_zero_at_and_below_threshold():
    np.testing.assert_array_equal(lif_j([-2.0, -0.5, 0.0], 0.002, 0.02), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [0.02, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("amplitude", [1.0, 0.25])
def test_softlif_rates_match_reference(dtype, sigma, amplitude):
    gain, bias = tuning(40, seed=1)
    x = np.linspace(-1.5, 1.5, 301).astype(dtype)
    params = dict(sigma=sigma, tau_rc=0.03, tau_ref=0.001, amplitude=amplitude)
    expected = ref.SoftLIFRate(**params).rates(oracle_inputs(x), gain, bias)
    actual = SoftLIFRate(**params).rates(x, gain.astype(dtype), bias.astype(dtype))
    if dtype is np.float32:
        # gain and bias rounded to float32 as well
        expected = ref.SoftLIFRate(**params).rates(
            oracle_inputs(x), oracle_inputs(gain.astype(dtype)), bias.astype(dtype)
        )
    assert actual.shape == (301, 40)
    assert_parity(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [0.05, 1.0, 3.0])
def test_softlif_derivative_matches_reference_per_neuron(dtype, sigma):
    # The reference only handles a scalar gain, so it is called per neuron.
    gain, bias = tuning(25, seed=2)
    x = np.linspace(-1.5, 1.5, 201).astype(dtype)
    model = SoftLIFRate(sigma=sigma, amplitude=0.7)
    oracle = ref.SoftLIFRate(sigma=sigma, amplitude=0.7)
    actual = model.derivative(x, gain, bias)
    assert actual.shape == (201, 25)
    expected = np.column_stack(
        [
            oracle.derivative(oracle_inputs(x), g, b)
            for g, b in zip(gain, bias, strict=True)
        ]
    )
    assert_parity(actual, expected)


@pytest.mark.parametrize("shape", [(), (201,), (40, 3)])
def test_softlif_derivative_with_scalar_gain_is_elementwise_like_reference(shape):
    # With a scalar gain and bias the reference computes gain * x + bias
    # elementwise, so its result has the shape of x; ours must too.
    x = np.random.default_rng(7).uniform(-1.5, 1.5, shape)
    model = SoftLIFRate(sigma=0.3)
    actual = model.derivative(x, 1.7, 0.4)
    expected = ref.SoftLIFRate(sigma=0.3).derivative(np.asarray(x), 1.7, 0.4)
    assert actual.shape == np.shape(expected) == shape
    assert_parity(actual, expected)


def test_softlif_derivative_accepts_2d_input():
    gain, bias = tuning(5, seed=3)
    x = np.linspace(-1, 1, 11)
    model = SoftLIFRate()
    wide = np.repeat(x[:, None], 5, axis=1)
    np.testing.assert_array_equal(
        model.derivative(wide, gain, bias), model.derivative(x, gain, bias)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_lifrate_matches_nengo(dtype):
    gain, bias = tuning(50, seed=4)
    x = np.linspace(-1.2, 1.2, 121).astype(dtype)
    expected = nengo.LIFRate(tau_rc=0.03, tau_ref=0.003, amplitude=2).rates(
        x, gain, bias
    )
    actual = LIFRate(tau_rc=0.03, tau_ref=0.003, amplitude=2).rates(x, gain, bias)
    assert_parity(actual, expected)


def random_state(rng, n, dt, tau_ref, dtype=np.float64):
    """Voltages and refractory times covering every case of a step.

    Refractory times span free for the whole next step (r <= dt), free for
    part of it (dt < r < 2 dt) and refractory throughout it (r >= 2 dt).
    """
    voltage = rng.uniform(0.0, 1.0, n)
    refractory = rng.uniform(-dt, tau_ref + 2 * dt, n)
    refractory[rng.random(n) < 0.3] = 0.0
    current = rng.uniform(-1.0, 8.0, n)
    return voltage.astype(dtype), refractory.astype(dtype), current.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "dt, tau_rc, tau_ref, min_voltage",
    [(0.001, 0.02, 0.002, 0.0), (0.0005, 0.05, 0.0015, -1.0), (0.002, 0.01, 0.0, 0.0)],
)
def test_fastlif_step_matches_reference_step_math(
    dtype, dt, tau_rc, tau_ref, min_voltage
):
    rng = np.random.default_rng(5)
    n = 4000
    voltage, refractory, current = random_state(rng, n, dt, tau_ref, dtype)
    voltage[: n // 4] += 0.6  # some neurons start above threshold
    params = dict(tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage)
    v_ref, r_ref, out_ref = voltage.copy(), refractory.copy(), np.empty(n, dtype)
    ref.FastLIF(**params).step_math(dt, current, out_ref, v_ref, r_ref)
    out = np.empty(n, dtype)
    FastLIF(**params).step(dt, current, out, voltage, refractory)

    partway = (r_ref > 0) & (refractory > 0)
    assert np.any(out_ref > 0) and np.any(out_ref == 0) and np.any(partway)
    np.testing.assert_array_equal(out, out_ref)  # reference emits 1/dt
    assert_parity(voltage, v_ref)
    assert_parity(refractory, r_ref)


def test_fastlif_emits_amplitude_over_dt():
    rng = np.random.default_rng(6)
    voltage, refractory, current = random_state(rng, 1000, 0.001, 0.002)
    out = np.empty(1000)
    FastLIF(amplitude=2.5).step(0.001, current, out, voltage, refractory)
    assert np.any(out > 0)
    assert set(np.unique(out)) == {0.0, 2500.0}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "tau_rc, tau_ref, min_voltage, amplitude",
    [(0.02, 0.002, 0.0, 1.0), (0.05, 0.0, -0.5, 3.0), (0.01, 0.004, -np.inf, 0.5)],
)
def test_lif_matches_nengo_step_for_step(
    dtype, tau_rc, tau_ref, min_voltage, amplitude
):
    rng = np.random.default_rng(7)
    n, dt = 600, 0.001
    voltage, refractory, _ = random_state(rng, n, dt, tau_ref, dtype)
    params = dict(
        tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage, amplitude=amplitude
    )
    ours, theirs = LIF(**params), nengo.LIF(**params)
    v_ref, r_ref = voltage.copy(), refractory.copy()
    out, out_ref = np.empty(n, dtype), np.empty(n, dtype)
    n_spikes = 0
    for _ in range(1000):
        current = rng.uniform(-1.0, 8.0, n).astype(dtype)
        theirs.step(dt, current, out_ref, v_ref, r_ref)
        ours.step(dt, current, out, voltage, refractory)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(voltage, v_ref)
        np.testing.assert_array_equal(refractory, r_ref)
        n_spikes += np.count_nonzero(out)
    assert n_spikes > 10000


def test_lif_step_on_2d_and_noncontiguous_state():
    rng = np.random.default_rng(8)
    voltage = rng.uniform(0, 1, (40, 30))
    refractory = rng.uniform(-0.001, 0.004, (30, 40)).T  # not C-contiguous
    current = rng.uniform(0, 6, (40, 30))
    v_ref, r_ref = voltage.copy(), refractory.copy()
    out, out_ref = np.empty((40, 30)), np.empty((40, 30))
    for _ in range(20):
        nengo.LIF().step(0.001, current, out_ref, v_ref, r_ref)
        LIF().step(0.001, current, out, voltage, refractory)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(voltage, v_ref)
    np.testing.assert_array_equal(refractory, r_ref)


@pytest.mark.parametrize("tau_rc, tau_ref", [(0.02, 0.002), (0.05, 0.0), (0.01, 0.004)])
def test_gain_bias_matches_nengo_and_round_trips(tau_rc, tau_ref):
    rng = np.random.default_rng(9)
    max_rates = rng.uniform(10.0, 240.0, 300)
    intercepts = rng.uniform(-2.0, 0.99, 300)
    gain, bias = gain_bias(max_rates, intercepts, tau_rc, tau_ref)
    g_ref, b_ref = nengo.LIFRate(tau_rc=tau_rc, tau_ref=tau_ref).gain_bias(
        max_rates, intercepts
    )
    assert_parity(gain, g_ref)
    assert_parity(bias, b_ref)

    rates, icpts = max_rates_intercepts(gain, bias, tau_rc, tau_ref)
    r_ref, i_ref = nengo.LIFRate(tau_rc=tau_rc, tau_ref=tau_ref).max_rates_intercepts(
        gain, bias
    )
    assert_parity(rates, r_ref)
    assert_parity(icpts, i_ref)
    np.testing.assert_allclose(rates, max_rates, rtol=1e-9)
    np.testing.assert_allclose(icpts, intercepts, rtol=1e-9, atol=1e-12)

    model = LIF(tau_rc=tau_rc, tau_ref=tau_ref)
    for a, b in zip(model.gain_bias(max_rates, intercepts), (gain, bias), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        model.max_rates_intercepts(gain, bias), (rates, icpts), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # the tuning is what was asked for
    at_one = model.rates(np.ones(1), gain, bias)[0]
    np.testing.assert_allclose(at_one, max_rates, rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    max_rate=st.floats(0.5, 450.0),
    intercept=st.floats(-5.0, 0.99),
    tau_rc=st.floats(0.005, 0.2),
)
def test_gain_bias_round_trip_property(max_rate, intercept, tau_rc):
    # keep J(1) - 1 = 1 / expm1((1 / max_rate - tau_ref) / tau_rc) well above
    # float64 resolution, where the inverse is well conditioned
    assume((1.0 / max_rate - 0.002) / tau_rc < 10.0)
    gain, bias = gain_bias(max_rate, intercept, tau_rc=tau_rc, tau_ref=0.002)
    rate, icpt = max_rates_intercepts(gain, bias, tau_rc=tau_rc, tau_ref=0.002)
    np.testing.assert_allclose(rate, max_rate, rtol=1e-8)
    np.testing.assert_allclose(icpt, intercept, rtol=1e-8, atol=1e-10)


def test_max_rates_intercepts_of_silent_neuron_is_zero():
    rates, icpts = max_rates_intercepts([1.0], [-0.5])
    np.testing.assert_array_equal(rates, [0.0])
    np.testing.assert_array_equal(icpts, [1.5])


# ---------------------------------------------------------------------------
# closed forms


def test_softlif_tends_to_lifrate_as_sigma_shrinks():
    gain, bias = tuning(60, seed=10)
    x = np.linspace(-1.5, 1.5, 3001)
    lif = LIFRate().rates(x, gain, bias)
    # convergence is only logarithmic right at threshold, so compare where the
    # current is at least 0.05 away from it
    away = np.abs(LIFRate().current(x, gain, bias) - 1.0) >= 0.05
    errors = []
    for sigma in [1e-2, 1e-4, 1e-7]:
        soft = SoftLIFRate(sigma=sigma).rates(x, gain, bias)
        errors.append(np.max(np.abs(soft - lif)))
        assert np.all(soft >= lif - 1e-9)  # softplus(y) >= max(y, 0)
        if sigma == 1e-7:
            np.testing.assert_allclose(soft[away], lif[away], atol=1e-3, rtol=0)
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("amplitude", [1.0, 0.5])
def test_softlif_derivative_matches_finite_differences(sigma, amplitude):
    gain, bias = tuning(30, seed=11)
    gain = gain * np.random.default_rng(0).choice([-1.0, 1.0], 30)  # per neuron
    model = SoftLIFRate(sigma=sigma, amplitude=amplitude)
    x = np.linspace(-1.5, 1.5, 301)
    h = 1e-6
    numeric = (model.rates(x + h, gain, bias) - model.rates(x - h, gain, bias)) / (
        2 * h
    )
    np.testing.assert_allclose(
        model.derivative(x, gain, bias), numeric, atol=1e-5, rtol=1e-2
    )


@pytest.fixture(scope="module")
def constant_input_population():
    """5000 neurons, max rates 10-200 Hz, intercepts kept away from 1."""
    rng = np.random.default_rng(12)
    max_rates = rng.uniform(10.0, 200.0, 5000)
    intercepts = rng.uniform(-1.0, 0.5, 5000)
    gain, bias = gain_bias(max_rates, intercepts)
    return gain, bias


@pytest.mark.parametrize("model", [LIF(), FastLIF()], ids=repr)
@pytest.mark.parametrize("x_value", [1.0, 0.7])
def test_spike_counts_match_lifrate(model, x_value, constant_input_population):
    gain, bias = constant_input_population
    dt, n_steps = 0.001, 1000
    rates = LIFRate().rates(np.array([x_value]), gain, bias)[0]
    assert rates.max() > 150 and np.count_nonzero(rates) > 1000
    t, spikes = simulate(model, gain, bias, np.full(n_steps, x_value), dt=dt)
    running = np.cumsum(spikes != 0, axis=0)
    counts = running[-1] / (n_steps * dt)
    np.testing.assert_allclose(counts, rates, atol=1.0, rtol=0.02)
    # the running count stays within one spike of t * rate at every step
    deviation = running - t[:, None] * rates
    assert np.abs(deviation).max() <= 1.0


# ---------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize(
    "factory, name",
    [
        (lambda: LIFRate(tau_rc=0), "tau_rc"),
        (lambda: LIFRate(tau_rc=-0.02), "tau_rc"),
        (lambda: LIFRate(tau_rc=float("nan")), "tau_rc"),
        (lambda: LIF(tau_ref=-0.001), "tau_ref"),
        (lambda: LIF(amplitude=0), "amplitude"),
        (lambda: FastLIF(amplitude=-1), "amplitude"),
        (lambda: LIF(min_voltage=0.5), "min_voltage"),
        (lambda: SoftLIFRate(sigma=0), "sigma"),
        (lambda: SoftLIFRate(sigma=-1), "sigma"),
        (lambda: LIFRate(tau_rc="fast"), "tau_rc"),
        (lambda: softplus([1.0], sigma=0), "sigma"),
        (lambda: make_neuron_type("izhikevich"), "model"),
        (lambda: make_neuron_type("lif", tau_ref=-1), "tau_ref"),
        (lambda: make_neuron_type("softlif", sigma=0), "sigma"),
    ],
)
def test_bad_parameters_raise_naming_them(factory, name):
    with pytest.raises(ParameterError, match=f"^{name}: ") as info:
        factory()
    assert info.value.name == name


@pytest.mark.parametrize("name, value", [("tau_rc", 0.0), ("amplitude", -2.0)])
def test_parameters_are_checked_when_set_later(name, value):
    model = LIF()
    with pytest.raises(ParameterError, match=name):
        setattr(model, name, value)


@pytest.mark.parametrize(
    "max_rates, intercepts, tau_ref, name",
    [
        (500.0, 0.0, 0.002, "max_rates"),  # exactly 1/tau_ref
        ([100.0, 600.0], [0.0, 0.0], 0.002, "max_rates"),
        (0.0, 0.0, 0.002, "max_rates"),
        (100.0, 1.0, 0.002, "intercepts"),
        (100.0, float("nan"), 0.002, "intercepts"),
        (0.5, 0.0, 0.002, "max_rates"),  # J(1) - 1 underflows
    ],
)
def test_gain_bias_rejects_bad_tuning(max_rates, intercepts, tau_ref, name):
    with pytest.raises(ParameterError, match=f"^{name}: "):
        gain_bias(max_rates, intercepts, tau_ref=tau_ref)
    with pytest.raises(ParameterError, match=f"^{name}: "):
        LIF(tau_ref=tau_ref).gain_bias(max_rates, intercepts)


def test_gain_bias_without_refractory_period_allows_high_rates():
    gain, bias = gain_bias(5000.0, 0.0, tau_ref=0.0)
    np.testing.assert_allclose(LIFRate(tau_ref=0.0).rates([1.0], gain, bias), 5000.0)


def test_registry_and_factory():
    assert set(NEURON_TYPES) == {"softlif", "lifrate", "lif", "fastlif"}
    model = make_neuron_type("SoftLIF", sigma=0.3, tau_rc=0.05, min_voltage=-1)
    assert model == SoftLIFRate(sigma=0.3, tau_rc=0.05)
    fast = make_neuron_type("fastlif", sigma=5.0, amplitude=2, min_voltage=-1)
    assert fast == FastLIF(amplitude=2, min_voltage=-1)
    assert fast.spiking and not make_neuron_type("lifrate").spiking
    assert repr(fast).startswith("FastLIF(tau_rc=0.02")


def test_current_checks_shapes():
    with pytest.raises(ValueError, match="x must have shape"):
        LIFRate().current(np.zeros((4, 3)), np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="1-D"):
        LIFRate().current(np.zeros(4), np.ones((5, 1)), np.ones(5))
