"""spikerates.tuning against nengo's and nengo_extras' rate models, finite
differences and counted spikes."""

from __future__ import annotations

import nengo
import nengo_extras.neurons as reference
import numpy as np
import pytest

from spikerates import tuning
from spikerates.errors import ParameterError
from spikerates.neurons import LIF, FastLIF, LIFRate, SoftLIFRate
from spikerates.simulate import make_population


@pytest.fixture
def population():
    return make_population(LIFRate(), 7, max_rates=(50, 300), seed=4)


def test_input_points():
    np.testing.assert_array_equal(
        tuning.input_points(-1.0, 1.0, 5), [-1.0, -0.5, 0.0, 0.5, 1.0]
    )


@pytest.mark.parametrize(
    "args,name",
    [
        ((1.0, 1.0, 5), "x_max"),
        ((1.0, 0.0, 5), "x_max"),
        ((np.nan, 1.0, 5), "x_min"),
        ((0.0, np.inf, 5), "x_max"),
        ((0.0, 1.0, 1), "points"),
        ((0.0, 1.0, 2.5), "points"),
    ],
)
def test_input_points_errors(args, name):
    with pytest.raises(ParameterError) as info:
        tuning.input_points(*args)
    assert info.value.name == name


@pytest.mark.parametrize("model", [LIFRate(), LIF(), FastLIF()])
def test_analytic_rates_are_nengo_lifrate(model, population):
    x = np.linspace(-1, 1, 41)
    got = tuning.analytic_rates(
        model, population.gain, population.bias, population.encoders, x
    )
    # a plain loop over neurons with nengo's model
    expected = np.column_stack(
        [
            nengo.LIFRate().rates(x * e, g, b)
            for g, b, e in zip(
                population.gain, population.bias, population.encoders, strict=True
            )
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_derivative_is_the_chain_rule(population):
    model = SoftLIFRate(sigma=0.2)
    x = np.linspace(-1, 1, 2001)
    got = tuning.rate_derivative(
        model, population.gain, population.bias, population.encoders, x
    )
    ref = reference.SoftLIFRate(sigma=0.2)
    expected = np.column_stack(
        [
            ref.derivative(x * e, g, b) * e
            for g, b, e in zip(
                population.gain, population.bias, population.encoders, strict=True
            )
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    # and it is the slope of the curve (central differences)
    rates = tuning.analytic_rates(
        model, population.gain, population.bias, population.encoders, x
    )
    slope = np.gradient(rates, x, axis=0)
    scale = np.max(np.abs(got))
    np.testing.assert_allclose(got[1:-1], slope[1:-1], rtol=0, atol=1e-2 * scale)


@pytest.mark.parametrize("model", [LIFRate(), LIF()])
def test_derivative_needs_softlif(model, population):
    with pytest.raises(ParameterError, match="softlif") as info:
        tuning.rate_derivative(model, population.gain, population.bias, [1.0], [0.0])
    assert info.value.name == "derivative"


def test_measured_rates_count_spikes(population):
    x = np.linspace(-1, 1, 9)
    measured = tuning.measured_rates(
        LIF(),
        population.gain,
        population.bias,
        population.encoders,
        x,
        dt=0.001,
        duration=1.0,
    )
    analytic = tuning.analytic_rates(
        LIF(), population.gain, population.bias, population.encoders, x
    )
    # counted over 1 s: within one spike of the steady-state rate, plus the
    # step's quantisation of the inter-spike interval
    assert np.all(np.abs(measured - analytic) <= 1.0 + 0.05 * analytic)


def test_tuning_curves_arrays_and_columns(population):
    x = tuning.input_points(-1, 1, 5)
    curves = tuning.tuning_curves(SoftLIFRate(), population, x, derivative=True)
    assert curves.measured is None  # a rate model: nothing to simulate
    assert list(curves.arrays()) == [
        "x",
        "rates",
        "gain",
        "bias",
        "encoders",
        "derivative",
    ]
    columns = curves.columns()
    assert list(columns)[:2] == ["x", "rates_0"]
    assert list(columns)[-1] == "derivative_6"
    assert len(columns) == 1 + 2 * 7
    np.testing.assert_array_equal(columns["rates_3"], curves.rates[:, 3])
    spiking = tuning.tuning_curves(LIF(), population, x, duration=0.2)
    assert spiking.measured.shape == (5, 7)
    assert list(spiking.columns())[-1] == "measured_6"
