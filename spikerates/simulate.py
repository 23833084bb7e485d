"""The simulation engine: spiking LIF populations driven by a 1-D input.

A population of N neurons receives the current
``J[k] = gain * encoders * x[k] + bias`` at step ``k`` and is advanced with
its neuron model's step, vectorised over neurons and updating the state
(voltage, refractory time) in place. Time runs on the grid
``t = dt * (1, 2, ..., M)`` in seconds, and a spike is the value
``amplitude / dt`` in the row of the step it falls in.

Examples
--------
>>> from spikerates.neurons import LIF
>>> lif = LIF()
>>> pop = make_population(lif, 3, max_rates=100.0, intercepts=0.0,
...                       encoders="positive")
>>> t, x = make_input("constant:1", dt=0.001, duration=1.0)
>>> t, spikes = simulate(lif, pop.gain, pop.bias, x)
>>> (spikes > 0).sum(axis=0)
array([100, 100, 100])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from spikerates.errors import (
    ParameterError,
    ResourceLimitError,
    SpikeDataError,
    format_bytes,
)
from spikerates.neurons import LIF, LIFRate, make_neuron_type
from spikerates.spiketrains import DenseSpikes, SpikeTrains, dense_to_events

__all__ = [
    "INPUT_KINDS",
    "Population",
    "check_run_size",
    "derived_seed",
    "input_from_table",
    "iter_simulate",
    "make_input",
    "make_population",
    "measure_rates",
    "population_from_table",
    "random_initial_voltage",
    "run_steps",
    "resample_input",
    "simulate",
    "simulate_spikes",
]

#: Input signal specifications accepted by :func:`make_input`.
INPUT_KINDS = (
    "constant:V",
    "ramp:FROM:TO",
    "sine:FREQ_HZ[:AMP]",
    "white:CUTOFF_HZ[:RMS]",
)

# Rows of input current computed at once: large enough to amortise the call,
# small enough to stay in cache.
_J_BLOCK_BYTES = 1 << 20
# Neurons stepped together by measure_rates (state arrays stay in cache).
_MEASURE_BLOCK = 1 << 15


# ---------------------------------------------------------------------------
# argument checks


def _check_dt(dt: float, name: str = "dt") -> float:
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise ParameterError(name, f"must be a number of seconds, got {dt!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(
            name, f"must be a finite number of seconds > 0, got {dt!r}"
        )
    return value


def _n_steps(dt: float, duration: float) -> int:
    dt = _check_dt(dt)
    duration = _check_dt(duration, "duration")
    n_steps = round(duration / dt)
    if n_steps < 1:
        raise ParameterError(
            "duration", f"{duration} s is shorter than one time step ({dt} s)"
        )
    return n_steps


def _spiking_type(neuron_type: LIF | str) -> LIF:
    if isinstance(neuron_type, str):
        neuron_type = make_neuron_type(neuron_type)
    if not isinstance(neuron_type, LIF):
        raise ParameterError(
            "neuron_type",
            f"a spiking model (lif or fastlif) is needed, got {neuron_type!r}",
        )
    return neuron_type


def _vector(name: str, values: ArrayLike, n: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, "must be an array of numbers") from None
    if array.ndim != 1:
        raise ParameterError(name, f"must be 1-D, got shape {array.shape}")
    if n is not None and array.size != n:
        raise ParameterError(
            name, f"must have {n} values (one per neuron), got {array.size}"
        )
    if not np.all(np.isfinite(array)):
        raise ParameterError(name, "must not contain NaN or infinite values")
    return array


def _encoders(encoders: ArrayLike | None, n: int) -> np.ndarray:
    if encoders is None:
        return np.ones(n)
    encoders = _vector("encoders", encoders, n)
    if not np.all(np.abs(encoders) == 1):
        raise ParameterError("encoders", "must be +1 or -1 for every neuron")
    return encoders


def _population_arrays(
    gain: ArrayLike,
    bias: ArrayLike,
    encoders: ArrayLike | None,
    initial_voltage: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``gain * encoders``, ``bias`` and a fresh voltage array."""
    gain = _vector("gain", gain)
    if gain.size == 0:
        raise ParameterError("gain", "needs at least one neuron")
    bias = _vector("bias", bias, gain.size)
    scaled_gain = gain * _encoders(encoders, gain.size)
    if initial_voltage is None:
        voltage = np.zeros(gain.size)
    else:
        # a copy: the state is updated in place
        voltage = _vector("initial_voltage", initial_voltage, gain.size).copy()
    return scaled_gain, bias, voltage


