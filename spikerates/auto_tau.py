"""Kernel rates with the Gaussian bandwidth chosen from the data.

:func:`choose_taus` gives each unit the ``tau`` of the rate commands' gauss
kernel (twice the standard deviation) that minimises Shimazaki &
Shinomoto's cost over the rate grid's window (:mod:`spikerates.bandwidth`),
or one ``tau`` for all units superimposed. :func:`estimate_rates_per_unit`
streams kernel rates whose ``tau`` differs between units: one plan of the
rate driver per unit, run side by side and merged into chunks of all units
in time order, so memory stays bounded as for one ``tau``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from spikerates.errors import ParameterError
from spikerates.spiketrains import SpikeTrains

__all__ = ["choose_taus", "estimate_rates_per_unit", "iter_rates_per_unit"]


def choose_taus(
    trains: SpikeTrains,
    dt: float,
    t_start: float | None = None,
    t_stop: float | None = None,
    *,
    pool: bool = False,
) -> np.ndarray:
    """The gauss ``tau`` of every unit, from its optimal bandwidth.

    Parameters
    ----------
    trains : SpikeTrains
    dt : float
        Step of the rate grid in seconds (the finest resolution of the
        search).
    t_start, t_stop : float, optional
        Window of the grid (:meth:`SpikeTrains.grid`'s defaults); spikes in
        it choose the bandwidth.
    pool : bool
        One ``tau`` for all units superimposed.

    Returns
    -------
    ndarray, shape (N,)
        ``tau = 2 sigma`` in seconds. A unit with fewer than two spikes in
        the window takes the pooled value.

    Raises
    ------
    ParameterError
        When not even the pooled spikes allow a choice (fewer than two).
    """
    from spikerates.bandwidth import optimal_bandwidths

    grid = trains.grid(dt, t_start, t_stop)
    lo, hi = grid.t_start, grid.t_stop
    pooled = optimal_bandwidths(trains.spike_times, lo, hi, dt=grid.dt, pool=True)
    pooled_sigma = float(pooled[0]) if pooled.size else np.nan
    if pool:
        sigma = np.full(trains.n_units, pooled_sigma)
    else:
        sigma = optimal_bandwidths(trains.spike_times, lo, hi, dt=grid.dt)
        sigma = np.where(np.isfinite(sigma), sigma, pooled_sigma)
    if trains.n_units and not np.all(np.isfinite(sigma)):
        raise ParameterError(
            "tau", "auto needs at least two spikes in the window to choose a bandwidth"
        )
    return 2.0 * sigma


def iter_rates_per_unit(
    trains: SpikeTrains,
    taus: np.ndarray,
    *,
    dt: float,
    t_start: float | None = None,
    t_stop: float | None = None,
    chunk_duration: float = 60.0,
    **kernel: Any,
) -> tuple[Any, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """Kernel rates with one ``tau`` per unit, chunk by chunk.

    Parameters
    ----------
    trains : SpikeTrains
    taus : ndarray, shape (N,)
        Kernel time constant of each unit, seconds.
    dt, t_start, t_stop, chunk_duration
        As in :func:`spikerates.driver.plan_rates`; all units share one grid.
    **kernel
        ``kind``, ``normalize``, ``causal``, ``border_correction``.

    Returns
    -------
    plan : RatePlan
        The plan of the first unit with the grid of all (for ``n_steps``,
        ``dt``, ``t_start``, ``t_stop``, ``n_outside`` of that unit).
    chunks : iterator of (t_chunk (L,), rates_chunk (L, N))
        In time order, covering the grid.
    """
    from spikerates.driver import plan_rates

    taus = np.asarray(taus, dtype=np.float64).reshape(-1)
    if taus.size != trains.n_units:
        raise ParameterError("tau", f"{taus.size} values for {trains.n_units} units")
    grid = trains.grid(dt, t_start, t_stop)
    plans = [
        plan_rates(
            trains.select_units([uid]),
            "kernel",
            tau=float(tau),
            dt=grid.dt,
            t_start=grid.t_start,
            t_stop=grid.t_stop,
            chunk_duration=chunk_duration,
            **kernel,
        )
        for uid, tau in zip(trains.unit_ids.tolist(), taus, strict=True)
    ]
    return plans[0] if plans else None, _merged(plans, grid)


def _merged(plans: list, grid: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows of every plan side by side, as soon as all have produced them."""
    if not plans:
        if grid.n_steps:
            yield grid.times(), np.zeros((grid.n_steps, 0))
        return
    streams = [plan.chunks() for plan in plans]
    pending: list[list[np.ndarray]] = [[] for _ in plans]
    held = np.zeros(len(plans), dtype=np.int64)
    done = 0
    while done < grid.n_steps:
        for i, stream in enumerate(streams):
            # Feed each unit until it has rows beyond what is merged so far.
            while held[i] <= 0:
                try:
                    _, rows = next(stream)
                except StopIteration:
                    break
                pending[i].append(rows[:, 0])
                held[i] += rows.shape[0]
        ready = int(held.min())
        if ready <= 0:
            raise RuntimeError("a unit's rate plan stopped before the end of the grid")
        out = np.empty((ready, len(plans)))
        for i in range(len(plans)):
            column = np.concatenate(pending[i])
            out[:, i] = column[:ready]
            pending[i] = [column[ready:]]
            held[i] -= ready
        yield grid.times(done, done + ready), out
        done += ready


def estimate_rates_per_unit(
    trains: SpikeTrains,
    writer_factory: Callable[..., Any],
    taus: np.ndarray,
    *,
    dt: float,
    t_start: float | None = None,
    t_stop: float | None = None,
    chunk_duration: float = 60.0,
    dtype: Any = np.float64,
    progress: Callable[[int], Any] | None = None,
    **kernel: Any,
) -> dict[str, Any]:
    """Stream kernel rates with one ``tau`` per unit to a writer.

    Same contract as :func:`spikerates.pipeline.estimate_rates` (the writer
    factory gets ``n_rows``, ``unit_ids`` and ``attrs``; ``attrs["tau"]`` is
    the per-unit array); returns the same summary.
    """
    out_dtype = np.dtype(dtype)
    plan, chunks = iter_rates_per_unit(
        trains,
        taus,
        dt=dt,
        t_start=t_start,
        t_stop=t_stop,
        chunk_duration=chunk_duration,
        **kernel,
    )
    grid = trains.grid(dt, t_start, t_stop)
    attrs = dict(plan.attrs) if plan is not None else {}
    attrs.update(tau=np.asarray(taus, dtype=np.float64), source=trains.source or "")
    n_written = 0
    with writer_factory(grid.n_steps, trains.unit_ids, attrs) as writer:
        for t_rows, rows in chunks:
            writer.append(t_rows, rows.astype(out_dtype, copy=False))
            n_written += rows.shape[0]
            if progress is not None:
                progress(rows.shape[0])
    from spikerates.spiketrains import count_outside

    return {
        "n_steps": grid.n_steps,
        "n_units": trains.n_units,
        "dt": grid.dt,
        "t_start": grid.t_start,
        "t_stop": grid.t_stop,
        "n_outside": count_outside(trains.spike_times, grid),
        "notes": [],
    }
