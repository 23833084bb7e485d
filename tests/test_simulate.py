"""Tests of spikerates.simulate: the engine, populations and input signals."""

import nengo
import numpy as np
import pytest

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.neurons import LIF, FastLIF, LIFRate, SoftLIFRate
from spikerates.simulate import (
    Population,
    iter_simulate,
    make_input,
    make_population,
    measure_rates,
    population_from_table,
    random_initial_voltage,
    resample_input,
    simulate,
)


@pytest.fixture(scope="module")
def population():
    return make_population(LIF(), 200, seed=1)


def plain_loop(model, gain, bias, x, dt, encoders, voltage):
    """One nengo LIF.step call per time step: the reference engine."""
    n = gain.size
    voltage = voltage.copy()
    refractory = np.zeros(n)
    spikes = np.zeros((x.size, n))
    for k, xk in enumerate(x):
        current = gain * encoders * xk + bias
        model.step(dt, current, spikes[k], voltage, refractory)
    return spikes


# ---------------------------------------------------------------------------
# the engine


def test_engine_matches_plain_loop_over_nengo_step(population):
    dt = 0.001
    t_in, x = make_input("ramp:-1:1", dt=dt, duration=1.0)
    voltage0 = random_initial_voltage(population.n_neurons, seed=2)
    t, spikes = simulate(
        LIF(),
        population.gain,
        population.bias,
        x,
        dt=dt,
        encoders=population.encoders,
        initial_voltage=voltage0,
    )
    expected = plain_loop(
        nengo.LIF(),
        population.gain,
        population.bias,
        x,
        dt,
        population.encoders,
        voltage0,
    )
    np.testing.assert_array_equal(t, t_in)
    np.testing.assert_allclose(t, dt * np.arange(1, 1001), rtol=1e-15)
    assert spikes.dtype == np.float64 and spikes.shape == (1000, 200)
    assert np.count_nonzero(spikes) > 1000
    np.testing.assert_array_equal(spikes, expected)


def test_fastlif_engine_matches_plain_loop_over_reference_step_math(population):
    from nengo_extras.neurons import FastLIF as ReferenceFastLIF

    class StepMath:
        def step(self, dt, J, output, voltage, refractory_time):
            ReferenceFastLIF().step_math(dt, J, output, voltage, refractory_time)

    _, x = make_input("sine:3:1.2", dt=0.0005, duration=0.5)
    voltage0 = random_initial_voltage(population.n_neurons, seed=3)
    args = (population.gain, population.bias, x)
    _, spikes = simulate(
        FastLIF(),
        *args,
        dt=0.0005,
        encoders=population.encoders,
        initial_voltage=voltage0,
    )
    expected = plain_loop(StepMath(), *args, 0.0005, population.encoders, voltage0)
    assert np.count_nonzero(spikes) > 1000
    np.testing.assert_array_equal(spikes, expected)


@pytest.mark.parametrize("chunk_steps", [1, 37, 1000, 5000])
def test_iter_simulate_chunks_join_to_simulate(population, chunk_steps):
    _, x = make_input("white:20", dt=0.001, duration=1.0, seed=4)
    args = (LIF(), population.gain, population.bias, x)
    kwargs = dict(encoders=population.encoders, initial_voltage=np.full(200, 0.5))
    t, spikes = simulate(*args, **kwargs)
    chunks = list(iter_simulate(*args, chunk_steps=chunk_steps, **kwargs))
    assert all(len(c[0]) == len(c[1]) <= chunk_steps for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), t)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), spikes)


def test_iter_simulate_checks_arguments_before_iterating(population):
    with pytest.raises(ParameterError, match="^dt: "):
        iter_simulate(LIF(), population.gain, population.bias, np.zeros(5), dt=0)


def test_initial_voltage_is_not_modified(population):
    voltage0 = np.full(200, 0.9)
    simulate(
        LIF(), population.gain, population.bias, np.ones(50), initial_voltage=voltage0
    )
    np.testing.assert_array_equal(voltage0, 0.9)


