"""Binned spike counts on the grid, streamed chunk by chunk.

The counts of spike times use the data model's grid and binning rule
(:mod:`spikerates.spiketrains`): bin ``k`` holds the spikes with ``t[k] - dt <
s <= t[k]``. A dense input already is counts on its own grid. Either way the
output is produced in chunks of grid rows, so memory does not grow with the
recording's length. Where a unit is not observed (a grid time outside all of
its observation intervals) its value is NaN.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from spikerates.errors import ParameterError
from spikerates.spiketrains import DenseSpikes, Grid, SpikeTrains, bin_spikes

__all__ = ["CountPlan", "plan_counts"]

#: Values (rows x units) of one chunk.
CHUNK_VALUES = 1 << 20

#: Output modes: spikes per bin, or spikes per bin over dt (Hz).
COUNT_MODES = ("counts", "rate")


@dataclass
class CountPlan:
    """Counts of a source on a fixed grid; :meth:`chunks` produces them.

    Attributes
    ----------
    grid : Grid
        The output grid (``t[k] = t_start + (k + 1) dt``).
    unit_ids : ndarray, shape (N,)
    mode : {"counts", "rate"}
    n_outside : int
        Spikes outside the grid, left out.
    """

    grid: Grid
    unit_ids: np.ndarray
    mode: str
    n_outside: int
    _source: Any
    _k_first: int = 0

    @property
    def n_steps(self) -> int:
        return self.grid.n_steps

    @property
    def n_units(self) -> int:
        return int(self.unit_ids.size)

    @property
    def dtype(self) -> np.dtype:
        """int64 counts without observation intervals, else float64 (NaN
        where unobserved); float64 for rates."""
        masked = isinstance(self._source, SpikeTrains) and (
            self._source.obs_intervals is not None
        )
        if self.mode == "counts" and not masked:
            return np.dtype(np.int64)
        return np.dtype(np.float64)

    def output_bytes(self) -> int:
        """Size of the output values in bytes."""
        return self.n_steps * self.n_units * self.dtype.itemsize

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            "estimator": "count",
            "values": self.mode,
            "dt": self.grid.dt,
            "t_start": self.grid.t_start,
            "t_stop": self.grid.t_stop,
            "units": "spikes per bin" if self.mode == "counts" else "Hz",
        }

    def chunks(
        self, chunk_steps: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(t_chunk, values_chunk)`` in time order, covering the grid.

        ``t_chunk`` has shape (L,) in seconds and ``values_chunk`` (L, N) of
        :attr:`dtype`.
        """
        if chunk_steps is None:
            chunk_steps = max(1, CHUNK_VALUES // max(1, self.n_units))
        grid, dtype = self.grid, self.dtype
        for k0 in range(0, grid.n_steps, chunk_steps):
            k1 = min(k0 + chunk_steps, grid.n_steps)
            t = grid.times(k0, k1)
            if isinstance(self._source, DenseSpikes):
                counts = self._source.counts_chunk(
                    self._k_first + k0, self._k_first + k1
                )
            else:
                counts = bin_spikes(self._source.spike_times, grid, k0, k1)
            values = counts.astype(dtype)
            if self.mode == "rate":
                values /= grid.dt
            if isinstance(self._source, SpikeTrains) and self._source.obs_intervals:
                for u, iv in enumerate(self._source.obs_intervals):
                    j = np.searchsorted(iv[:, 0], t, side="right") - 1
                    seen = (j >= 0) & (t <= iv[np.maximum(j, 0), 1])
                    values[~seen, u] = np.nan
            yield t, values


def plan_counts(
    source: SpikeTrains | DenseSpikes,
    *,
    dt: float | None = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    mode: str = "counts",
) -> CountPlan:
    """Plan the binned counts of ``source``.

    Parameters
    ----------
    source : SpikeTrains or DenseSpikes
    dt : float, optional
        Bin width in seconds; required for spike times, and must agree with
        a dense input's grid.
    t_start, t_stop : float, optional
        Window (the grid's defaults of :meth:`SpikeTrains.grid`; for dense
        input, the rows with ``t_start < t <= t_stop``).
    mode : {"counts", "rate"}
        Spikes per bin, or spikes per bin over ``dt`` in Hz.

    Returns
    -------
    CountPlan
    """
    if mode not in COUNT_MODES:
        raise ParameterError(
            "as", f"must be one of {', '.join(COUNT_MODES)}, got {mode!r}"
        )
    if isinstance(source, DenseSpikes):
        if dt is not None and not np.isclose(dt, source.dt, rtol=1e-6, atol=0):
            raise ParameterError(
                "dt", f"{dt:g} s does not match the {source.dt:g} s step of the dense t"
            )
        t = np.asarray(source.t, dtype=np.float64)
        tol = 1e-9 * source.dt
        k_first = (
            0 if t_start is None else int(np.searchsorted(t, t_start + tol, "right"))
        )
        k_end = (
            t.size if t_stop is None else int(np.searchsorted(t, t_stop + tol, "right"))
        )
        if k_end <= k_first:
            raise ParameterError(
                "t_start/t_stop", "the window holds no time step of the input"
            )
        grid = Grid(float(t[k_first] - source.dt), source.dt, k_end - k_first)
        outside = 0
        for a, b in ((0, k_first), (k_end, t.size)):
            step = max(1, CHUNK_VALUES // max(1, source.n_units))
            for k0 in range(a, b, step):
                outside += int(source.counts_chunk(k0, min(k0 + step, b)).sum())
        return CountPlan(
            grid, np.asarray(source.unit_ids), mode, outside, source, k_first
        )
    if dt is None:
        raise ParameterError(
            "dt", "a bin width in seconds is required to count spike times"
        )
    grid = source.grid(dt, t_start, t_stop)
    from spikerates.spiketrains import count_outside

    outside = count_outside(source.spike_times, grid)
    return CountPlan(grid, np.asarray(source.unit_ids), mode, outside, source)
