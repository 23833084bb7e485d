"""Streaming rate estimation: spike trains in, a rate matrix out, in time chunks.

A recording of any length flows through here in blocks of time steps: events
are binned (or dense rows read) one chunk at a time, the estimator carries its
state across chunk edges, and every finished block of rates is appended to a
writer. Peak memory is a few arrays of ``chunk x n_units`` values plus the
spike times, whatever the recording's length. The whole-array estimators
(:func:`spikerates.estimators.rates_kernel`,
:func:`spikerates.estimators.rates_isi`) run the same filter and interpolator,
so streamed and in-memory results agree to rounding.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from spikerates.errors import ParameterError
from spikerates.estimators import IsiRates, KernelFilter, validate_grid
from spikerates.spiketrains import (
    DenseSpikes,
    Grid,
    SpikeTrains,
    bin_index,
    count_outside,
    snap_to_grid,
)

__all__ = ["MAX_CHUNK_VALUES", "estimate_rates"]

#: Upper bound on the values (rows x units) of one chunk: 2**20 float64 values
#: are 8 MiB, so the few chunk-sized temporaries stay small even for hundreds
#: of units; larger chunks were measured to be no faster.
MAX_CHUNK_VALUES = 1 << 20

METHODS = ("kernel", "isi")

# Spikes binned together, on average, by the events path (a few arrays of
# this many values).
_BATCH_SPIKES = 1 << 16


class MatrixWriter(Protocol):
    """What :func:`estimate_rates` needs from a writer (see ``spikerates.io``)."""

    def append(self, t_chunk: np.ndarray, values: np.ndarray) -> None: ...


WriterFactory = Callable[
    [int, np.ndarray, dict[str, Any]], AbstractContextManager[MatrixWriter]
]


def estimate_rates(
    source: SpikeTrains | DenseSpikes,
    writer_factory: WriterFactory,
    *,
    method: str = "kernel",
    kind: str = "gauss",
    tau: float = 0.04,
    normalize: bool = False,
    causal: bool = False,
    border_correction: bool = False,
    midpoint: bool = False,
    interp: str = "zero",
    dt: float | None = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    chunk_duration: float = 60.0,
    dtype: np.dtype | type | str = np.float64,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Estimate firing rates chunk by chunk and stream them to a writer.

    Parameters
    ----------
    source : SpikeTrains or DenseSpikes
        Spike times per unit, or a dense (possibly lazily read HDF5) matrix.
    writer_factory : callable
        ``writer_factory(n_rows, unit_ids, attrs)`` returning a context
        manager whose value has ``append(t_chunk (L,), values (L, N))``, e.g.
        a ``functools.partial`` of :func:`spikerates.io.open_matrix_writer`.
        ``attrs`` names the estimator, its parameters, ``dt``, the units
        (``"Hz"``) and the source.
    method : {"kernel", "isi"}
        Kernel smoothing or inverse inter-spike intervals.
    kind, tau, normalize, causal, border_correction
        Kernel estimator parameters (``tau`` in seconds); see
        :class:`spikerates.estimators.KernelFilter`.
    midpoint, interp
        ISI estimator parameters; see :class:`spikerates.estimators.IsiRates`.
    dt : float, optional
        Bin width in seconds. Required for spike-time input; for dense input
        it must agree with the spacing of ``t`` (rtol 1e-6).
    t_start, t_stop : float, optional
        Time window in seconds: the grid is ``t_start + (k + 1) * dt`` up to
        the last grid time ``t_stop``. Defaults follow the grid rule of the
        specification for events, and the whole ``t`` for dense input.
        Spikes outside the window are left out and counted.
    chunk_duration : float
        Longest stretch of time, in seconds, processed at once. Chunks are
        also kept below :data:`MAX_CHUNK_VALUES` values so memory stays
        bounded for many units.
    dtype : {float64, float32}
        Data type of the written rates; the computation is float64.
    progress : callable, optional
        Called with the number of time steps completed by each chunk (an
        increment, as ``tqdm.update`` expects); the increments add up to
        ``n_steps``.

    Returns
    -------
    dict
        ``n_steps``, ``n_units``, ``dt`` (s), ``t_start`` (s, the time
        before the first grid time), ``t_stop`` (s, the last grid time) and
        ``n_outside`` (spikes left out by the window).
    """
    if method not in METHODS:
        raise ParameterError("method", f"must be one of {METHODS}, got {method!r}")
    if not np.isfinite(chunk_duration) or chunk_duration <= 0:
        raise ParameterError(
            "chunk_duration", f"must be > 0 seconds, got {chunk_duration}"
        )
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError("dtype", f"must be float32 or float64, got {out_dtype}")

    if isinstance(source, DenseSpikes):
        plan = _DensePlan(source, dt=dt, t_start=t_start, t_stop=t_stop)
    elif isinstance(source, SpikeTrains):
        plan = _EventsPlan(source, dt=dt, t_start=t_start, t_stop=t_stop)
    else:
        raise TypeError(
            f"source must be SpikeTrains or DenseSpikes, got {type(source).__name__}"
        )

    n_steps, n_units = plan.n_steps, plan.n_units
    chunk_steps = _chunk_steps(chunk_duration, plan.dt, n_units)
    attrs = _attrs(
        source,
        plan,
        method=method,
        kind=kind,
        tau=tau,
        normalize=normalize,
        causal=causal,
        border_correction=border_correction,
        midpoint=midpoint,
        interp=interp,
    )
    if n_steps < (1 if method == "kernel" else 2):
        raise ParameterError(
            "t_stop",
            f"the time window holds {n_steps} steps of {plan.dt:g} s; "
            f"{method} rates need at least {1 if method == 'kernel' else 2} "
            "(give t_start/t_stop when the input has no spikes)",
        )
    # The estimator is built before the writer, so bad parameters leave no file.
    if method == "kernel":
        rate_filter = KernelFilter(
            kind,
            tau,
            plan.dt,
            n_units,
            normalize=normalize,
            causal=causal,
            border_correction=border_correction,
        )
        blocks = _kernel_rows(rate_filter, plan, chunk_steps)
    else:
        times, counts = plan.spike_times_on_grid(chunk_steps)
        isi = IsiRates._from_sorted(
            times, counts, plan.first_time, plan.last_time, midpoint, interp
        )
        del times  # the estimator holds its own points
        blocks = _isi_rows(isi, plan, chunk_steps)
    n_written = 0
    with (
        writer_factory(n_steps, plan.unit_ids, attrs) as writer,
        _WriteBehind(writer) as behind,
    ):
        for rows, n_done in blocks:
            n = rows.shape[0]
            if n:
                t_rows = plan.times(n_written, n_written + n)
                behind.append(t_rows, rows.astype(out_dtype, copy=False))
                n_written += n
            if progress is not None and n_done:
                progress(n_done)
    if n_written != n_steps:
        raise RuntimeError(
            f"the rate estimator produced {n_written} rows for {n_steps} steps"
        )

    return {
        "n_steps": n_steps,
        "n_units": n_units,
        "dt": plan.dt,
        "t_start": plan.t_start,
        "t_stop": plan.t_stop,
        "n_outside": plan.n_outside,
    }