# ---------------------------------------------------------------------------
# the engine


def _run(
    neuron_type: LIF,
    scaled_gain: np.ndarray,
    bias: np.ndarray,
    x: np.ndarray,
    dt: float,
    voltage: np.ndarray,
    chunk_steps: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Step the population over ``x``, yielding ``(t, spikes)`` per chunk.

    Each chunk is a fresh array; ``voltage`` is updated in place.
    """
    n_neurons = scaled_gain.size
    n_steps = x.size
    refractory_time = np.zeros(n_neurons)
    work = neuron_type.make_workspace((n_neurons,))
    block = max(1, min(chunk_steps, _J_BLOCK_BYTES // (8 * n_neurons)))
    current = np.empty((block, n_neurons))
    for k0 in range(0, n_steps, chunk_steps):
        k1 = min(k0 + chunk_steps, n_steps)
        # zeros: large arrays come from fresh pages that the system zeroes
        # on first touch (in huge pages where it can), so the step writes
        # only the spikes
        spikes = np.zeros((k1 - k0, n_neurons))
        # not held across the yield, so the caller's error state is untouched
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for b0 in range(k0, k1, block):
                b1 = min(b0 + block, k1)
                J = current[: b1 - b0]
                np.multiply(x[b0:b1, np.newaxis], scaled_gain, out=J)
                J += bias
                neuron_type.step_rows(
                    dt,
                    J,
                    spikes[b0 - k0 : b1 - k0],
                    voltage,
                    refractory_time,
                    work,
                    output_is_zero=True,
                )
        yield dt * np.arange(k0 + 1, k1 + 1), spikes


def iter_simulate(
    neuron_type: LIF | str,
    gain: ArrayLike,
    bias: ArrayLike,
    x: ArrayLike,
    dt: float = 0.001,
    encoders: ArrayLike | None = None,
    initial_voltage: ArrayLike | None = None,
    chunk_steps: int = 10000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Simulate a spiking population chunk by chunk (bounded memory).

    Parameters are those of :func:`simulate`, plus:

    chunk_steps : int, optional
        Number of time steps per chunk (the last chunk may be shorter).

    Returns
    -------
    iterator of (t_chunk, spikes_chunk)
        ``t_chunk`` (L,) times in seconds and ``spikes_chunk`` (L, N)
        float64 spikes of value ``amplitude / dt``; consecutive chunks cover
        the grid ``t = dt * (1..M)`` in order. Arguments are checked when
        this function is called, not at the first chunk.
    """
    neuron_type = _spiking_type(neuron_type)
    dt = _check_dt(dt)
    x = _vector("x", x)
    if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer)):
        raise ParameterError("chunk_steps", f"must be an integer, got {chunk_steps!r}")
    if chunk_steps < 1:
        raise ParameterError("chunk_steps", f"must be >= 1, got {chunk_steps}")
    scaled_gain, bias, voltage = _population_arrays(
        gain, bias, encoders, initial_voltage
    )
    return _run(neuron_type, scaled_gain, bias, x, dt, voltage, int(chunk_steps))