@pytest.mark.parametrize(
    "model", [LIF(amplitude=2.5), FastLIF(amplitude=0.1)], ids=repr
)
@pytest.mark.parametrize("dt", [0.001, 0.0002])
def test_spikes_have_value_amplitude_over_dt(population, model, dt):
    _, spikes = simulate(model, population.gain, population.bias, np.ones(500), dt=dt)
    values = np.unique(spikes)
    np.testing.assert_array_equal(values, [0.0, model.amplitude / dt])


def test_encoders_flip_the_input(population):
    x = np.linspace(-1, 1, 300)
    _, spikes = simulate(
        LIF(), population.gain, population.bias, x, encoders=-np.ones(200)
    )
    _, mirrored = simulate(LIF(), population.gain, population.bias, -x)
    np.testing.assert_array_equal(spikes, mirrored)


def test_default_encoders_and_voltage(population):
    args = (LIF(), population.gain, population.bias, np.ones(100))
    np.testing.assert_array_equal(
        simulate(*args)[1],
        simulate(*args, encoders=np.ones(200), initial_voltage=np.zeros(200))[1],
    )


def test_model_given_by_name(population):
    args = (population.gain, population.bias, np.ones(100))
    np.testing.assert_array_equal(
        simulate("fastlif", *args)[1], simulate(FastLIF(), *args)[1]
    )


def test_empty_input_gives_empty_output(population):
    t, spikes = simulate(LIF(), population.gain, population.bias, np.zeros(0))
    assert t.shape == (0,) and spikes.shape == (0, 200)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(neuron_type=LIFRate()), "neuron_type"),
        (dict(neuron_type=SoftLIFRate()), "neuron_type"),
        (dict(dt=0.0), "dt"),
        (dict(dt=-0.001), "dt"),
        (dict(dt=float("inf")), "dt"),
        (dict(x=np.zeros((4, 2))), "x"),
        (dict(x=[0.0, np.nan]), "x"),
        (dict(gain=np.ones(2)), "bias"),
        (dict(gain=np.ones((3, 1))), "gain"),
        (dict(encoders=[1.0, 0.5, -1.0]), "encoders"),
        (dict(encoders=[1.0, 1.0]), "encoders"),
        (dict(initial_voltage=[0.0, 0.1]), "initial_voltage"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, name):
    args = dict(neuron_type=LIF(), gain=np.ones(3), bias=np.ones(3), x=np.zeros(10))
    args.update(kwargs)
    with pytest.raises(ParameterError, match=f"^{name}: "):
        simulate(**args)


# ---------------------------------------------------------------------------
# measured rates


def test_measure_rates_equals_counting_simulated_spikes(population):
    x_points = np.array([-1.0, -0.2, 0.3, 1.0])
    dt, duration = 0.001, 0.4
    voltage0 = random_initial_voltage(200, seed=5)
    kwargs = dict(encoders=population.encoders, initial_voltage=voltage0)
    measured = measure_rates(
        FastLIF(),
        population.gain,
        population.bias,
        x_points,
        dt=dt,
        duration=duration,
        **kwargs,
    )
    assert measured.shape == (4, 200)
    for p, xp in enumerate(x_points):
        _, spikes = simulate(
            FastLIF(),
            population.gain,
            population.bias,
            np.full(400, xp),
            dt=dt,
            **kwargs,
        )
        np.testing.assert_array_equal(
            measured[p], np.count_nonzero(spikes, axis=0) / duration
        )


def test_measure_rates_blocks_over_neurons(monkeypatch, population):
    import spikerates.simulate as sim

    args = (LIF(), population.gain, population.bias, np.linspace(-1, 1, 7))
    whole = measure_rates(*args, duration=0.2)
    monkeypatch.setattr(sim, "_MEASURE_BLOCK", 97)
    np.testing.assert_array_equal(measure_rates(*args, duration=0.2), whole)


def test_measured_rates_match_lifrate(population):
    x_points = np.linspace(-1, 1, 9)
    gain = population.gain
    measured = measure_rates(
        LIF(), gain, population.bias, x_points, population.encoders
    )
    expected = LIFRate().rates(x_points, gain * population.encoders, population.bias)
    np.testing.assert_allclose(measured, expected, atol=1.0, rtol=0.02)


# ---------------------------------------------------------------------------
# populations


