"""Tuning curves: each neuron's firing rate against a 1-D input ``x``.

Neuron ``i`` receives the current ``J = gain[i] * encoders[i] * x + bias[i]``.
Its analytic curve is the model's steady-state rate for that current; the
derivative ``d rate / d x`` follows by the chain rule from the model's
derivative with respect to its encoded input ``encoders[i] * x``. Spiking
models (LIF, FastLIF) also have a measured curve: spikes counted while
simulating each input point at constant input.

Examples
--------
>>> from spikerates.neurons import LIFRate
>>> from spikerates.simulate import make_population
>>> lif = LIFRate()
>>> pop = make_population(lif, 2, max_rates=100.0, intercepts=0.0,
...                       encoders="positive")
>>> curves = tuning_curves(lif, pop, input_points(-1.0, 1.0, 3))
>>> curves.rates.round(6)
array([[  0.,   0.],
       [  0.,   0.],
       [100., 100.]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from spikerates.errors import ParameterError
from spikerates.neurons import LIF, LIFRate
from spikerates.simulate import (
    MAX_NEURON_STEPS,
    Population,
    check_run_size,
    measure_rates,
    run_steps,
)

__all__ = [
    "TuningCurves",
    "analytic_rates",
    "check_size",
    "input_points",
    "measured_rates",
    "rate_derivative",
    "tuning_curves",
]


@dataclass
class TuningCurves:
    """The tuning curves of a population of N neurons at P input points.

    Attributes
    ----------
    x : ndarray, shape (P,)
        Input values.
    rates : ndarray, shape (P, N)
        Analytic firing rates in Hz.
    gain, bias, encoders : ndarray, shape (N,)
        The population (``J = gain * encoders * x + bias``).
    derivative : ndarray, shape (P, N), optional
        ``d rate / d x`` in Hz per unit input.
    measured : ndarray, shape (P, N), optional
        Rates in Hz counted from simulations at constant input.
    """

    x: np.ndarray
    rates: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    encoders: np.ndarray
    derivative: np.ndarray | None = None
    measured: np.ndarray | None = None

    @property
    def n_points(self) -> int:
        """Number of input points P."""
        return int(self.x.size)

    @property
    def n_neurons(self) -> int:
        """Number of neurons N."""
        return int(self.gain.size)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name (``x``, ``rates``, ``gain``, ``bias``,
        ``encoders``, and ``derivative`` / ``measured`` when present)."""
        arrays = {
            "x": self.x,
            "rates": self.rates,
            "gain": self.gain,
            "bias": self.bias,
            "encoders": self.encoders,
        }
        for name in ("derivative", "measured"):
            values = getattr(self, name)
            if values is not None:
                arrays[name] = values
        return arrays

    def columns(self) -> dict[str, np.ndarray]:
        """One column per curve for a table: ``x``, then ``rates_<i>`` for
        every neuron ``i``, then ``derivative_<i>`` and ``measured_<i>`` when
        present; each of shape (P,)."""
        columns = {"x": self.x}
        for name in ("rates", "derivative", "measured"):
            values = getattr(self, name)
            if values is not None:
                for i in range(values.shape[1]):
                    columns[f"{name}_{i}"] = values[:, i]
        return columns


def check_size(
    n_points: int,
    n_neurons: int,
    *,
    derivative: bool = False,
    measure: bool = False,
    dt: float = 0.001,
    duration: float = 1.0,
    max_output_bytes: int | None = None,
    max_neuron_steps: int | None = MAX_NEURON_STEPS,
) -> None:
    """Refuse tuning curves too large to hold or to measure, before any work.

    Parameters
    ----------
    n_points, n_neurons : int
        Input points P and neurons N.
    derivative, measure : bool
        Whether the derivative and measured curves are computed too.
    dt, duration : float
        The simulation of each point, in seconds (``measure`` only).
    max_output_bytes : int, optional
        Most bytes the curves may take (``8 P N`` each, and their
        temporaries); None for no limit.
    max_neuron_steps : int, optional
        Most neuron-steps (``P N round(duration / dt)``) the measurement may
        compute; None for no limit.

    Raises
    ------
    ResourceLimitError
        Naming the size and the ways to shrink the computation.
    ParameterError
        Naming ``dt`` or ``duration`` for a bad measurement grid.
    """
    from spikerates.errors import ResourceLimitError, format_bytes

    n_points, n_neurons = int(n_points), int(n_neurons)
    # rates and one temporary of the same shape, each optional curve
    n_arrays = 2 + int(derivative) + int(measure)
    n_bytes = 8 * n_points * (n_arrays * n_neurons + 1)
    if max_output_bytes is not None and n_bytes > max_output_bytes:
        raise ResourceLimitError(
            f"tuning curves of {n_neurons} neurons at {n_points} points take "
            f"{format_bytes(n_bytes)}, above the limit of "
            f"{format_bytes(max_output_bytes)}; raise it "
            "(--max-output-size) or choose fewer --points or --n-neurons"
        )
    if measure:
        # every (point, neuron) pair is one simulated neuron
        check_run_size(
            run_steps(dt, duration),
            n_points * n_neurons,
            events=True,
            max_output_bytes=None,
            max_neuron_steps=max_neuron_steps,
        )


