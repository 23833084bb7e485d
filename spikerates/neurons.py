"""Leaky integrate-and-fire (LIF) neuron models.

Rate models map an input current to a firing rate in Hz; spiking models
advance a state (membrane voltage and refractory time) by one time step.
All models share nengo's conventions: the input current of neuron ``i`` for
a scalar input ``x`` is ``J = gain[i] * x + bias[i]``, the firing threshold
is ``J = 1``, and a spike is emitted as a value ``amplitude / dt``.

Examples
--------
>>> import numpy as np
>>> lif = LIFRate()
>>> gain, bias = lif.gain_bias(max_rates=[100.0], intercepts=[0.0])
>>> lif.rates(np.array([0.0, 1.0]), gain, bias).round(6)
array([[  0.],
       [100.]])
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from spikerates.errors import ParameterError

__all__ = [
    "NEURON_TYPES",
    "FastLIF",
    "LIF",
    "LIFRate",
    "SoftLIFRate",
    "gain_bias",
    "lif_j",
    "make_neuron_type",
    "max_rates_intercepts",
    "softplus",
]


# ---------------------------------------------------------------------------
# elementwise functions


def softplus(x: ArrayLike, sigma: float = 1.0) -> np.ndarray:
    """Smoothed rectification ``sigma * log(1 + exp(x / sigma))``.

    Parameters
    ----------
    x : array_like
        Input of any shape. Computed in float64 whatever its dtype.
    sigma : float, optional
        Width of the smoothing around 0 (same units as ``x``); must be > 0.

    Returns
    -------
    ndarray
        float64 array of the shape of ``x``; tends to ``max(x, 0)`` as
        ``sigma -> 0``.
    """
    sigma = _check_positive("sigma", sigma)
    x = np.asarray(x, dtype=np.float64)
    # logaddexp(0, y) = max(y, 0) + log1p(exp(-|y|)) never overflows
    return sigma * np.logaddexp(0.0, x / sigma)


def lif_j(
    j: ArrayLike, tau_ref: float, tau_rc: float, amplitude: float = 1.0
) -> np.ndarray:
    """Steady-state LIF firing rate for a current above threshold.

    Parameters
    ----------
    j : array_like
        Input current minus the threshold, ``J - 1`` (dimensionless).
    tau_ref : float
        Refractory period in seconds.
    tau_rc : float
        Membrane time constant in seconds.
    amplitude : float, optional
        Scale of the output.

    Returns
    -------
    ndarray
        float64 array of the shape of ``j``: ``amplitude / (tau_ref + tau_rc *
        log(1 + 1/j))`` in Hz where ``j > 0``, and 0 where ``j <= 0`` (the
        neuron never reaches threshold).
    """
    j = np.asarray(j, dtype=np.float64)
    above = j > 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        rate = amplitude / (tau_ref + tau_rc * np.log1p(1.0 / j))
    return np.where(above, rate, 0.0)


# ---------------------------------------------------------------------------
# parameter handling


def _as_float(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(name, f"must be a number, got {value!r}") from None


def _check_positive(name: str, value: object) -> float:
    v = _as_float(name, value)
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(name, f"must be a finite number > 0, got {value!r}")
    return v


def _check_nonnegative(name: str, value: object) -> float:
    v = _as_float(name, value)
    if not (math.isfinite(v) and v >= 0):
        raise ParameterError(name, f"must be a finite number >= 0, got {value!r}")
    return v


def _check_nonpositive_or_minus_inf(name: str, value: object) -> float:
    v = _as_float(name, value)
    if math.isnan(v) or v > 0:
        raise ParameterError(name, f"must be <= 0 (or -inf), got {value!r}")
    return v


class _Param:
    """A neuron parameter checked every time it is set."""

    def __init__(self, check) -> None:
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attr = "_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return getattr(obj, self.attr)

    def __set__(self, obj, value) -> None:
        setattr(obj, self.attr, self.check(self.name, value))
        # constants cached for a step are recomputed after any change
        obj._revision = getattr(obj, "_revision", 0) + 1


# ---------------------------------------------------------------------------
# gain and bias


def gain_bias(
    max_rates: ArrayLike,
    intercepts: ArrayLike,
    tau_rc: float = 0.02,
    tau_ref: float = 0.002,
) -> tuple[np.ndarray, np.ndarray]:
    """Gain and bias giving LIF neurons the requested tuning.

    Parameters
    ----------
    max_rates : array_like
        Firing rate in Hz at ``x = 1``, shape (N,) or scalar; each must be
        > 0 and < ``1 / tau_ref``.
    intercepts : array_like
        Input ``x`` at which each neuron starts firing, shape (N,) or scalar;
        each must be < 1.
    tau_rc : float, optional
        Membrane time constant in seconds.
    tau_ref : float, optional
        Refractory period in seconds.

    Returns
    -------
    gain, bias : ndarray
        float64 arrays of the broadcast shape of the inputs (at least 1-D).

    Raises
    ------
    ParameterError
        Naming ``max_rates`` or ``intercepts`` when a value is out of range.
    """
    tau_rc = _check_positive("tau_rc", tau_rc)
    tau_ref = _check_nonnegative("tau_ref", tau_ref)
    max_rates = np.atleast_1d(np.asarray(max_rates, dtype=np.float64))
    intercepts = np.atleast_1d(np.asarray(intercepts, dtype=np.float64))
    if not np.all(max_rates > 0) or not np.all(np.isfinite(max_rates)):
        raise ParameterError("max_rates", "must be finite and > 0 Hz")
    if tau_ref > 0 and not np.all(max_rates < 1.0 / tau_ref):
        raise ParameterError(
            "max_rates",
            f"must be below 1/tau_ref = {1.0 / tau_ref:.6g} Hz, "
            f"got up to {np.max(max_rates):.6g} Hz",
        )
    if not np.all(intercepts < 1) or not np.all(np.isfinite(intercepts)):
        raise ParameterError("intercepts", "must be finite and < 1")
    try:
        max_rates, intercepts = np.broadcast_arrays(max_rates, intercepts)
    except ValueError:
        raise ParameterError(
            "intercepts",
            f"shape {intercepts.shape} does not match max_rates {max_rates.shape}",
        ) from None
    # z is the current J(x=1) whose LIF rate is max_rate; J(intercept) = 1
    # then fixes the line J = gain * x + bias
    z = 1.0 / (1.0 - np.exp((tau_ref - 1.0 / max_rates) / tau_rc))
    if np.any(z == 1.0):
        # the current above threshold, z - 1, is below float64 resolution
        raise ParameterError(
            "max_rates",
            f"too low for tau_rc = {tau_rc} s and tau_ref = {tau_ref} s: "
            f"got down to {np.min(max_rates):.6g} Hz",
        )
    gain = (1.0 - z) / (intercepts - 1.0)
    bias = 1.0 - gain * intercepts
    return gain, bias


def max_rates_intercepts(
    gain: ArrayLike,
    bias: ArrayLike,
    tau_rc: float = 0.02,
    tau_ref: float = 0.002,
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`gain_bias`.

    Parameters
    ----------
    gain, bias : array_like
        Per-neuron gain and bias, shape (N,) or scalar; gain must be non-zero.
    tau_rc : float, optional
        Membrane time constant in seconds.
    tau_ref : float, optional
        Refractory period in seconds.

    Returns
    -------
    max_rates : ndarray
        Firing rate in Hz at ``x = 1`` (0 for a neuron silent there).
    intercepts : ndarray
        Input at which each neuron reaches threshold, ``(1 - bias) / gain``.
    """
    tau_rc = _check_positive("tau_rc", tau_rc)
    tau_ref = _check_nonnegative("tau_ref", tau_ref)
    gain = np.atleast_1d(np.asarray(gain, dtype=np.float64))
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    if np.any(gain == 0) or not np.all(np.isfinite(gain)):
        raise ParameterError("gain", "must be finite and non-zero")
    if not np.all(np.isfinite(bias)):
        raise ParameterError("bias", "must be finite")
    intercepts = (1.0 - bias) / gain
    # minus the current at x = 1; the neuron fires there only if it is < -1
    minus_j1 = gain * (intercepts - 1.0) - 1.0
    fires = minus_j1 < -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        # the LIF rate at J(1), written as nengo does to agree to rounding
        max_rates = 1.0 / (tau_ref - tau_rc * np.log1p(1.0 / minus_j1))
    max_rates = np.where(fires, max_rates, 0.0)
    return max_rates, intercepts