def test_make_population_draws_within_ranges():
    pop = make_population(
        LIF(), 2000, max_rates=(50, 150), intercepts=(-0.5, 0.5), seed=6
    )
    assert isinstance(pop, Population) and pop.n_neurons == 2000
    assert 50 <= pop.max_rates.min() and pop.max_rates.max() < 150
    assert -0.5 <= pop.intercepts.min() and pop.intercepts.max() < 0.5
    assert set(np.unique(pop.encoders)) == {-1.0, 1.0}
    assert 900 < np.count_nonzero(pop.encoders > 0) < 1100
    # gain and bias give the drawn tuning
    rates = LIFRate().rates(np.ones(1), pop.gain, pop.bias)[0]
    np.testing.assert_allclose(rates, pop.max_rates, rtol=1e-9)
    at_intercept = pop.gain * pop.intercepts + pop.bias
    np.testing.assert_allclose(at_intercept, 1.0, rtol=1e-9)


def test_make_population_constants_and_positive_encoders():
    pop = make_population(
        "lif", 10, max_rates=100.0, intercepts=0.25, encoders="positive"
    )
    np.testing.assert_array_equal(pop.max_rates, 100.0)
    np.testing.assert_array_equal(pop.intercepts, 0.25)
    np.testing.assert_array_equal(pop.encoders, 1.0)


def test_make_population_is_seeded():
    a = make_population(LIF(), 100, seed=7)
    b = make_population(LIF(), 100, seed=7)
    c = make_population(LIF(), 100, seed=8)
    for field in ("gain", "bias", "encoders", "max_rates", "intercepts"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.gain, c.gain)
    # fixing the max rates leaves the intercepts and encoders drawn as before
    d = make_population(LIF(), 100, max_rates=300.0, seed=7)
    np.testing.assert_array_equal(d.intercepts, a.intercepts)
    np.testing.assert_array_equal(d.encoders, a.encoders)


def test_seeded_simulation_is_reproducible():
    def run(seed):
        pop = make_population(FastLIF(), 50, seed=seed)
        _, x = make_input("white:10:0.8", dt=0.001, duration=0.5, seed=seed)
        voltage0 = random_initial_voltage(50, seed=seed)
        return simulate(
            FastLIF(),
            pop.gain,
            pop.bias,
            x,
            encoders=pop.encoders,
            initial_voltage=voltage0,
        )[1]

    np.testing.assert_array_equal(run(9), run(9))
    assert not np.array_equal(run(9), run(10))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_neurons=0), "n_neurons"),
        (dict(n_neurons=2.5), "n_neurons"),
        (dict(max_rates=(400.0, 600.0)), "max_rates"),  # above 1/tau_ref
        (dict(max_rates=(300.0, 200.0)), "max_rates"),
        (dict(max_rates=(1.0, 2.0, 3.0)), "max_rates"),
        (dict(max_rates="fast"), "max_rates"),
        (dict(intercepts=(0.0, 1.5)), "intercepts"),
        (dict(encoders="negative"), "encoders"),
        (dict(seed=-1), "seed"),
        (dict(neuron_type="hodgkin-huxley"), "model"),
    ],
)
def test_make_population_rejects_bad_arguments(kwargs, name):
    args = dict(neuron_type=LIF(), n_neurons=10)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=f"^{name}: "):
        make_population(**args)


def test_population_from_table_both_descriptions_agree():
    pop = make_population(LIF(), 30, seed=11)
    from_gain = population_from_table(
        LIF(), {"gain": pop.gain, "bias": pop.bias, "encoder": pop.encoders}
    )
    from_rates = population_from_table(
        "lif",
        {
            "Max_Rates": pop.max_rates,
            "intercepts": pop.intercepts,
            "encoders": pop.encoders,
        },
    )
    for other in (from_gain, from_rates):
        for field in ("gain", "bias", "max_rates", "intercepts"):
            np.testing.assert_allclose(
                getattr(other, field), getattr(pop, field), rtol=1e-9
            )
        np.testing.assert_array_equal(other.encoders, pop.encoders)
    default = population_from_table(LIF(), {"gain": [2.0, 3.0], "bias": [1.0, 0.0]})
    np.testing.assert_array_equal(default.encoders, [1.0, 1.0])