def _kernel_rows(rate_filter, plan, chunk_steps: int):
    """Yield ``(final rate rows, input steps consumed)`` chunk by chunk.

    Events go to the filter as the spikes of each chunk, never as a dense
    chunk; dense input goes as it is read.
    """
    if isinstance(plan, _EventsPlan):
        amplitude = 1.0 / plan.dt
        for k0, k1, rows, units in plan.spike_chunks(chunk_steps):
            yield rate_filter.process_spikes(k1 - k0, rows, units, amplitude), k1 - k0
    else:
        for k0, k1, chunk in plan.amplitude_chunks(chunk_steps):
            yield rate_filter.process(chunk), k1 - k0
    yield np.asarray(rate_filter.finish()), 0


def _isi_rows(isi, plan, chunk_steps: int):
    """Yield ``(rate rows, steps)`` of the ISI estimator chunk by chunk."""
    for k0 in range(0, plan.n_steps, chunk_steps):
        k1 = min(k0 + chunk_steps, plan.n_steps)
        yield isi.evaluate(plan.times(k0, k1)), k1 - k0


class _WriteBehind:
    """Append rows to a writer from a background thread, one chunk behind.

    Writing a large output is mostly copying into the file system, during
    which other Python threads keep running (h5py lets go of the GIL), so the
    next chunk is computed meanwhile on another core. The
    queue holds one chunk, which bounds the extra memory to two chunks. An
    error in the writer is raised in the caller at its next append or on
    exit.
    """

    def __init__(self, writer: MatrixWriter) -> None:
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="spikerates-writer", daemon=True
        )

    def __enter__(self) -> _WriteBehind:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            # After a failure keep draining, so the producer never blocks.
            if self._error is None:
                try:
                    self._writer.append(*item)
                except BaseException as exc:  # re-raised in the caller
                    self._error = exc

    def append(self, t_chunk: np.ndarray, values: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((t_chunk, values))

    def __exit__(self, exc_type, exc, tb) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


def _chunk_steps(chunk_duration: float, dt: float, n_units: int) -> int:
    """Time steps per chunk: ``chunk_duration`` capped by the value budget."""
    steps = max(1, int(round(chunk_duration / dt)))
    return max(1, min(steps, MAX_CHUNK_VALUES // max(1, n_units)))


def _attrs(
    source,
    plan,
    *,
    method,
    kind,
    tau,
    normalize,
    causal,
    border_correction,
    midpoint,
    interp,
):
    """Output attributes: estimator, its parameters, units and provenance."""
    attrs: dict[str, Any] = {"estimator": method}
    if method == "kernel":
        attrs.update(
            kind=kind,
            tau=float(tau),
            normalize=normalize,
            causal=causal,
            border_correction=border_correction,
        )
    else:
        attrs.update(midpoint=midpoint, interp=interp)
    attrs.update(
        dt=float(plan.dt),
        t_start=float(plan.t_start),
        t_stop=float(plan.t_stop),
        units="Hz",
        source=source.source or "",
    )
    return attrs


class _EventsPlan:
    """Spike times per unit put on a grid (SPEC section 4), read by chunks."""

    def __init__(
        self,
        trains: SpikeTrains,
        *,
        dt: float | None,
        t_start: float | None,
        t_stop: float | None,
    ) -> None:
        if dt is None:
            raise ParameterError(
                "dt", "a bin width in seconds is required to put spike times on a grid"
            )
        if not np.isfinite(dt) or dt <= 0:
            raise ParameterError("dt", f"must be > 0 seconds, got {dt}")
        self.trains = trains
        self.spike_times = [np.asarray(s, dtype=np.float64) for s in trains.spike_times]
        self.grid: Grid = trains.grid(dt, t_start=t_start, t_stop=t_stop)
        self.dt = float(self.grid.dt)
        self.n_steps = int(self.grid.n_steps)
        self.n_units = len(self.spike_times)
        self.unit_ids = np.asarray(trains.unit_ids)
        self.t_start = float(self.grid.t_start)
        self.t_stop = float(self.grid.t_stop)
        self.n_outside = int(count_outside(self.spike_times, self.grid))

    @property
    def first_time(self) -> float:
        return float(self.grid.times(0, 1)[0])

    @property
    def last_time(self) -> float:
        return float(self.grid.times(self.n_steps - 1, self.n_steps)[0])

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.grid.times(k0, k1)

    def spike_chunks(
        self, chunk_steps: int
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield ``(k0, k1, rows, units)``: the spikes of bins ``[k0, k1)``.

        ``rows`` are bins counted from ``k0``, ordered by unit then bin; two
        spikes in one bin are two entries. The bins are those of
        :func:`~spikerates.spiketrains.bin_spikes`. Several chunks (about
        :data:`_BATCH_SPIKES` spikes) are binned in one vectorised pass, and
        each chunk's spikes are gathered from it by one binary search for
        all units, so the work per chunk does not grow with the units.
        """
        n_units, n_steps = self.n_units, self.n_steps
        starts = range(0, n_steps, chunk_steps)
        n_spikes = sum(times.size for times in self.spike_times)
        per_batch = _BATCH_SPIKES * n_steps // max(1, chunk_steps * n_spikes)
        per_batch = int(min(max(per_batch, 1), len(starts)))
        # Slices are half a step wider than the bins so that bin_index, the
        # binning rule itself, decides the edge cases.
        margin = 0.5 * self.dt
        unit_numbers = np.arange(n_units)
        for b0 in range(0, len(starts), per_batch):
            edges = np.append(
                np.asarray(starts[b0 : b0 + per_batch], dtype=np.int64),
                min(starts[b0] + per_batch * chunk_steps, n_steps),
            )
            first, last = int(edges[0]), int(edges[-1])
            t_lo = self.t_start + first * self.dt - margin
            t_hi = self.t_start + last * self.dt + margin
            pieces = [
                times[
                    np.searchsorted(times, t_lo, side="right") : np.searchsorted(
                        times, t_hi, side="right"
                    )
                ]
                for times in self.spike_times
            ]
            sizes = [piece.size for piece in pieces]
            flat = np.concatenate(pieces) if pieces else np.zeros(0)
            k = bin_index(flat, self.grid.t_start, self.dt)
            inside = (k >= first) & (k < last)
            bins = k[inside].astype(np.int64) - first
            units = np.repeat(unit_numbers, sizes)[inside]
            # Ordered by unit then bin: one search finds every unit's spikes
            # in every chunk of the batch.
            width = last - first
            bounds = np.searchsorted(
                units * width + bins,
                (unit_numbers[:, None] * width + (edges - first)).reshape(-1),
            ).reshape(n_units, edges.size)
            for c in range(edges.size - 1):
                k0, k1 = int(edges[c]), int(edges[c + 1])
                lo, hi = bounds[:, c], bounds[:, c + 1]
                counts = hi - lo
                offsets = np.cumsum(counts) - counts
                index = np.arange(int(counts.sum()))
                index += np.repeat(lo - offsets, counts)
                yield k0, k1, bins[index] - (k0 - first), units[index]

    def spike_times_on_grid(self, chunk_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The grid times of the occupied bins of each unit, and their counts.

        Times are concatenated unit after unit, ascending and each once within
        a unit; spikes outside the window are left out. The events are in
        memory already, so ``chunk_steps`` is not needed.
        """
        snapped = snap_to_grid(self.spike_times, self.grid)
        counts = np.array([times.size for times in snapped], dtype=np.intp)
        times = np.concatenate(snapped) if snapped else np.zeros(0)
        return times.astype(np.float64, copy=False), counts


class _DensePlan:
    """A dense spike matrix (in memory or lazily read), read by row blocks."""

    def __init__(
        self,
        dense: DenseSpikes,
        *,
        dt: float | None,
        t_start: float | None,
        t_stop: float | None,
    ) -> None:
        self.dense = dense
        t_all = np.asarray(dense.t, dtype=np.float64)
        self.dt = float(validate_grid(t_all))
        if dt is not None and not np.isclose(dt, self.dt, rtol=1e-6, atol=0):
            raise ParameterError(
                "dt",
                f"{dt} s does not match the {self.dt} s spacing of the dense t "
                f"of {dense.source or 'the input'}",
            )
        # A window selects the rows whose time t satisfies t_start < t <= t_stop,
        # the same rows a grid from t_start to t_stop would hold.
        tol = 1e-9 * self.dt
        self.k_first = 0
        self.k_end = len(t_all)
        if t_start is not None:
            self.k_first = int(np.searchsorted(t_all, t_start + tol, side="right"))
        if t_stop is not None:
            self.k_end = int(np.searchsorted(t_all, t_stop + tol, side="right"))
        if self.k_end - self.k_first < 1:
            raise ParameterError(
                "t_start/t_stop",
                f"the window ({t_start}, {t_stop}] holds no time step of the input "
                f"({t_all[0]} .. {t_all[-1]} s)",
            )
        self.t = t_all[self.k_first : self.k_end]
        self.n_steps = len(self.t)
        self.n_units = int(dense.n_units)
        self.unit_ids = np.asarray(dense.unit_ids)
        self.t_start = float(self.t[0] - self.dt)
        self.t_stop = float(self.t[-1])
        self.first_time = float(self.t[0])
        self.last_time = float(self.t[-1])
        self.n_outside = self._count_outside(len(t_all))

    def _count_outside(self, n_all: int) -> int:
        """Spikes in the rows cut off by the window (read once, by chunks)."""
        step = max(1, MAX_CHUNK_VALUES // max(1, self.n_units))
        n = 0
        for a, b in ((0, self.k_first), (self.k_end, n_all)):
            for k0 in range(a, b, step):
                k1 = min(k0 + step, b)
                amplitude = self.dense.amplitude_chunk(k0, k1)
                n += int(np.rint(np.asarray(amplitude) * self.dt).sum())
        return n

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t[k0:k1]

    def amplitude_chunks(
        self, chunk_steps: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(k0, k1, amplitude)`` (in 1/dt units) for chunks of rows."""
        for k0 in range(0, self.n_steps, chunk_steps):
            k1 = min(k0 + chunk_steps, self.n_steps)
            amplitude = self.dense.amplitude_chunk(self.k_first + k0, self.k_first + k1)
            yield k0, k1, np.asarray(amplitude, dtype=np.float64)

    def spike_times_on_grid(self, chunk_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Times of the non-zero rows of each unit, and their counts.

        Times are concatenated unit after unit, ascending; one pass over the
        rows by chunks.
        """
        pieces: list[list[np.ndarray]] = [[] for _ in range(self.n_units)]
        for k0, _, amplitude in self.amplitude_chunks(chunk_steps):
            # Non-zeros of the transposed chunk come out grouped by unit, in time
            # order within each unit.
            units, rows = np.nonzero(amplitude.T)
            bounds = np.searchsorted(units, np.arange(self.n_units + 1))
            for j in range(self.n_units):
                if bounds[j + 1] > bounds[j]:
                    pieces[j].append(self.t[k0 + rows[bounds[j] : bounds[j + 1]]])
        counts = np.array([sum(p.size for p in unit) for unit in pieces], np.intp)
        flat = [p for unit in pieces for p in unit]
        del pieces
        times = np.concatenate(flat) if flat else np.zeros(0)
        return times, counts