# ---------------------------------------------------------------------------
# rate models


class LIFRate:
    """Non-spiking leaky integrate-and-fire neuron: the steady-state rate.

    Parameters
    ----------
    tau_rc : float, optional
        Membrane RC time constant in seconds; > 0.
    tau_ref : float, optional
        Absolute refractory period in seconds; >= 0.
    amplitude : float, optional
        Scale of the output (rates, or spike values ``amplitude / dt``); > 0.
    """

    spiking = False
    tau_rc = _Param(_check_positive)
    tau_ref = _Param(_check_nonnegative)
    amplitude = _Param(_check_positive)
    _param_names: tuple[str, ...] = ("tau_rc", "tau_ref", "amplitude")

    def __init__(
        self, tau_rc: float = 0.02, tau_ref: float = 0.002, amplitude: float = 1.0
    ) -> None:
        self.tau_rc = tau_rc
        self.tau_ref = tau_ref
        self.amplitude = amplitude

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._param_names)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._param_names)

    def __hash__(self) -> int:
        return hash((type(self), *(getattr(self, n) for n in self._param_names)))

    def current(self, x: ArrayLike, gain: ArrayLike, bias: ArrayLike) -> np.ndarray:
        """Input current ``J = gain * x + bias``.

        Parameters
        ----------
        x : array_like
            Input, shape (P,) (the same value for every neuron) or (P, N).
        gain, bias : array_like
            Per-neuron gain and bias, shape (N,) or scalar.

        Returns
        -------
        ndarray
            float64 current, shape (P, N).
        """
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        gain = np.atleast_1d(np.asarray(gain, dtype=np.float64))
        bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
        if gain.ndim != 1 or bias.ndim != 1:
            raise ValueError(
                f"gain and bias must be 1-D (N,), got shapes {gain.shape} "
                f"and {bias.shape}"
            )
        if x.ndim == 1:
            x = x[:, np.newaxis]
        elif x.ndim != 2 or x.shape[1] not in (1, max(gain.size, bias.size)):
            raise ValueError(
                f"x must have shape (P,) or (P, {gain.size}), got {x.shape}"
            )
        try:
            return gain * x + bias
        except ValueError:
            raise ValueError(
                f"shapes do not match: x {x.shape}, gain {gain.shape}, "
                f"bias {bias.shape}"
            ) from None

    def rates(self, x: ArrayLike, gain: ArrayLike, bias: ArrayLike) -> np.ndarray:
        """Steady-state firing rates.

        Parameters
        ----------
        x : array_like
            Input, shape (P,) or (P, N).
        gain, bias : array_like
            Per-neuron gain and bias, shape (N,).

        Returns
        -------
        ndarray
            Rates in Hz (times ``amplitude``), float64, shape (P, N).
        """
        j = self.current(x, gain, bias) - 1.0
        return lif_j(j, self.tau_ref, self.tau_rc, self.amplitude)

    def gain_bias(
        self, max_rates: ArrayLike, intercepts: ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gain and bias for the given tuning; see :func:`gain_bias`."""
        return gain_bias(max_rates, intercepts, self.tau_rc, self.tau_ref)

    def max_rates_intercepts(
        self, gain: ArrayLike, bias: ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tuning of given gain and bias; see :func:`max_rates_intercepts`."""
        return max_rates_intercepts(gain, bias, self.tau_rc, self.tau_ref)


class SoftLIFRate(LIFRate):
    """LIF rate model smoothed around the firing threshold.

    The current above threshold ``J - 1`` is passed through
    :func:`softplus` before the LIF rate, so the tuning curve has a
    continuous derivative; as ``sigma -> 0`` it becomes :class:`LIFRate`.

    Parameters
    ----------
    sigma : float, optional
        Width of the smoothing (current units); > 0.
    tau_rc, tau_ref, amplitude : float, optional
        As for :class:`LIFRate`.
    """

    sigma = _Param(_check_positive)
    _param_names = ("sigma", "tau_rc", "tau_ref", "amplitude")

    def __init__(
        self,
        sigma: float = 1.0,
        tau_rc: float = 0.02,
        tau_ref: float = 0.002,
        amplitude: float = 1.0,
    ) -> None:
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude)
        self.sigma = sigma

    def rates(self, x: ArrayLike, gain: ArrayLike, bias: ArrayLike) -> np.ndarray:
        """Smoothed firing rates in Hz, float64, shape (P, N)."""
        j = softplus(self.current(x, gain, bias) - 1.0, self.sigma)
        return lif_j(j, self.tau_ref, self.tau_rc, self.amplitude)

    def derivative(self, x: ArrayLike, gain: ArrayLike, bias: ArrayLike) -> np.ndarray:
        """Derivative of :meth:`rates` with respect to ``x``.

        Parameters
        ----------
        x : array_like
            Input, shape (P,) or (P, N).
        gain, bias : array_like
            Per-neuron gain and bias, shape (N,).

        Returns
        -------
        ndarray
            ``d rate / d x`` in Hz per unit of ``x``, float64, shape (P, N);
            with scalar ``gain`` and ``bias``, the shape of ``x`` (the
            reference's elementwise ``gain * x + bias``).
        """
        if np.ndim(gain) == 0 and np.ndim(bias) == 0:
            gain = np.float64(gain)
            y = gain * np.asarray(x, dtype=np.float64) + np.float64(bias) - 1.0
        else:
            gain = np.atleast_1d(np.asarray(gain, dtype=np.float64))
            y = self.current(x, gain, bias) - 1.0
        j = softplus(y, self.sigma)
        rate = lif_j(j, self.tau_ref, self.tau_rc, self.amplitude)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            # chain rule: d rate/d j * d softplus/d y (a logistic) * d y/d x (gain)
            d = (gain * self.tau_rc * rate * rate) / (
                self.amplitude * j * (j + 1.0) * (1.0 + np.exp(-y / self.sigma))
            )
        # where the rate is 0 (at or far below threshold) so is its slope;
        # the formula would give 0 / 0 there once j underflows
        return np.where(rate > 0, d, 0.0)