def input_points(x_min: float, x_max: float, n_points: int) -> np.ndarray:
    """``n_points`` evenly spaced input values from ``x_min`` to ``x_max``.

    Parameters
    ----------
    x_min, x_max : float
        First and last input value; finite, ``x_max > x_min``.
    n_points : int
        Number of values P >= 2.

    Returns
    -------
    ndarray of float64, shape (P,)

    Raises
    ------
    ParameterError
        Naming ``x_min``, ``x_max`` or ``points``.
    """
    for name, value in (("x_min", x_min), ("x_max", x_max)):
        if not math.isfinite(value):
            raise ParameterError(name, f"must be a finite number, got {value}")
    if not x_max > x_min:
        raise ParameterError("x_max", f"must be greater than x_min ({x_min:g})")
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer):
        raise ParameterError("points", f"must be an integer, got {n_points!r}")
    if n_points < 2:
        raise ParameterError("points", f"must be at least 2, got {n_points}")
    return np.linspace(float(x_min), float(x_max), int(n_points))


def _encoded(x: ArrayLike, encoders: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's input ``encoders * x``, shape (P, N), and the encoders."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    encoders = np.asarray(encoders, dtype=np.float64).reshape(-1)
    return x[:, None] * encoders[None, :], encoders


def analytic_rates(
    neuron_type: LIFRate,
    gain: ArrayLike,
    bias: ArrayLike,
    encoders: ArrayLike,
    x: ArrayLike,
) -> np.ndarray:
    """Steady-state firing rates of each neuron at each input value.

    Parameters
    ----------
    neuron_type : LIFRate
        The neuron model (any of spikerates' models; spiking models give
        their steady-state rate).
    gain, bias, encoders : array_like, shape (N,)
        The population; encoders are +1 or -1.
    x : array_like, shape (P,)
        Input values.

    Returns
    -------
    ndarray of float64, shape (P, N)
        Rates in Hz.
    """
    x_encoded, _ = _encoded(x, encoders)
    return np.atleast_2d(neuron_type.rates(x_encoded, gain, bias))


def rate_derivative(
    neuron_type: LIFRate,
    gain: ArrayLike,
    bias: ArrayLike,
    encoders: ArrayLike,
    x: ArrayLike,
) -> np.ndarray:
    """``d rate / d x`` of each neuron at each input value.

    By the chain rule ``d rate / d x = (d rate / d(e x)) * e`` with the
    model's derivative with respect to its encoded input ``e x``.

    Parameters
    ----------
    neuron_type : LIFRate
        A model with a continuous derivative (SoftLIF).
    gain, bias, encoders : array_like, shape (N,)
        The population.
    x : array_like, shape (P,)
        Input values.

    Returns
    -------
    ndarray of float64, shape (P, N)
        Hz per unit input.

    Raises
    ------
    ParameterError
        Naming ``derivative`` for a model whose rate has no derivative at
        its threshold.
    """
    derivative = getattr(neuron_type, "derivative", None)
    if derivative is None:
        raise ParameterError(
            "derivative",
            f"needs the softlif model (the derivative of {neuron_type!r} is not "
            "defined at its threshold)",
        )
    x_encoded, encoders = _encoded(x, encoders)
    return derivative(x_encoded, gain, bias) * encoders[None, :]


def measured_rates(
    neuron_type: LIF,
    gain: ArrayLike,
    bias: ArrayLike,
    encoders: ArrayLike,
    x: ArrayLike,
    *,
    dt: float = 0.001,
    duration: float = 1.0,
) -> np.ndarray:
    """Rates counted from simulations of ``duration`` seconds at each input.

    Parameters
    ----------
    neuron_type : LIF
        A spiking model (LIF or FastLIF).
    gain, bias, encoders : array_like, shape (N,)
        The population.
    x : array_like, shape (P,)
        Constant input of each simulation.
    dt : float
        Time step in seconds.
    duration : float
        Simulated time per input value in seconds (at least ``dt``).

    Returns
    -------
    ndarray of float64, shape (P, N)
        Spike count / simulated time, in Hz.
    """
    return measure_rates(
        neuron_type, gain, bias, x, encoders=encoders, dt=dt, duration=duration
    )


def tuning_curves(
    neuron_type: LIFRate,
    population: Population,
    x: ArrayLike,
    *,
    derivative: bool = False,
    measure: bool | None = None,
    dt: float = 0.001,
    duration: float = 1.0,
) -> TuningCurves:
    """Analytic (and optionally derivative and measured) tuning curves.

    Parameters
    ----------
    neuron_type : LIFRate
        The neuron model.
    population : Population
        Gain, bias and encoders of the N neurons.
    x : array_like, shape (P,)
        Input values, e.g. from :func:`input_points`.
    derivative : bool
        Also compute ``d rate / d x`` (SoftLIF only).
    measure : bool, optional
        Also count rates from simulations; default: for spiking models.
    dt, duration : float
        Time step and simulated time per input point in seconds, for the
        measured rates.

    Returns
    -------
    TuningCurves
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    gain = np.asarray(population.gain, dtype=np.float64)
    bias = np.asarray(population.bias, dtype=np.float64)
    encoders = np.asarray(population.encoders, dtype=np.float64)
    if measure is None:
        measure = bool(getattr(neuron_type, "spiking", False))
    curves = TuningCurves(
        x=x,
        rates=analytic_rates(neuron_type, gain, bias, encoders, x),
        gain=gain,
        bias=bias,
        encoders=encoders,
    )
    if derivative:
        curves.derivative = rate_derivative(neuron_type, gain, bias, encoders, x)
    if measure:
        curves.measured = measured_rates(
            neuron_type, gain, bias, encoders, x, dt=dt, duration=duration
        )
    return curves