@pytest.mark.parametrize(
    "table, dataset",
    [
        ({"gain": [1.0, 2.0]}, None),
        ({"x": [1.0]}, None),
        ({"gain": [1.0, 2.0], "bias": [0.0]}, "bias"),
        ({"gain": [1.0, 0.0], "bias": [0.0, 1.0]}, "gain"),
        ({"gain": [1.0, np.nan], "bias": [0.0, 1.0]}, "gain"),
        ({"gain": ["a", "b"], "bias": [0.0, 1.0]}, "gain"),
        ({"max_rate": [100.0, 900.0], "intercept": [0.0, 0.0]}, "max_rate"),
        ({"max_rate": [100.0], "intercept": [1.0]}, "intercept"),
        ({"gain": [1.0], "bias": [1.0], "encoder": [0.5]}, "encoder"),
        ({"gain": [], "bias": []}, "gain"),
    ],
)
def test_population_from_table_rejects_bad_columns(table, dataset):
    with pytest.raises(SpikeDataError) as info:
        population_from_table(LIF(), table)
    assert info.value.dataset == dataset
    if dataset is None:
        assert "gain,bias or max_rate,intercept" in str(info.value)


def test_random_initial_voltage_is_seeded_uniform():
    v = random_initial_voltage(10000, seed=12)
    np.testing.assert_array_equal(v, random_initial_voltage(10000, seed=12))
    assert v.shape == (10000,) and 0 <= v.min() and v.max() < 1
    assert abs(v.mean() - 0.5) < 0.02


# ---------------------------------------------------------------------------
# input signals


def test_input_grid():
    t, x = make_input("constant:0.25", dt=0.002, duration=0.5)
    np.testing.assert_allclose(t, 0.002 * np.arange(1, 251), rtol=1e-15)
    np.testing.assert_array_equal(x, 0.25)


def test_ramp_runs_from_first_to_last_step():
    _, x = make_input("ramp:-1:0.5", dt=0.001, duration=1.0)
    assert x[0] == -1.0 and x[-1] == 0.5
    np.testing.assert_allclose(np.diff(x), 1.5 / 999, rtol=1e-9)


@pytest.mark.parametrize("spec, amp", [("sine:5", 1.0), ("sine:5:0.3", 0.3)])
def test_sine(spec, amp):
    t, x = make_input(spec, dt=0.001, duration=1.0)
    np.testing.assert_allclose(x, amp * np.sin(2 * np.pi * 5 * t), atol=1e-12)


@pytest.mark.parametrize("spec, rms", [("white:10", 0.5), ("White:25:1.5", 1.5)])
def test_white_noise_is_band_limited_zero_mean_and_scaled(spec, rms):
    cutoff = float(spec.split(":")[1])
    dt, duration = 0.001, 2.0
    t, x = make_input(spec, dt=dt, duration=duration, seed=13)
    assert abs(np.sqrt(np.mean(x**2)) - rms) < 1e-12 * rms
    assert abs(x.mean()) < 1e-12
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, dt)
    assert spectrum[freqs > cutoff].max() < 1e-9 * spectrum.max()
    # white below the cutoff: power spread over the band, not in one bin
    band = spectrum[(freqs > 0) & (freqs <= cutoff)]
    assert (
        band.size == cutoff * duration and np.count_nonzero(band > 0.1 * band.max()) > 5
    )
    np.testing.assert_array_equal(
        x, make_input(spec, dt=dt, duration=duration, seed=13)[1]
    )
    assert not np.array_equal(x, make_input(spec, dt=dt, duration=duration, seed=14)[1])


@pytest.mark.parametrize(
    "spec, match",
    [
        ("square:5", "unknown input kind 'square'"),
        ("constant", "constant takes 1-1 values"),
        ("constant:1:2", "constant takes 1-1 values"),
        ("ramp:0", "ramp takes 2-2 values"),
        ("sine:abc", "'abc' is not a number"),
        ("sine:0", "frequency must be > 0"),
        ("sine:nan", "not finite"),
        ("white:-5", "cutoff must be > 0"),
        ("white:10:-1", "RMS must be >= 0"),
        ("white:0.1", "lowest is 1/duration"),
        ("", "unknown input kind"),
    ],
)
def test_bad_input_spec_raises(spec, match):
    with pytest.raises(ParameterError, match=f"^input: .*{match}") as info:
        make_input(spec, dt=0.001, duration=1.0)
    assert "constant:V" in str(info.value)  # says what is expected