# ---------------------------------------------------------------------------
# spiking models


class _Workspace:
    """Scratch arrays and constants for stepping one state shape.

    The constants are 0-d arrays in the state's dtype: passed to a ufunc
    they give the same result as the Python floats they stand for, at a
    fraction of the call's cost (a Python float is converted at every
    call). They are computed for one model, one time step and one revision
    of the model's parameters, and recomputed when any of these changes.
    """

    __slots__ = ("a", "b", "spiked", "refractory", "rows", "key", "const")

    def __init__(self, shape: tuple[int, ...], dtype=np.float64, a_dtype=None) -> None:
        self.a = np.empty(shape, dtype=dtype if a_dtype is None else a_dtype)
        self.b = np.empty(shape, dtype=dtype)
        self.spiked = np.empty(shape, dtype=bool)
        self.refractory = np.empty(shape, dtype=bool)
        self.rows = np.empty((0, *shape), dtype=dtype)
        self.key: tuple | None = None
        self.const: dict[str, np.ndarray] = {}


class LIF(LIFRate):
    """Spiking leaky integrate-and-fire neuron with exact spike times.

    Within a step the current is held constant, so the voltage is integrated
    exactly; a spike's time inside the step is solved for, and the
    refractory period runs from that time (nengo 4's ``LIF``).

    Parameters
    ----------
    tau_rc : float, optional
        Membrane RC time constant in seconds; > 0.
    tau_ref : float, optional
        Absolute refractory period in seconds; >= 0.
    min_voltage : float, optional
        Floor of the membrane voltage; <= 0 (``-inf`` for no floor).
    amplitude : float, optional
        A spike is emitted as ``amplitude / dt``; > 0.
    """

    spiking = True
    min_voltage = _Param(_check_nonpositive_or_minus_inf)
    _uses_above = True  # the step loop takes J - 1
    _param_names = ("tau_rc", "tau_ref", "min_voltage", "amplitude")

    def __init__(
        self,
        tau_rc: float = 0.02,
        tau_ref: float = 0.002,
        min_voltage: float = 0.0,
        amplitude: float = 1.0,
    ) -> None:
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude)
        self.min_voltage = min_voltage

    def make_workspace(self, shape: tuple[int, ...], dtype=np.float64) -> _Workspace:
        """Scratch arrays for repeated :meth:`step_into` calls on one shape."""
        return _Workspace(shape, dtype)

    def _constants(self, dt: float, work: _Workspace) -> dict[str, np.ndarray]:
        """The step's constants as 0-d arrays of the workspace's dtype."""
        key = (self, self._revision, dt)
        if work.key != key:
            dtype = work.b.dtype

            def scalar(value: float) -> np.ndarray:
                return np.asarray(value, dtype=dtype)

            full = np.full(1, dt, dtype=dtype)
            # the voltage factor of a whole step, computed by the same ufuncs
            # (and in the same dtype) as the per-neuron factor it stands for
            np.divide(full, -self.tau_rc, out=full)
            np.expm1(full, out=full)
            work.const = {
                "dt": scalar(dt),
                "zero": scalar(0.0),
                "one": scalar(1.0),
                "minus_tau_rc": scalar(-self.tau_rc),
                "tau_rc": scalar(self.tau_rc),
                "tau_ref": scalar(self.tau_ref),
                "min_voltage": scalar(self.min_voltage),
                "factor": full.reshape(()),
                # FastLIF's voltage increment and spike time are float64
                # whatever the state's dtype
                "minus_factor_f64": np.asarray(-np.expm1(-dt / self.tau_rc)),
                "dt_f64": np.asarray(dt, dtype=np.float64),
                "tau_ref_f64": np.asarray(self.tau_ref, dtype=np.float64),
            }
            work.key = key
        return work.const

    def step(
        self,
        dt: float,
        J: np.ndarray,
        output: np.ndarray,
        voltage: np.ndarray,
        refractory_time: np.ndarray,
    ) -> None:
        """Advance the state by one time step, in place.

        Parameters
        ----------
        dt : float
            Time step in seconds.
        J : ndarray
            Input current during the step, shape S (any shape; float).
        output : ndarray
            Receives ``amplitude / dt`` where a neuron spiked, else 0; shape S.
        voltage : ndarray
            Membrane voltage, shape S; updated in place.
        refractory_time : ndarray
            Refractory time left in seconds, shape S; updated in place.
        """
        J = np.broadcast_to(np.asarray(J), voltage.shape)
        arrays = (output, voltage, refractory_time)
        if voltage.ndim == 1:
            flat = arrays
        else:
            # the step works on 1-D views; copies (written back below) stand
            # in for arrays that cannot be viewed as 1-D
            flat = tuple(np.ravel(a) for a in arrays)
            J = np.ravel(J)
        work = self.make_workspace(flat[1].shape, flat[1].dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self.step_into(dt, J, *flat, work)
        for a, f in zip(arrays, flat, strict=True):
            if not np.shares_memory(a, f):
                a[...] = f.reshape(a.shape)

    def step_into(
        self,
        dt: float,
        J: np.ndarray,
        output: np.ndarray,
        voltage: np.ndarray,
        refractory_time: np.ndarray,
        work: _Workspace,
    ) -> None:
        """:meth:`step` with caller-owned scratch arrays.

        The caller runs this under ``np.errstate(divide="ignore",
        invalid="ignore", over="ignore")`` so that a degenerate state (a
        voltage above 1 with ``J == 1``) gives NaN quietly, as in
        :meth:`step`. ``J``, ``output``, ``voltage`` and
        ``refractory_time`` are 1-D arrays of ``work``'s shape and dtype.
        """
        self._steps(
            dt,
            J[np.newaxis],
            None,
            output[np.newaxis],
            voltage,
            refractory_time,
            work,
            False,
        )

    def step_rows(
        self,
        dt: float,
        J: np.ndarray,
        output: np.ndarray,
        voltage: np.ndarray,
        refractory_time: np.ndarray,
        work: _Workspace,
        output_is_zero: bool = False,
    ) -> None:
        """Advance the state by one time step per row of ``J``.

        The same arithmetic as repeated :meth:`step_into` calls, at a lower
        cost per step; under the same error state.

        Parameters
        ----------
        dt : float
            Time step in seconds.
        J : ndarray
            Input current, shape (B, n): row ``i`` during the ``i``-th step.
        output : ndarray
            Shape (B, n); row ``i`` receives the spikes of the ``i``-th
            step (``amplitude / dt``, else 0).
        voltage, refractory_time : ndarray
            State of shape (n,) of ``work``'s dtype, updated in place.
        work : workspace
            From :meth:`make_workspace` for shape (n,).
        output_is_zero : bool, optional
            ``output`` holds zeros already, so only the spikes are written.
        """
        above = None
        if self._uses_above:
            # J - 1, for the spike times, costs less for a block of rows at
            # once (into a buffer kept in the workspace)
            if work.rows.shape[0] < J.shape[0] or work.rows.dtype != J.dtype:
                work.rows = np.empty(J.shape, dtype=J.dtype)
            above = np.subtract(
                J, np.asarray(1.0, dtype=J.dtype), out=work.rows[: J.shape[0]]
            )
        self._steps(
            dt, J, above, output, voltage, refractory_time, work, output_is_zero
        )

    def _steps(
        self, dt, J, above, output, voltage, refractory_time, work, output_is_zero
    ) -> None:
        """The step loop; ``above`` is ``J - 1`` or None (computed as needed)."""
        c = self._constants(dt, work)
        factor, tmp, spiked, refractory = work.a, work.b, work.spiked, work.refractory
        subtract, multiply, divide, add = np.subtract, np.multiply, np.divide, np.add
        greater, maximum, expm1, log1p = np.greater, np.maximum, np.expm1, np.log1p
        c_dt, c_zero, c_one = c["dt"], c["zero"], c["one"]
        c_factor, c_minus_tau_rc = c["factor"], c["minus_tau_rc"]
        c_tau_rc, c_tau_ref, c_min_voltage = c["tau_rc"], c["tau_ref"], c["min_voltage"]
        floor = self.min_voltage > -math.inf
        spike_value = self.amplitude / dt

        for i in range(J.shape[0]):
            current, out = J[i], output[i]
            subtract(refractory_time, c_dt, refractory_time)
            greater(refractory_time, c_zero, refractory)
            ref = refractory.nonzero()[0]  # refractory is 1-D

            # exact integration with J held over the step (zero-order hold):
            # v <- v + (J - v) * (1 - exp(-delta_t / tau_rc)), where the
            # active time delta_t = clip(dt - refractory_time, 0, dt) is the
            # whole step for every neuron out of its refractory period; only
            # the others need their own factor (few are refractory in one
            # step, and expm1 is costly)
            subtract(current, voltage, tmp)
            if ref.size:
                factor.fill(c_factor)
                delta_t = refractory_time[ref]
                subtract(c_dt, delta_t, delta_t)
                # refractory_time > 0 here, so dt - refractory_time <= dt
                maximum(delta_t, c_zero, out=delta_t)
                divide(delta_t, c_minus_tau_rc, delta_t)
                expm1(delta_t, delta_t)
                factor[ref] = delta_t
                multiply(tmp, factor, tmp)
            else:
                multiply(tmp, c_factor, tmp)
            subtract(voltage, tmp, voltage)

            greater(voltage, c_one, spiked)
            # spiking voltages are > 1, so the floor can be applied first
            if floor:
                maximum(voltage, c_min_voltage, out=voltage)

            # only the neurons that spiked need a spike time; working on
            # their gathered values is faster than masked full-length ufuncs
            # (few neurons spike in one step, and log1p is costly)
            idx = spiked.nonzero()[0]  # spiked is 1-D
            if not output_is_zero:
                out.fill(0.0)
            if idx.size:
                out[idx] = spike_value
                # spike time inside the step from v(t_s) = 1:
                # t_s = dt + tau_rc * log1p(-(v - 1) / (J - 1))
                t_spike = voltage[idx]
                subtract(c_one, t_spike, t_spike)
                if above is None:
                    j_above = current[idx]
                    subtract(j_above, c_one, j_above)
                else:
                    j_above = above[i][idx]  # a row first: half the cost
                divide(t_spike, j_above, t_spike)
                log1p(t_spike, t_spike)
                multiply(t_spike, c_tau_rc, t_spike)
                add(t_spike, c_dt, t_spike)
                # the refractory period runs from the spike time
                add(t_spike, c_tau_ref, t_spike)
                refractory_time[idx] = t_spike
                voltage[idx] = 0.0


class FastLIF(LIF):
    """Spiking LIF neuron with a linearised spike time (cheaper than :class:`LIF`).

    The voltage is integrated exactly over a whole step; a neuron coming out
    of its refractory period partway through a step has its voltage scaled
    by the fraction of the step it was active, and the time of a spike
    within the step is found by linear interpolation of the voltage. This is
    accurate for small ``dt`` but biases rates at larger ``dt``.

    Parameters are those of :class:`LIF`. Spikes are emitted as
    ``amplitude / dt``.
    """

    _uses_above = False

    def make_workspace(self, shape: tuple[int, ...], dtype=np.float64) -> _Workspace:
        """Scratch arrays for repeated :meth:`step_into` calls on one shape."""
        # the voltage increment is kept in float64 whatever the state's
        # dtype, as in the reference (it scales by a float64 scalar)
        return _Workspace(shape, dtype, a_dtype=np.float64)

    def _steps(
        self, dt, J, above, output, voltage, refractory_time, work, output_is_zero
    ) -> None:
        """The step loop (``above`` is unused)."""
        c = self._constants(dt, work)
        dv, spiked, refractory = work.a, work.spiked, work.refractory
        subtract, multiply, divide, add = np.subtract, np.multiply, np.divide, np.add
        greater, maximum, minimum = np.greater, np.maximum, np.minimum
        c_dt, c_zero, c_one, c_min_voltage = (
            c["dt"],
            c["zero"],
            c["one"],
            c["min_voltage"],
        )
        c_minus_factor, c_dt_f64, c_tau_ref_f64 = (
            c["minus_factor_f64"],
            c["dt_f64"],
            c["tau_ref_f64"],
        )
        floor = self.min_voltage > -math.inf
        spike_value = self.amplitude / dt

        for i in range(J.shape[0]):
            current, out = J[i], output[i]
            # exponential integration over the full step; the factor is a
            # float64 scalar, as in the reference (numpy's expm1, not
            # math's: the two can differ in the last bit)
            subtract(current, voltage, dv)
            multiply(dv, c_minus_factor, dv)
            add(voltage, dv, voltage)
            if floor:
                maximum(voltage, c_min_voltage, out=voltage)

            subtract(refractory_time, c_dt, refractory_time)
            greater(refractory_time, c_zero, refractory)
            ref = refractory.nonzero()[0]  # refractory is 1-D
            if ref.size:
                # linear approximation of a partial step: scale the voltage
                # by the fraction of the step spent out of the refractory
                # period (the fraction is 1, a no-op, for the other neurons)
                scale = refractory_time[ref]
                divide(scale, c_dt, scale)
                subtract(c_one, scale, scale)
                maximum(scale, c_zero, out=scale)
                minimum(scale, c_one, out=scale)
                voltage[ref] *= scale

            greater(voltage, c_one, spiked)

            idx = spiked.nonzero()[0]  # spiked is 1-D
            if not output_is_zero:
                out.fill(0.0)
            if idx.size:
                out[idx] = spike_value
                # spike time inside the step by linear interpolation of the
                # voltage: the overshoot (v - 1) / dv is the fraction of the
                # step after the threshold crossing
                t_spike = voltage[idx]
                subtract(t_spike, c_one, t_spike)
                t_spike = t_spike / dv[idx]
                subtract(c_one, t_spike, t_spike)
                multiply(t_spike, c_dt_f64, t_spike)
                add(t_spike, c_tau_ref_f64, t_spike)
                refractory_time[idx] = t_spike
                voltage[idx] = 0.0


# ---------------------------------------------------------------------------
# registry

NEURON_TYPES: dict[str, type[LIFRate]] = {
    "softlif": SoftLIFRate,
    "lifrate": LIFRate,
    "lif": LIF,
    "fastlif": FastLIF,
}


def make_neuron_type(
    name: str,
    *,
    tau_rc: float = 0.02,
    tau_ref: float = 0.002,
    amplitude: float = 1.0,
    sigma: float = 1.0,
    min_voltage: float = 0.0,
) -> LIFRate:
    """Build a neuron model by name.

    Parameters
    ----------
    name : str
        One of the keys of :data:`NEURON_TYPES` (case-insensitive).
    tau_rc, tau_ref : float, optional
        Time constants in seconds.
    amplitude : float, optional
        Output scale.
    sigma : float, optional
        Smoothing of ``softlif``; ignored by the other models.
    min_voltage : float, optional
        Voltage floor of ``lif`` and ``fastlif``; ignored by rate models.

    Returns
    -------
    LIFRate
        An instance of the named class.

    Raises
    ------
    ParameterError
        Naming ``model`` for an unknown name, or the offending parameter.
    """
    key = str(name).strip().lower()
    try:
        cls = NEURON_TYPES[key]
    except KeyError:
        raise ParameterError(
            "model",
            f"unknown neuron model {name!r}; expected one of "
            + ", ".join(NEURON_TYPES),
        ) from None
    kwargs: dict[str, float] = {
        "tau_rc": tau_rc,
        "tau_ref": tau_ref,
        "amplitude": amplitude,
    }
    if issubclass(cls, SoftLIFRate):
        kwargs["sigma"] = sigma
    if issubclass(cls, LIF):
        kwargs["min_voltage"] = min_voltage
    return cls(**kwargs)