def simulate(
    neuron_type: LIF | str,
    gain: ArrayLike,
    bias: ArrayLike,
    x: ArrayLike,
    dt: float = 0.001,
    encoders: ArrayLike | None = None,
    initial_voltage: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a spiking population driven by a 1-D input.

    Parameters
    ----------
    neuron_type : LIF or str
        A spiking model (:class:`~spikerates.neurons.LIF`,
        :class:`~spikerates.neurons.FastLIF`) or its name.
    gain, bias : array_like
        Per-neuron gain and bias, shape (N,).
    x : array_like
        Input at each step, shape (M,); step ``k`` spans
        ``(k * dt, (k + 1) * dt]`` with ``J`` held constant.
    dt : float, optional
        Time step in seconds.
    encoders : array_like, optional
        Per-neuron encoders of +1 or -1, shape (N,); default all +1.
    initial_voltage : array_like, optional
        Membrane voltage at ``t = 0``, shape (N,); default 0. Refractory
        time starts at 0.

    Returns
    -------
    t : ndarray
        Times ``dt * (1..M)`` in seconds, shape (M,).
    spikes : ndarray
        float64, shape (M, N): ``amplitude / dt`` where a neuron spiked
        during the step ending at ``t[k]``, else 0.
    """
    neuron_type = _spiking_type(neuron_type)
    dt = _check_dt(dt)
    x = _vector("x", x)
    scaled_gain, bias, voltage = _population_arrays(
        gain, bias, encoders, initial_voltage
    )
    if x.size == 0:
        return np.zeros(0), np.zeros((0, scaled_gain.size))
    ((t, spikes),) = _run(neuron_type, scaled_gain, bias, x, dt, voltage, x.size)
    return t, spikes


def measure_rates(
    neuron_type: LIF | str,
    gain: ArrayLike,
    bias: ArrayLike,
    x_points: ArrayLike,
    encoders: ArrayLike | None = None,
    dt: float = 0.001,
    duration: float = 1.0,
    initial_voltage: ArrayLike | None = None,
) -> np.ndarray:
    """Firing rates counted from simulations at constant input.

    Every (input point, neuron) pair is simulated as an independent neuron
    with a constant current, all of them at once.

    Parameters
    ----------
    neuron_type : LIF or str
        A spiking model or its name.
    gain, bias : array_like
        Per-neuron gain and bias, shape (N,).
    x_points : array_like
        Constant inputs, shape (P,).
    encoders : array_like, optional
        Per-neuron +1 or -1, shape (N,); default all +1.
    dt : float, optional
        Time step in seconds.
    duration : float, optional
        Simulated time in seconds per input point.
    initial_voltage : array_like, optional
        Voltage at ``t = 0`` per neuron, shape (N,), used for every input
        point; default 0.

    Returns
    -------
    ndarray
        Spike count divided by the simulated time ``M * dt``, in Hz,
        float64, shape (P, N).
    """
    neuron_type = _spiking_type(neuron_type)
    n_steps = _n_steps(dt, duration)
    dt = float(dt)
    x_points = _vector("x_points", x_points)
    scaled_gain, bias, voltage0 = _population_arrays(
        gain, bias, encoders, initial_voltage
    )
    n_points, n_neurons = x_points.size, scaled_gain.size
    # one independent neuron per (input point, neuron) pair
    current = (x_points[:, np.newaxis] * scaled_gain + bias).ravel()
    voltage_all = np.broadcast_to(voltage0, (n_points, n_neurons)).ravel()
    counts = np.zeros(current.size, dtype=np.int64)
    step = neuron_type.step_into
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i0 in range(0, current.size, _MEASURE_BLOCK):
            i1 = min(i0 + _MEASURE_BLOCK, current.size)
            J = current[i0:i1]
            voltage = voltage_all[i0:i1].copy()
            refractory_time = np.zeros(i1 - i0)
            output = np.empty(i1 - i0)
            spiked = np.empty(i1 - i0, dtype=bool)
            block_counts = counts[i0:i1]
            work = neuron_type.make_workspace((i1 - i0,))
            for _ in range(n_steps):
                step(dt, J, output, voltage, refractory_time, work)
                np.not_equal(output, 0.0, out=spiked)
                block_counts += spiked
    return counts.reshape(n_points, n_neurons) / (n_steps * dt)


def random_initial_voltage(n: int, seed: int | None = None) -> np.ndarray:
    """Initial membrane voltages drawn uniformly from [0, 1), like nengo's.

    Parameters
    ----------
    n : int
        Number of neurons.
    seed : int, optional
        Seed of the numpy random generator; None draws fresh entropy.

    Returns
    -------
    ndarray
        float64, shape (n,).
    """
    n = _count("n", n)
    return _generator(seed).uniform(0.0, 1.0, size=n)


# ---------------------------------------------------------------------------
# populations


@dataclass
class Population:
    """Tuning of a population of N neurons.

    Attributes
    ----------
    gain, bias : ndarray
        (N,) current ``J = gain * encoders * x + bias``.
    encoders : ndarray
        (N,) +1 or -1: the sign of the input each neuron prefers.
    max_rates : ndarray
        (N,) firing rate in Hz at ``encoders * x = 1``.
    intercepts : ndarray
        (N,) value of ``encoders * x`` at which each neuron starts firing.
    """

    gain: np.ndarray
    bias: np.ndarray
    encoders: np.ndarray
    max_rates: np.ndarray
    intercepts: np.ndarray

    @property
    def n_neurons(self) -> int:
        """Number of neurons N."""
        return int(self.gain.size)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(name, f"must be an integer, got {value!r}")
    if value < 1:
        raise ParameterError(name, f"must be >= 1, got {value}")
    return int(value)


def _generator(seed: object) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            "seed", f"must be a non-negative integer ({exc})"
        ) from None


def _draw(
    name: str, spec: float | tuple[float, float], n: int, rng: np.random.Generator
) -> np.ndarray:
    """A constant, or n uniform draws from a ``(low, high)`` pair."""
    if isinstance(spec, (tuple, list, np.ndarray)):
        if len(spec) != 2:
            raise ParameterError(
                name, f"must be a number or a (low, high) pair, got {spec!r}"
            )
        low, high = (_finite(name, v) for v in spec)
        if low > high:
            raise ParameterError(name, f"low {low} is above high {high}")
        return rng.uniform(low, high, size=n)
    return np.full(n, _finite(name, spec))


def _finite(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(name, f"must be finite, got {value!r}")
    return v


def make_population(
    neuron_type: LIFRate | str,
    n_neurons: int,
    max_rates: float | tuple[float, float] = (200.0, 400.0),
    intercepts: float | tuple[float, float] = (-1.0, 0.9),
    encoders: str = "random",
    seed: int | None = None,
) -> Population:
    """A population with random (seeded) or fixed tuning.

    Parameters
    ----------
    neuron_type : LIFRate or str
        Neuron model (or its name) whose ``gain_bias`` sets gain and bias.
    n_neurons : int
        Number of neurons N >= 1.
    max_rates : float or (low, high), optional
        Firing rate in Hz at ``encoders * x = 1``: one value for all, or
        uniform draws from ``[low, high)``. Must be below ``1 / tau_ref``.
    intercepts : float or (low, high), optional
        Input at which neurons start firing: one value, or uniform draws.
    encoders : {"random", "positive"}, optional
        "random": +1 or -1 with equal probability; "positive": all +1.
    seed : int, optional
        Seed; max rates, intercepts and encoders come from independent
        streams of it, so fixing one of them does not change the others.

    Returns
    -------
    Population
    """
    if isinstance(neuron_type, str):
        neuron_type = make_neuron_type(neuron_type)
    n = _count("n_neurons", n_neurons)
    try:
        seeds = np.random.SeedSequence(seed).spawn(3)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            "seed", f"must be a non-negative integer ({exc})"
        ) from None
    rate_rng, intercept_rng, encoder_rng = (np.random.default_rng(s) for s in seeds)
    rates = _draw("max_rates", max_rates, n, rate_rng)
    icpts = _draw("intercepts", intercepts, n, intercept_rng)
    if encoders == "random":
        signs = np.where(encoder_rng.integers(0, 2, size=n) == 1, 1.0, -1.0)
    elif encoders == "positive":
        signs = np.ones(n)
    else:
        raise ParameterError(
            "encoders", f"must be 'random' or 'positive', got {encoders!r}"
        )
    # The ends of a range are checked too, so a range that reaches outside
    # what the model allows is refused whatever the draws happen to be.
    ends_r, ends_i = np.meshgrid(_ends(max_rates, rates), _ends(intercepts, icpts))
    neuron_type.gain_bias(ends_r.ravel(), ends_i.ravel())
    gain, bias = neuron_type.gain_bias(rates, icpts)
    return Population(gain, bias, signs, rates, icpts)


def _ends(spec: float | tuple[float, float], drawn: np.ndarray) -> np.ndarray:
    """The ends of a validated ``(low, high)`` pair (``high`` itself is never
    drawn, so the value just below it), or the constant."""
    if isinstance(spec, (tuple, list, np.ndarray)):
        low, high = (float(v) for v in spec)
        return np.asarray([low, max(low, np.nextafter(high, -np.inf))])
    return drawn[:1]


_TABLE_ALIASES = {
    "gain": ("gain", "gains"),
    "bias": ("bias", "biases"),
    "max_rate": ("max_rate", "max_rates"),
    "intercept": ("intercept", "intercepts"),
    "encoder": ("encoder", "encoders"),
}


def population_from_table(
    neuron_type: LIFRate | str, table: Mapping[str, ArrayLike]
) -> Population:
    """A population from per-neuron columns.

    Parameters
    ----------
    neuron_type : LIFRate or str
        Neuron model (or its name) converting between the two descriptions.
    table : mapping of str to array_like
        Columns of equal length N: ``gain`` and ``bias``, or ``max_rate``
        (Hz) and ``intercept``; optional ``encoder`` (+1 or -1, default +1).
        Plural names are accepted too; other columns are ignored.

    Returns
    -------
    Population

    Raises
    ------
    SpikeDataError
        Naming the column that is missing or holds bad values.
    """
    if isinstance(neuron_type, str):
        neuron_type = make_neuron_type(neuron_type)
    columns = {str(k).strip().lower(): k for k in table}

    def column(name: str) -> np.ndarray | None:
        for alias in _TABLE_ALIASES[name]:
            if alias in columns:
                return _table_column(name, table[columns[alias]])
        return None

    gain, bias = column("gain"), column("bias")
    max_rates, intercepts = column("max_rate"), column("intercept")
    if gain is not None and bias is not None:
        lengths = {"gain": gain.size, "bias": bias.size}
    elif max_rates is not None and intercepts is not None:
        lengths = {"max_rate": max_rates.size, "intercept": intercepts.size}
    else:
        found = ", ".join(map(str, table)) or "none"
        raise SpikeDataError(
            f"need columns gain,bias or max_rate,intercept; found {found}"
        )
    encoders = column("encoder")
    if encoders is not None:
        lengths["encoder"] = encoders.size
    n = next(iter(lengths.values()))
    for name, size in lengths.items():
        if size != n:
            raise SpikeDataError(f"has {size} rows, expected {n}", dataset=name)
    if n == 0:
        raise SpikeDataError("the table has no rows", dataset=next(iter(lengths)))
    if encoders is None:
        encoders = np.ones(n)
    elif not np.all(np.abs(encoders) == 1):
        raise SpikeDataError("must be +1 or -1 in every row", dataset="encoder")

    try:
        if gain is not None and bias is not None:
            if np.any(gain == 0):
                raise SpikeDataError("must be non-zero in every row", dataset="gain")
            max_rates, intercepts = neuron_type.max_rates_intercepts(gain, bias)
        else:
            gain, bias = neuron_type.gain_bias(max_rates, intercepts)
    except ParameterError as exc:
        dataset = {"max_rates": "max_rate", "intercepts": "intercept"}.get(
            exc.name, exc.name
        )
        raise SpikeDataError(exc.message, dataset=dataset) from None
    return Population(gain, bias, encoders, max_rates, intercepts)


def _table_column(name: str, values: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpikeDataError("must hold numbers", dataset=name) from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.ravel()
    if array.ndim != 1:
        raise SpikeDataError(
            f"must be one column, got shape {array.shape}", dataset=name
        )
    if not np.all(np.isfinite(array)):
        raise SpikeDataError("must not contain NaN or infinite values", dataset=name)
    return array


# ---------------------------------------------------------------------------
# input signals


def _spec_error(spec: str, why: str) -> ParameterError:
    return ParameterError(
        "input",
        f"{why} in {spec!r}; expected one of " + ", ".join(INPUT_KINDS),
    )


def make_input(
    spec: str, dt: float, duration: float, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An input signal on the grid ``t = dt * (1..M)``, ``M = round(duration / dt)``.

    Parameters
    ----------
    spec : str
        One of

        - ``constant:V`` — ``x = V``;
        - ``ramp:FROM:TO`` — linear from ``FROM`` at ``t[0]`` to ``TO`` at
          ``t[-1]``;
        - ``sine:FREQ_HZ[:AMP]`` — ``AMP * sin(2 pi FREQ_HZ t)``, AMP
          default 1;
        - ``white:CUTOFF_HZ[:RMS]`` — zero-mean Gaussian white noise with
          every frequency above ``CUTOFF_HZ`` removed, scaled to the root
          mean square RMS (default 0.5); seeded by ``seed``.
    dt : float
        Time step in seconds.
    duration : float
        Length of the signal in seconds.
    seed : int, optional
        Seed of the white noise; ignored by the other kinds.

    Returns
    -------
    t : ndarray
        Times in seconds, shape (M,).
    x : ndarray
        float64 input, shape (M,).

    Raises
    ------
    ParameterError
        Naming ``input`` for a malformed spec, ``dt`` or ``duration`` for a
        bad grid.
    """
    n_steps = _n_steps(dt, duration)
    dt = float(dt)
    t = dt * np.arange(1, n_steps + 1)
    if not isinstance(spec, str):
        raise _spec_error(repr(spec), "not a string")
    kind, *fields = spec.strip().split(":")
    kind = kind.strip().lower()
    n_fields = {"constant": (1, 1), "ramp": (2, 2), "sine": (1, 2), "white": (1, 2)}
    if kind not in n_fields:
        raise _spec_error(spec, f"unknown input kind {kind!r}")
    low, high = n_fields[kind]
    if not low <= len(fields) <= high:
        raise _spec_error(spec, f"{kind} takes {low}-{high} values")
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            raise _spec_error(spec, f"{field!r} is not a number") from None
        if not math.isfinite(value):
            raise _spec_error(spec, f"{field!r} is not finite")
        values.append(value)

    if kind == "constant":
        x = np.full(n_steps, values[0])
    elif kind == "ramp":
        x = np.linspace(values[0], values[1], n_steps)
    elif kind == "sine":
        freq, amp = values[0], values[1] if len(values) > 1 else 1.0
        if freq <= 0:
            raise _spec_error(spec, "the frequency must be > 0 Hz")
        x = amp * np.sin(2.0 * np.pi * freq * t)
    else:
        cutoff, rms = values[0], values[1] if len(values) > 1 else 0.5
        if cutoff <= 0:
            raise _spec_error(spec, "the cutoff must be > 0 Hz")
        if rms < 0:
            raise _spec_error(spec, "the RMS must be >= 0")
        x = _white_noise(n_steps, dt, cutoff, rms, _generator(seed), spec)
    return t, x


def _white_noise(
    n_steps: int,
    dt: float,
    cutoff: float,
    rms: float,
    rng: np.random.Generator,
    spec: str,
) -> np.ndarray:
    """Gaussian white noise low-passed by zeroing Fourier bins above cutoff."""
    spectrum = np.fft.rfft(rng.standard_normal(n_steps))
    freqs = np.fft.rfftfreq(n_steps, dt)
    spectrum[freqs > cutoff] = 0.0
    spectrum[0] = 0.0  # zero mean
    x = np.fft.irfft(spectrum, n=n_steps)
    power = np.sqrt(np.mean(x * x))
    if power == 0:
        raise _spec_error(
            spec,
            f"no frequency between 0 and the cutoff: the lowest is "
            f"1/duration = {1.0 / (n_steps * dt):.6g} Hz",
        )
    return x * (rms / power)


def resample_input(
    t_file: ArrayLike, x_file: ArrayLike, t_grid: ArrayLike
) -> np.ndarray:
    """Linearly interpolate a sampled input onto the simulation grid.

    Parameters
    ----------
    t_file : array_like
        Sample times in seconds, shape (K,), strictly increasing, K >= 2.
    x_file : array_like
        Input at those times, shape (K,).
    t_grid : array_like
        Grid times in seconds, shape (M,), increasing.

    Returns
    -------
    ndarray
        float64 input on the grid, shape (M,). Grid times at most one grid
        step outside the sampled range take the nearest end value.

    Raises
    ------
    ParameterError
        Naming ``input`` when the samples are malformed or do not cover the
        grid.
    """
    try:
        t_file = np.asarray(t_file, dtype=np.float64)
        x_file = np.asarray(x_file, dtype=np.float64)
        t_grid = np.asarray(t_grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("input", "t and x must hold numbers") from None
    if t_file.ndim != 1 or x_file.shape != t_file.shape:
        raise ParameterError(
            "input",
            "t and x must be 1-D of equal length, "
            f"got {t_file.shape} and {x_file.shape}",
        )
    if t_file.size < 2:
        raise ParameterError("input", f"needs at least 2 samples, got {t_file.size}")
    if not (np.all(np.isfinite(t_file)) and np.all(np.isfinite(x_file))):
        raise ParameterError("input", "t and x must not contain NaN or infinite values")
    if not np.all(np.diff(t_file) > 0):
        raise ParameterError("input", "t must be strictly increasing")
    if t_grid.ndim != 1:
        raise ParameterError("input", f"the grid must be 1-D, got {t_grid.shape}")
    if t_grid.size == 0:
        return np.zeros(0)
    slack = float(np.max(np.diff(t_grid))) if t_grid.size > 1 else 0.0
    slack *= 1.0 + 1e-9
    if t_grid[0] < t_file[0] - slack or t_grid[-1] > t_file[-1] + slack:
        raise ParameterError(
            "input",
            f"the samples cover t = {t_file[0]:.6g}..{t_file[-1]:.6g} s but the "
            f"simulation runs over t = {t_grid[0]:.6g}..{t_grid[-1]:.6g} s",
        )
    return np.interp(t_grid, t_file, x_file)


# ---------------------------------------------------------------------------
# runs as data-model objects

#: Most neuron-steps (neurons x time steps) one run may simulate: about a
#: quarter of an hour of computing.
MAX_NEURON_STEPS = 10**11

#: Bytes of state and population kept per neuron (gain, bias, encoders, max
#: rate, intercept, voltage, refractory time and work arrays).
_BYTES_PER_NEURON = 96


def check_run_size(
    n_steps: int,
    n_neurons: int,
    *,
    events: bool = False,
    max_output_bytes: int | None = None,
    max_neuron_steps: int | None = MAX_NEURON_STEPS,
) -> int:
    """Refuse a simulation too large to hold or to finish, before any work.

    Parameters
    ----------
    n_steps : int
        Time steps M (``round(duration / dt)``).
    n_neurons : int
        Neurons N.
    events : bool
        Only spike times are kept (no (M, N) matrix).
    max_output_bytes : int, optional
        Most bytes the arrays of the run may take: the dense spikes
        ``8 M N`` (unless ``events``), the time grid and input ``16 M``, and
        the population; None for no limit.
    max_neuron_steps : int, optional
        Most neuron-steps ``M N`` to compute; None for no limit.

    Returns
    -------
    int
        The bytes the run's arrays take.

    Raises
    ------
    ResourceLimitError
        Naming the size and the ways to shrink the run.
    """
    n_steps, n_neurons = int(n_steps), int(n_neurons)
    n_bytes = 16 * n_steps + _BYTES_PER_NEURON * n_neurons
    if not events:
        n_bytes += 8 * n_steps * n_neurons
    shrink = "a shorter --duration, a coarser --dt or fewer --n-neurons"
    if max_output_bytes is not None and n_bytes > max_output_bytes:
        dense = "" if events else " (or keep only spike times with --events)"
        raise ResourceLimitError(
            f"simulating {n_neurons} neurons for {n_steps} steps takes "
            f"{format_bytes(n_bytes)}, above the limit of "
            f"{format_bytes(max_output_bytes)}; raise it (--max-output-size) "
            f"or choose {shrink}{dense}"
        )
    if max_neuron_steps is not None and n_steps * n_neurons > max_neuron_steps:
        raise ResourceLimitError(
            f"simulating {n_neurons} neurons for {n_steps} steps is "
            f"{n_steps * n_neurons:.3g} neuron-steps, more than the "
            f"{max_neuron_steps:.3g} one run may compute; choose {shrink}"
        )
    return n_bytes


def run_steps(dt: float, duration: float) -> int:
    """The number of time steps ``round(duration / dt)`` of a run (>= 1).

    Raises
    ------
    ParameterError
        Naming ``dt`` or ``duration``.
    ResourceLimitError
        When the number of steps is too large to count (``duration / dt``
        overflows).
    """
    ratio = _check_dt(duration, "duration") / _check_dt(dt)
    if not math.isfinite(ratio):
        raise ResourceLimitError(
            f"a duration of {duration} s at dt = {dt} s is more time steps than "
            "can be counted; choose a shorter duration or a coarser dt"
        )
    return _n_steps(dt, duration)


def derived_seed(seed: int | None, stream: int) -> int | None:
    """An independent seed for a second random stream (input, voltages).

    The population keeps ``seed`` itself, so two runs with the same seed
    describe the same neurons whatever else they draw.

    Parameters
    ----------
    seed : int, optional
        The user's seed; None stays None (fresh entropy).
    stream : int
        Number of the stream (e.g. 1 for the input, 2 for the voltages).

    Returns
    -------
    int or None
    """
    if seed is None:
        return None
    try:
        sequence = np.random.SeedSequence((seed, stream))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            "seed", f"must be a non-negative integer ({exc})"
        ) from None
    return int(sequence.generate_state(1)[0])


def input_from_table(
    table: Mapping[str, ArrayLike],
    dt: float,
    duration: float,
    *,
    source: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An input signal from a table with columns ``t`` and ``x``.

    The samples are resampled linearly onto the grid ``t = dt * (1..M)``,
    ``M = round(duration / dt)`` (see :func:`resample_input`).

    Parameters
    ----------
    table : mapping of str to array_like
        Columns ``t`` (seconds, increasing) and ``x``; others are ignored.
    dt, duration : float
        The simulation grid in seconds.
    source : str, optional
        The table's file, named in errors.

    Returns
    -------
    t, x : ndarray, shape (M,)

    Raises
    ------
    SpikeDataError
        Naming the file and column when a column is missing or the samples
        do not cover the grid.
    """
    n_steps = _n_steps(dt, duration)
    for column in ("t", "x"):
        if column not in table:
            found = ", ".join(map(str, table)) or "none"
            raise SpikeDataError(
                f"no column {column!r} (an input file needs columns t,x; "
                f"found {found})",
                path=source,
                dataset=column,
            )
    t = float(dt) * np.arange(1, n_steps + 1)
    try:
        x = resample_input(table["t"], table["x"], t)
    except ParameterError as exc:
        raise SpikeDataError(exc.message, path=source) from None
    return t, x


def simulate_spikes(
    neuron_type: LIF | str,
    population: Population,
    x: ArrayLike,
    dt: float = 0.001,
    *,
    initial_voltage: ArrayLike | None = None,
    events: bool = False,
    unit_ids: ArrayLike | None = None,
    progress: Callable[[int], Any] | None = None,
    chunk_steps: int = 10000,
) -> DenseSpikes | SpikeTrains:
    """Simulate a population and return its spikes as a data-model object.

    Parameters
    ----------
    neuron_type : LIF or str
        A spiking model or its name.
    population : Population
        Gain, bias and encoders of the N neurons.
    x : array_like, shape (M,)
        Input at each step of ``dt`` seconds.
    dt : float
        Time step in seconds.
    initial_voltage : array_like, shape (N,), optional
        Voltages at ``t = 0``; default 0.
    events : bool
        Keep only the spike times (a :class:`SpikeTrains`), so memory grows
        with the number of spikes instead of steps x neurons.
    unit_ids : array_like, shape (N,), optional
        Default ``0..N-1``.
    progress : callable, optional
        Called with the number of steps each chunk completed.
    chunk_steps : int
        Steps simulated at a time.

    Returns
    -------
    DenseSpikes or SpikeTrains
        Dense: ``t = dt * (1..M)`` and spikes (M, N) of ``amplitude / dt``.
        Events: each spike at the grid time ``t[k]`` of its step, with the
        window ``(0, M dt]``.
    """
    neuron_type = _spiking_type(neuron_type)
    dt = _check_dt(dt)
    x = _vector("x", x)
    n_steps, n_neurons = x.size, population.n_neurons
    chunks = iter_simulate(
        neuron_type,
        population.gain,
        population.bias,
        x,
        dt=dt,
        encoders=population.encoders,
        initial_voltage=initial_voltage,
        chunk_steps=chunk_steps,
    )
    ids = np.arange(n_neurons) if unit_ids is None else unit_ids
    if events:
        # A spike is amplitude / dt in its step's row: one count.
        per_count = dt / neuron_type.amplitude

        def counted():
            for t_chunk, s_chunk in chunks:
                yield t_chunk, np.rint(s_chunk * per_count)
                if progress is not None:
                    progress(len(t_chunk))

        return dense_to_events(
            counted(),
            unit_ids=ids,
            t_start=0.0,
            t_stop=dt * n_steps,
            source="simulate",
        )
    spikes = np.empty((n_steps, n_neurons), dtype=np.float64)
    k0 = 0
    for t_chunk, s_chunk in chunks:
        k1 = k0 + len(t_chunk)
        spikes[k0:k1] = s_chunk
        if progress is not None:
            progress(k1 - k0)
        k0 = k1
    return DenseSpikes(
        t=dt * np.arange(1, n_steps + 1),
        spikes=spikes,
        unit_ids=ids,
        values="amplitude",
        source="simulate",
        dt=dt,
    )
