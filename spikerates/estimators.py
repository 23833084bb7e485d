"""Firing-rate estimators on arrays: spike events, kernel rates and ISI rates.

Conventions (those of the reference toolbox):

- ``t`` is a uniform time grid in seconds, shape (M,).
- ``spikes`` is an (M, N) array, one row per time step and one column per
  unit; a non-zero value is a spike.  For rates in Hz a spike has the value
  ``1 / dt`` (a bin with count ``c`` may equally hold ``c / dt``).
- Rates come out as (M, N) float64 arrays in Hz, whatever the input dtype.

This module is the public face of the estimators: kernel rates are computed
by :class:`KernelFilter` (:mod:`spikerates.kernels`, on the FIR engine of
:mod:`spikerates.fir`) and ISI rates by :class:`IsiRates`
(:mod:`spikerates.isi`), both run chunk by chunk by the rate driver
(:mod:`spikerates.driver`).  Both agree with the reference implementation to
rounding error and give exact zeros wherever the reference does.  For spike
trains, dense files or windows, see :func:`spikerates.driver.compute_rates`.
"""

from __future__ import annotations

import numpy as np

from spikerates.driver import plan_rates
from spikerates.errors import ParameterError
from spikerates.fir import check_finite
from spikerates.isi import ISI_INTERP_KINDS, IsiRates
from spikerates.kernels import KERNEL_KINDS, KERNEL_METHODS, KernelFilter
from spikerates.spiketrains import check_grid, dense_to_events

__all__ = [
    "ISI_INTERP_KINDS",
    "KERNEL_KINDS",
    "KERNEL_METHODS",
    "IsiRates",
    "KernelFilter",
    "rates_isi",
    "rates_kernel",
    "spikes2events",
    "validate_grid",
]


def validate_grid(t) -> float:
    """Check that ``t`` is a uniform time grid and return its step.

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds, increasing with a constant step (the rule of
        :func:`spikerates.spiketrains.check_grid`), at least 2 of them.

    Returns
    -------
    dt : float
        The step in seconds, ``t[1] - t[0]`` computed in float64 (the value
        the reference uses to convert ``tau`` into steps).

    Raises
    ------
    ParameterError
        If ``t`` is not 1-D, has fewer than 2 points, holds NaN or infinite
        values, is not increasing, or is not uniform.
    """
    t64, _ = check_grid(t)
    return float(t64[1] - t64[0])


def spikes2events(t, spikes) -> list[np.ndarray]:
    """Return the spike times of each unit.

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds at which ``spikes`` is defined.
    spikes : (N, M) array_like
        Spike data whose **last axis is time** (the transpose of the (M, N)
        layout used by the rate estimators); a non-zero value is a spike.  A
        1-D array is one unit.

    Returns
    -------
    list of N ndarrays
        The times (float64 seconds, ascending) of the non-zero entries of
        each unit.  Spike values are ignored: a bin with a count of 2 gives
        one time.

    Raises
    ------
    ValueError
        If the shapes disagree or either array holds NaN or infinite values.
    """
    t = np.asarray(t)
    if t.ndim != 1 or t.dtype.kind not in "iuf":
        raise ParameterError("t", f"must be a 1-D array of times, got {t.shape}")
    t = t.astype(np.float64, copy=False)
    if not np.isfinite(t).all():
        raise ParameterError("t", "holds NaN or infinite values")
    spikes = np.asarray(spikes)
    if spikes.dtype.kind not in "biuf":
        raise ParameterError(
            "spikes", f"must hold real numbers, got dtype {spikes.dtype}"
        )
    if spikes.ndim == 1:
        spikes = spikes[None, :]
    if spikes.ndim != 2:
        raise ParameterError(
            "spikes", f"must be an (N, M) array, got {spikes.ndim} dimensions"
        )
    if spikes.shape[-1] != t.size:
        raise ParameterError(
            "spikes",
            f"the last axis has length {spikes.shape[-1]} but t has {t.size}; "
            "spikes2events expects (N, M), time last",
        )
    check_finite(spikes)
    if spikes.shape[0] == 0:
        return []
    trains = dense_to_events([(t, spikes.T)], per_bin=True)
    return trains.spike_times


def rates_kernel(
    t,
    spikes,
    kind: str = "gauss",
    tau: float = 0.04,
    *,
    normalize: bool = False,
    causal: bool = False,
    border_correction: bool = False,
    chunk_steps: int | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Estimate firing rates by convolving spikes with a kernel.

    Parameters
    ----------
    t : (M,) array_like
        Uniform time grid in seconds (``dt = t[1] - t[0]``).
    spikes : (M, N) array_like
        Spikes, one row per time step; a spike has the value ``1 / dt`` for
        rates in Hz.  A 1-D array is one unit (the result is then (M, 1)).
    kind : {"gauss", "expon", "alpha", "expogauss"}, optional
        Kernel shape, see :class:`KernelFilter`.
    tau : float, optional
        Kernel time constant in seconds (default 0.04).
    normalize, causal, border_correction, method
        See :class:`KernelFilter`.
    chunk_steps : int, optional
        Time steps converted and filtered per chunk (default: about 32 MB of
        float64).  The result does not depend on it.

    Returns
    -------
    rates : (M, N) ndarray of float64
        Rates in Hz.  With the defaults this is the reference's
        ``rates_kernel``: kernels sampled as continuous functions, output
        centred on the spike by the kernel's delay, no border correction.

    Raises
    ------
    ParameterError
        For a non-uniform or too short ``t``, disagreeing shapes, a bad
        ``kind``, ``tau``, ``chunk_steps`` or ``causal`` with a Gaussian
        kernel; ValueError for NaN or infinite spikes.
    """
    plan = plan_rates(
        (t, spikes),
        "kernel",
        kind=kind,
        tau=tau,
        normalize=normalize,
        causal=causal,
        border_correction=border_correction,
        chunk_steps=chunk_steps,
        fir_method=method,
        max_output_bytes=None,
    )
    rates = np.empty((plan.n_steps, plan.n_units))
    for _ in plan.chunks(out=rates):
        pass
    return rates


def rates_isi(t, spikes, midpoint: bool = False, interp: str = "zero") -> np.ndarray:
    """Estimate firing rates from inter-spike intervals.

    Parameters
    ----------
    t : (M,) array_like
        Uniform time grid in seconds.
    spikes : (M, N) array_like
        Spikes, one row per time step; any non-zero value is a spike (the
        value itself is ignored).  A 1-D array is one unit.
    midpoint : bool, optional
        Place each ``1 / ISI`` point at the middle of its interval instead of
        its start.
    interp : str, optional
        Interpolation between the points, one of :data:`ISI_INTERP_KINDS`
        (default ``"zero"``).

    Returns
    -------
    rates : (M, N) ndarray of float64
        Rates in Hz, as the reference's ``rates_isi`` (see :class:`IsiRates`
        for the cases where the reference raises).

    Raises
    ------
    ParameterError
        For a non-uniform or too short ``t``, disagreeing shapes or an
        unknown ``interp``; ValueError for NaN or infinite spikes.
    """
    plan = plan_rates(
        (t, spikes), "isi", midpoint=midpoint, interp=interp, max_output_bytes=None
    )
    rates = np.empty((plan.n_steps, plan.n_units))
    for _ in plan.chunks(out=rates):
        pass
    return rates