@pytest.mark.parametrize(
    "dt, duration, name",
    [(0.0, 1.0, "dt"), (0.001, -1.0, "duration"), (0.001, 0.0001, "duration")],
)
def test_bad_input_grid_raises(dt, duration, name):
    with pytest.raises(ParameterError, match=f"^{name}: "):
        make_input("constant:1", dt=dt, duration=duration)


def test_resample_input_interpolates_linearly():
    t_file = np.array([0.0, 0.25, 0.6, 1.0])
    x_file = 2.0 * t_file - 1.0
    t_grid = 0.001 * np.arange(1, 1001)
    np.testing.assert_allclose(
        resample_input(t_file, x_file, t_grid), 2 * t_grid - 1, atol=1e-14
    )
    # a grid up to one step beyond the samples holds the end value
    short = resample_input(t_file[:-1], x_file[:-1], 0.05 * np.arange(1, 13))
    assert short[-1] == x_file[2]


@pytest.mark.parametrize(
    "t_file, x_file, match",
    [
        ([0.0, 0.5], [0.0], "equal length"),
        ([0.0], [0.0], "at least 2 samples"),
        ([0.0, 0.5, 0.5, 1.0], [0.0] * 4, "strictly increasing"),
        ([0.0, np.nan], [0.0, 1.0], "NaN"),
        ([0.0, 0.5], [0.0, 1.0], "cover t = 0..0.5 s"),
        ([0.3, 1.0], [0.0, 1.0], "cover t = 0.3..1 s"),
    ],
)
def test_resample_input_rejects_bad_samples(t_file, x_file, match):
    with pytest.raises(ParameterError, match=f"^input: .*{match}"):
        resample_input(t_file, x_file, 0.001 * np.arange(1, 1001))


# ---------------------------------------------------------------------------
# runs as data-model objects


def test_simulate_spikes_dense_and_events_agree():
    """Both layouts of one run hold the same spikes as simulate()."""
    from spikerates.simulate import simulate_spikes
    from spikerates.spiketrains import DenseSpikes, SpikeTrains

    lif = LIF(amplitude=0.5)
    pop = make_population(lif, 6, seed=3)
    _, x = make_input("sine:4:0.8", dt=0.001, duration=0.5)
    t, expected = simulate(lif, pop.gain, pop.bias, x, encoders=pop.encoders)
    steps = []
    dense = simulate_spikes(lif, pop, x, chunk_steps=77, progress=steps.append)
    assert isinstance(dense, DenseSpikes)
    assert sum(steps) == 500 and len(steps) == 7
    np.testing.assert_array_equal(dense.t, t)
    np.testing.assert_array_equal(dense.spikes, expected)
    events = simulate_spikes(lif, pop, x, events=True, chunk_steps=77)
    assert isinstance(events, SpikeTrains)
    assert (events.t_start, events.t_stop) == (0.0, 0.5)
    for j in range(6):
        np.testing.assert_allclose(
            events.spike_times[j], t[expected[:, j] != 0], rtol=1e-12
        )


def test_derived_seed_streams():
    from spikerates.simulate import derived_seed

    assert derived_seed(None, 1) is None
    assert derived_seed(5, 1) == derived_seed(5, 1)
    assert len({derived_seed(5, 1), derived_seed(5, 2), derived_seed(6, 1)}) == 3
    with pytest.raises(ParameterError, match="seed"):
        derived_seed(-1, 1)


def test_input_from_table():
    from spikerates.errors import SpikeDataError
    from spikerates.simulate import input_from_table

    table = {"t": [0.0, 1.0], "x": [0.0, 2.0], "other": [5, 5]}
    t, x = input_from_table(table, 0.25, 1.0)
    np.testing.assert_allclose(t, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(x, 2 * t)
    with pytest.raises(SpikeDataError, match="no column 'x'") as info:
        input_from_table({"t": [0, 1]}, 0.1, 1.0, source="in.csv")
    assert info.value.path == "in.csv"
    with pytest.raises(SpikeDataError, match="cover"):
        input_from_table(table, 0.1, 3.0, source="in.csv")
    with pytest.raises(ParameterError, match="duration"):
        input_from_table(table, 0.1, 0.01)
