"""The rate driver: one chunk iterator for every estimator and every source.

A rate computation is planned once (:func:`plan_rates`: the source, the time
grid, the estimator and its parameters are checked and the output's size is
known before anything is computed or written), then run chunk by chunk:
:meth:`RatePlan.chunks` yields ``(t_chunk, rates_chunk)`` pairs in time order
that together cover the grid.  Everything that produces rates drains it:

- :func:`compute_rates` collects the chunks into one in-memory result (the
  library's one call from a :class:`~spikerates.spiketrains.SpikeTrains`, a
  :class:`~spikerates.spiketrains.DenseSpikes` or arrays to rates);
- :func:`spikerates.estimators.rates_kernel` and
  :func:`spikerates.estimators.rates_isi` (arrays in the reference's layout);
- :func:`spikerates.pipeline.estimate_rates`, which streams the chunks to a
  writer.

Sources are spike times per unit (put on a grid of step ``dt``, see
:mod:`spikerates.spiketrains`), a dense matrix on its own grid (in memory or
read lazily from a file by row blocks), or a pair ``(t, spikes)`` of arrays,
``spikes`` (M, N) holding ``1 / dt`` per spike as the reference expects.
Peak memory is a few chunks plus the spike times, whatever the length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, ResourceLimitError
from spikerates.isi import IsiRates, check_interp, spike_rows_by_unit
from spikerates.kernels import (
    ExactKernel,
    KernelFilter,
    check_kind,
    composite_kernel,
    kernel_margins,
    kernel_stages,
    truncated_mass,
)
from spikerates.params import Integer, positive_seconds
from spikerates.spiketrains import (
    BATCH_SPIKES,
    SNAP,
    DenseSpikes,
    Grid,
    SpikeTrains,
    check_grid,
    count_outside,
    dense_to_events,
    intersect_intervals,
    iter_spike_chunks,
    snap_to_grid,
)

__all__ = [
    "MAX_CHUNK_VALUES",
    "MAX_OUTPUT_BYTES",
    "METHODS",
    "RatePlan",
    "RateResult",
    "compute_rates",
    "iter_rates",
    "plan_rates",
]

#: Rate estimators.
METHODS = ("kernel", "isi")

#: Default upper bound on the values (rows x units) of one streamed chunk:
#: 2**20 float64 values are 8 MiB, so the few chunk-sized temporaries stay
#: small even for hundreds of units; larger chunks were measured to be no
#: faster.
MAX_CHUNK_VALUES = 1 << 20

#: Default limit on the size of the rates produced, in bytes (4 GiB).
MAX_OUTPUT_BYTES = 4 << 30

# Default chunk of a spike time / dense source, in seconds.
_CHUNK_DURATION = 60.0
# Bytes of float64 input filtered per chunk for arrays given whole.
_ARRAY_CHUNK_BYTES = 1 << 25
# Elements of output built per piece by the ISI estimator on arrays given
# whole (transposed, then copied).
_ISI_PIECE = 1 << 19

_CHUNK_STEPS = Integer("chunk_steps", low=1)


# ------------------------------------------------------------------ sources


def spikes_matrix(spikes, n_steps: int, name: str = "spikes") -> np.ndarray:
    """``spikes`` as an (M, N) real array (1-D means one unit).

    Raises ParameterError naming ``name`` when it is not real, not 1-D or
    2-D, or its rows are not the ``n_steps`` time steps.
    """
    spikes = np.asarray(spikes)
    if spikes.dtype.kind not in "biuf":
        raise ParameterError(name, f"must hold real numbers, got dtype {spikes.dtype}")
    if spikes.ndim == 1:
        spikes = spikes[:, None]
    if spikes.ndim != 2:
        raise ParameterError(
            name,
            "must be an (M, N) array (time steps x units), "
            f"got {spikes.ndim} dimensions",
        )
    if spikes.shape[0] != n_steps:
        raise ParameterError(
            name,
            f"has {spikes.shape[0]} time steps (rows) but t has {n_steps}; "
            "expected shape (M, N) with M = len(t)",
        )
    return spikes


class _ArraySource:
    """``(t, spikes)`` arrays in the reference's layout, used whole."""

    kind = "arrays"

    def __init__(self, t, spikes, dt, t_start, t_stop) -> None:
        if dt is not None or t_start is not None or t_stop is not None:
            raise ParameterError(
                "dt",
                "arrays (t, spikes) carry their own grid: dt, t_start and t_stop "
                "are for spike times (use a DenseSpikes to select a window)",
            )
        t64, _ = check_grid(t)
        self.t = t64
        # The reference converts tau into steps with the first step.
        self.dt = float(t64[1] - t64[0])
        self.spikes = spikes_matrix(spikes, t64.size)
        self.n_steps, self.n_units = self.spikes.shape
        self.unit_ids = np.arange(self.n_units, dtype=np.int64)
        self.t_start = float(t64[0] - self.dt)
        self.t_stop = float(t64[-1])
        self.n_outside = 0
        self.source_name = ""
        self.intervals = None

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t[k0:k1]

    def feed_range(self, before: int, after: int) -> tuple[int, int]:
        return 0, self.n_steps

    def dense_chunks(self, a: int, b: int, chunk_steps: int):
        for k0 in range(a, b, chunk_steps):
            k1 = min(k0 + chunk_steps, b)
            yield k0, k1, self.spikes[k0:k1]

    def isi_estimator(self, midpoint: bool, interp: str, exact: bool, chunk_steps):
        rows, counts = spike_rows_by_unit(self.spikes)
        return IsiRates.from_sorted(
            self.t[rows],
            counts,
            self.t[0],
            self.t[-1],
            midpoint=midpoint,
            interp=interp,
        )


class _DenseSource:
    """A dense matrix (in memory or lazily read); the window selects rows."""

    kind = "dense"

    def __init__(self, dense: DenseSpikes, dt, t_start, t_stop) -> None:
        self.dense = dense
        t_all = np.asarray(dense.t, dtype=np.float64)
        # The reference converts tau into steps with the first step.
        self.dt = float(t_all[1] - t_all[0]) if t_all.size > 1 else float(dense.dt)
        if dt is not None and not np.isclose(
            positive_seconds("dt", dt), self.dt, rtol=1e-6, atol=0
        ):
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
            span = f"{t_all[0]} .. {t_all[-1]} s" if t_all.size else "no time steps"
            raise ParameterError(
                "t_start/t_stop",
                f"the window ({t_start}, {t_stop}] holds no time step of the input "
                f"({span})",
            )
        self.t_all = t_all
        self.n_steps = self.k_end - self.k_first
        self.n_units = int(dense.n_units)
        self.unit_ids = np.asarray(dense.unit_ids)
        self.t_start = float(t_all[self.k_first] - self.dt)
        self.t_stop = float(t_all[self.k_end - 1])
        self.source_name = dense.source or ""
        self.intervals = None
        self._n_outside: int | None = None

    @property
    def n_outside(self) -> int:
        """Spikes in the rows cut off by the window (read once, by chunks)."""
        if self._n_outside is None:
            step = max(1, MAX_CHUNK_VALUES // max(1, self.n_units))
            n = 0
            for a, b in ((0, self.k_first), (self.k_end, self.t_all.size)):
                for k0 in range(a, b, step):
                    k1 = min(k0 + step, b)
                    n += int(self.dense.counts_chunk(k0, k1).sum())
            self._n_outside = n
        return self._n_outside

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t_all[self.k_first + k0 : self.k_first + k1]

    def feed_range(self, before: int, after: int) -> tuple[int, int]:
        """Window rows extended by the kernel's reach, within the file."""
        return (
            max(-self.k_first, -before),
            min(self.t_all.size - self.k_first, self.n_steps + after),
        )

    def dense_chunks(self, a: int, b: int, chunk_steps: int):
        for k0 in range(a, b, chunk_steps):
            k1 = min(k0 + chunk_steps, b)
            chunk = self.dense.amplitude_chunk(self.k_first + k0, self.k_first + k1)
            yield k0, k1, chunk

    def isi_estimator(self, midpoint: bool, interp: str, exact: bool, chunk_steps):
        # Every row of the file gives its spikes, so a window sees the
        # intervals that cross its edges; one pass by chunks.
        n_all = self.t_all.size
        trains = dense_to_events(
            (
                (self.t_all[k0:k1], self.dense.amplitude_chunk(k0, k1))
                for k0, k1 in _blocks(n_all, chunk_steps)
            ),
            per_bin=True,
            unit_ids=self.unit_ids,
        )
        times, counts = _flatten(trains.spike_times)
        return IsiRates.from_sorted(
            times,
            counts,
            self.t_all[0],
            self.t_all[-1],
            midpoint=midpoint,
            interp=interp,
        )


def _blocks(n: int, step: int):
    for k0 in range(0, n, step):
        yield k0, min(k0 + step, n)


def _flatten(spike_times) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([s.size for s in spike_times], dtype=np.intp)
    times = np.concatenate(spike_times) if counts.size else np.zeros(0)
    return times.astype(np.float64, copy=False), counts


class _EventsSource:
    """Spike times per unit, put on the grid of step ``dt``.

    The recording is the grid of the spikes' own window
    (:meth:`SpikeTrains.grid` without a window); rows of the window's grid
    are counted from its first row, and the recording's rows may start
    before it and end after it.
    """

    kind = "events"

    def __init__(self, trains: SpikeTrains, dt, t_start, t_stop, batch_spikes):
        if dt is None:
            raise ParameterError(
                "dt", "a bin width in seconds is required to put spike times on a grid"
            )
        dt = positive_seconds("dt", dt)
        self.trains = trains
        self.grid: Grid = trains.grid(dt, t_start, t_stop)
        self.dt = self.grid.dt
        self.n_steps = self.grid.n_steps
        self.n_units = trains.n_units
        self.unit_ids = np.asarray(trains.unit_ids)
        self.t_start = self.grid.t_start
        self.t_stop = self.grid.t_stop
        self.source_name = trains.source or ""
        self.recording: Grid = trains.grid(dt)
        # The recording's bins, in rows of the window's grid.
        self.rec_rows = (
            self.grid.steps_to(self.recording.t_start),
            self.grid.steps_to(self.recording.t_stop),
        )
        self.intervals = trains.obs_intervals
        self._batch_spikes = batch_spikes
        self._n_outside: int | None = None

    @property
    def n_outside(self) -> int:
        if self._n_outside is None:
            self._n_outside = count_outside(self.trains.spike_times, self.grid)
        return self._n_outside

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t_start + (np.arange(k0, k1, dtype=np.int64) + 1) * self.dt

    def feed_range(self, before: int, after: int) -> tuple[int, int]:
        """Window rows extended by the kernel's reach, within the recording
        (never less than the window)."""
        r0, r1 = self.rec_rows
        return min(0, max(r0, -before)), max(
            self.n_steps, min(r1, self.n_steps + after)
        )

    def spike_chunks(self, a: int, b: int, chunk_steps: int, spike_times=None):
        times = self.trains.spike_times if spike_times is None else spike_times
        return iter_spike_chunks(
            times,
            self.grid,
            chunk_steps,
            first=a,
            stop=b,
            batch_spikes=self._batch_spikes,
        )

    def isi_estimator(self, midpoint: bool, interp: str, exact: bool, chunk_steps):
        r0, r1 = self.rec_rows
        lo, hi = min(0, r0), max(self.n_steps, r1)
        if exact:
            # 0 at the start and end of the recording (or of the window, when
            # it reaches further), the exact spike times in between.
            t_first = self.t_start + lo * self.dt
            t_last = self.t_start + hi * self.dt
            times, counts = _distinct_within(self.trains.spike_times, t_first, t_last)
        else:
            # The reference's points: spikes on their bins' grid times, 0 at
            # the first and last grid times.
            # Grid times are written as the output grid writes them
            # (t_start + (k + 1) dt, k counted from the window's start), so a
            # spike's time and its row's time are the same float.
            grid = Grid(self.t_start + lo * self.dt, self.dt, hi - lo)
            times, counts = _flatten(snap_to_grid(self.trains.spike_times, grid))
            steps = np.rint((times - grid.t_start) / self.dt) + lo
            times = self.t_start + steps * self.dt
            t_first = self.t_start + (lo + 1) * self.dt
            t_last = self.t_start + hi * self.dt
        return IsiRates.from_sorted(
            times, counts, t_first, t_last, midpoint=midpoint, interp=interp
        )


def _distinct_within(spike_times, lo: float, hi: float):
    """Each unit's times within ``[lo, hi]``, repeated times once, flattened."""
    pieces = []
    for times in spike_times:
        i0 = np.searchsorted(times, lo, side="left")
        i1 = np.searchsorted(times, hi, side="right")
        pieces.append(times[i0:i1])
    times, counts = _flatten(pieces)
    if times.size > 1:
        repeated = times[1:] == times[:-1]
        ends = np.cumsum(counts)
        # A unit's first time is never a repeat of the previous unit's last.
        repeated[ends[(ends > 0) & (ends < times.size)] - 1] = False
        if repeated.any():
            keep = np.concatenate([[True], ~repeated])
            unit = np.repeat(np.arange(counts.size), counts)
            counts = np.bincount(unit[keep], minlength=counts.size).astype(np.intp)
            times = times[keep]
    return times, counts


def _make_source(source, dt, t_start, t_stop, batch_spikes):
    if isinstance(source, SpikeTrains):
        return _EventsSource(source, dt, t_start, t_stop, batch_spikes)
    if isinstance(source, DenseSpikes):
        return _DenseSource(source, dt, t_start, t_stop)
    if isinstance(source, tuple) and len(source) == 2:
        return _ArraySource(*source, dt, t_start, t_stop)
    raise TypeError(
        "source must be a SpikeTrains, a DenseSpikes or a (t, spikes) pair of "
        f"arrays, got {type(source).__name__}"
    )


# --------------------------------------------------------------------- plan


@dataclass
class RatePlan:
    """A rate computation whose grid, estimator and output size are fixed.

    Built by :func:`plan_rates`; :meth:`chunks` runs it (as often as wanted).

    Attributes
    ----------
    method : {"kernel", "isi"}
    params : dict
        The estimator's parameters.
    n_steps, n_units : int
        Shape (M, N) of the rates.
    unit_ids : (N,) ndarray
    dt : float
        Step of the grid in seconds.
    t_start, t_stop : float
        The time before the first grid time, and the last grid time, in
        seconds.
    chunk_steps : int
        Time steps computed per chunk.
    exact : bool
        Whether spike times are used as they are (not binned).
    notes : list of str
        Remarks about the input worth telling a user (never errors).
    """

    method: str
    params: dict[str, Any]
    n_steps: int
    n_units: int
    unit_ids: np.ndarray
    dt: float
    t_start: float
    t_stop: float
    chunk_steps: int
    exact: bool = False
    notes: list[str] = field(default_factory=list)
    _source: Any = field(default=None, repr=False)
    _engine_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_outside(self) -> int:
        """Spikes of the source outside the window (they still reach the
        rates inside it, see :func:`plan_rates`)."""
        return int(self._source.n_outside)

    @property
    def source_name(self) -> str:
        return self._source.source_name

    def times(self, k0: int = 0, k1: int | None = None) -> np.ndarray:
        """Grid times ``k0 .. k1 - 1`` in seconds, float64 of shape (k1 - k0,)."""
        return self._source.times(k0, self.n_steps if k1 is None else k1)

    def output_bytes(self, dtype: Any = np.float64) -> int:
        """Size in bytes of the rates as ``dtype``: rows x units x itemsize."""
        return self.n_steps * self.n_units * np.dtype(dtype).itemsize

    @property
    def attrs(self) -> dict[str, Any]:
        """Attributes of the output: estimator, parameters, grid, units, source."""
        attrs: dict[str, Any] = {"estimator": self.method, **self.params}
        if self.exact:
            attrs["exact"] = True
        attrs.update(
            dt=float(self.dt),
            t_start=float(self.t_start),
            t_stop=float(self.t_stop),
            units="Hz",
            source=self.source_name,
        )
        return attrs

    def chunks(
        self,
        out: np.ndarray | None = None,
        progress: Callable[[int], Any] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Run the computation: yield ``(t_chunk, rates_chunk)`` in time order.

        Parameters
        ----------
        out : (M, N) float64 ndarray, optional
            Where to compute the rates; each yielded ``rates_chunk`` is then a
            view of its rows.
        progress : callable, optional
            Called with the number of time steps done by each chunk (the
            increments add up to M).

        Yields
        ------
        t_chunk : (L,) ndarray of float64
            Grid times in seconds.
        rates_chunk : (L, N) ndarray of float64
            Rates in Hz at those times (L >= 1; the L add up to M); NaN where
            a unit is not observed.
        """
        if out is not None and (
            out.shape != (self.n_steps, self.n_units) or out.dtype != np.float64
        ):
            raise ValueError(
                f"out must be a float64 array of shape {(self.n_steps, self.n_units)}"
            )
        if progress is None:
            progress = _ignore
        if self.method == "isi":
            return self._isi_chunks(out, progress)
        if not self.params["border_correction"]:
            return self._kernel_chunks(out, progress)
        return self._corrected_chunks(out, progress)

    def kernel_filter(self) -> KernelFilter:
        """A fresh streaming filter for this plan's kernel and grid (without
        border correction: the driver applies it)."""
        p = self.params
        kind, tau = p["kind"], p["tau"]
        normalize = p["normalize"]
        if self.exact and kind == "expogauss":
            # The exponential stage of expogauss is exact; the Gaussian
            # stage is the filter, at unit mass.
            kind, tau, normalize = "gauss", tau / 4, True
        return KernelFilter(
            kind,
            tau,
            self.dt,
            self.n_units,
            normalize=normalize,
            causal=p["causal"],
            method=self._engine_options.get("method", "auto"),
            **{k: v for k, v in self._engine_options.items() if k != "method"},
        )

    # -- kernel rates

    def _kernel_chunks(self, out, progress):
        """Final rows in order, as ``(t_chunk, rates_chunk)``."""
        for k0, block in self._kernel_blocks(out, progress):
            yield self.times(k0, k0 + block.shape[0]), block

    def _reach(self) -> tuple[int, int]:
        """Input rows before and after an output row that reach it."""
        p = self.params
        tau_steps = p["tau"] / self.dt
        if not self.exact:
            return kernel_margins(p["kind"], tau_steps, causal=p["causal"])
        if p["kind"] == "expogauss":
            # The exact stage is evaluated wherever it is needed.
            return kernel_margins("expogauss", tau_steps, stages=slice(1, None))
        return 0, 0

    def _kernel_blocks(self, out, progress, counts=None):
        """Yield ``(first row, rows)`` of the window, in order and complete.

        The input is fed from before the window to after it, as far as the
        kernel reaches (within the recording), so every row equals the
        recording's own; with border correction the window (and each
        observed interval) is the recording instead. ``counts``, when given,
        receives the spikes fed per unit.
        """
        source, chunk_steps = self._source, self.chunk_steps
        border = self.params["border_correction"]
        n_steps = self.n_steps
        a, b = (0, n_steps) if border else source.feed_range(*self._reach())
        direct = out is not None and (a, b) == (0, n_steps) and not self.exact
        rate_filter = (
            None
            if self.exact and self.params["kind"] != "expogauss"
            else (self.kernel_filter())
        )
        row = a
        # With border correction the same filter, run on the observed rows,
        # gives row by row the kernel mass that falls on them (in step with
        # the rates, so its rows come in the same blocks).
        mass_filter = self._mass_filter() if border and not self.exact else None

        def emit(block, mass=None):
            nonlocal row
            n = block.shape[0]
            lo, hi = max(row, 0), min(row + n, n_steps)
            if hi > lo:
                rows = block[lo - row : hi - row]
                if out is not None and not direct:
                    out[lo:hi] = rows
                    rows = out[lo:hi]
                if mass is not None:
                    mass = mass[lo - row : hi - row]
                self._finish_rows(lo, rows, mass)
                yield lo, rows
            row += n

        def mass_of(k0, k1):
            if mass_filter is None:
                return None
            observed = self._observed(k0, k1)
            if observed is None:
                observed = np.ones((k1 - k0, 1))
            return mass_filter.process(observed.astype(np.float64))

        def dest(n_in):
            if not direct:
                return None
            n_ready = rate_filter.rows_ready(n_in)
            return out[row : row + n_ready]

        def done(k0, k1):
            n = min(k1, n_steps) - max(k0, 0)
            if n > 0:
                progress(n)

        if source.kind == "events":
            spike_times = self._effective_times() if border else None
            if self.exact:
                blocks = self._exact_blocks(a, b, spike_times, counts)
                for k0, k1, block in blocks:
                    if rate_filter is not None:
                        block = rate_filter.process(block)
                    done(k0, k1)
                    yield from emit(block)
            else:
                amplitude = 1.0 / self.dt
                chunks = source.spike_chunks(a, b, chunk_steps, spike_times)
                for k0, k1, rows, units in chunks:
                    if counts is not None:
                        counts += np.bincount(units, minlength=self.n_units)
                    block = rate_filter.process_spikes(
                        k1 - k0, rows, units, amplitude, out=dest(k1 - k0)
                    )
                    done(k0, k1)
                    yield from emit(block, mass_of(k0, k1))
        else:
            for k0, k1, chunk in source.dense_chunks(a, b, chunk_steps):
                if counts is not None:
                    counts += np.asarray(chunk, dtype=np.float64).sum(axis=0) * self.dt
                if direct:
                    block = rate_filter.process(chunk, out=dest(k1 - k0))
                else:
                    block = rate_filter.process(chunk)
                done(k0, k1)
                yield from emit(block, mass_of(k0, k1))
        if rate_filter is not None:
            tail = np.asarray(rate_filter.finish())
            if direct and tail.shape[0]:
                out[row:] = tail
                tail = out[row:]
            yield from emit(tail, None if mass_filter is None else mass_filter.finish())
        if row != b:
            raise RuntimeError(f"the kernel filter produced {row - a} rows for {b - a}")

    def _exact_blocks(self, a, b, spike_times, counts):
        """Rows ``a .. b - 1`` of the exact stage, chunk by chunk."""
        p = self.params
        kind = "expon" if p["kind"] == "expogauss" else p["kind"]
        exact = ExactKernel(
            kind, p["tau"] / self.dt, self.dt, self.n_units, p["causal"]
        )
        times = self._source.trains.spike_times if spike_times is None else spike_times
        if counts is not None:
            counts += [unit.size for unit in times]
        t_row0 = self.t_start + self.dt  # the time of row 0
        for k0 in range(a, b, self.chunk_steps):
            k1 = min(k0 + self.chunk_steps, b)
            lo, hi = exact.reach(k0, k1)
            t_lo, t_hi = t_row0 + lo * self.dt, t_row0 + hi * self.dt
            pieces = [
                unit[np.searchsorted(unit, t_lo, "right") : np.searchsorted(unit, t_hi)]
                for unit in times
            ]
            flat, n_per_unit = _flatten(pieces)
            units = np.repeat(np.arange(self.n_units), n_per_unit)
            spike_rows = (flat - t_row0) / self.dt
            # A spike within the binning tolerance of a grid time is on it,
            # so that the kernel's support ends do not depend on rounding.
            nearest = np.rint(spike_rows)
            tol = np.maximum(
                1e-9,
                4 * np.finfo(np.float64).eps * (np.abs(flat) + abs(t_row0)) / self.dt,
            )
            spike_rows = np.where(
                np.abs(spike_rows - nearest) <= tol, nearest, spike_rows
            )
            yield k0, k1, exact.rows(k0, k1, spike_rows, units)

    def _effective_times(self) -> list[np.ndarray]:
        """With border correction: each unit's spikes inside the window
        (closed: a spike on its start counts) and its observed intervals."""
        trains = self._source.trains
        window = [[self.t_start, self.t_stop]]
        kept = []
        for u, times in enumerate(trains.spike_times):
            intervals = window
            if trains.obs_intervals is not None and trains.obs_intervals[u] is not None:
                intervals = intersect_intervals(trains.obs_intervals[u], window)
            i0 = np.searchsorted(times, [iv[0] for iv in intervals], side="left")
            i1 = np.searchsorted(times, [iv[1] for iv in intervals], side="right")
            parts = [times[x:y] for x, y in zip(i0, i1, strict=True)]
            unit = np.concatenate(parts) if parts else times[:0]
            if not self.exact and unit.size:
                # A spike on the window's start goes in its first bin.
                on_start = np.abs(unit - self.t_start) <= 1e-9 * self.dt
                unit = np.where(on_start, self.t_start + 0.5 * self.dt, unit)
            kept.append(unit)
        return kept

    def _mass_filter(self) -> KernelFilter:
        p = self.params
        columns = 1 if self._source.intervals is None else self.n_units
        return KernelFilter(
            p["kind"],
            p["tau"],
            self.dt,
            columns,
            normalize=p["normalize"],
            causal=p["causal"],
            method="direct",
        )

    def _finish_rows(self, k0: int, rows: np.ndarray, mass=None) -> None:
        """Border correction (kernel mass inside the observed rows) and NaN
        where a unit is not observed, in place, for rows from ``k0``."""
        n = rows.shape[0]
        observed = self._observed(k0, k0 + n)
        if self.method == "kernel" and self.params["border_correction"]:
            if mass is None:
                mass = self._mass_inside(k0, k0 + n)
            full = self._full_mass
            clipped = (np.abs(mass - full) > 1e-12 * abs(full)) & (mass != 0)
            if clipped.any():
                factor = np.where(clipped, full / np.where(mass == 0, 1, mass), 1.0)
                rows *= factor
        if observed is not None:
            rows[~observed] = np.nan

    def _observed(self, k0: int, k1: int) -> np.ndarray | None:
        """(k1 - k0, N) bool: rows whose grid time lies in each unit's
        observation intervals (None when every unit is observed)."""
        intervals = self._source.intervals
        if intervals is None:
            return None
        t = self.times(k0, k1)
        # A grid time within the binning tolerance of an interval's edge is
        # on it, whatever rounding the grid's sum t_start + (k+1) dt made.
        tol = SNAP * self.dt
        observed = np.empty((t.size, self.n_units), dtype=bool)
        for u, iv in enumerate(intervals):
            if iv is None:
                observed[:, u] = True
                continue
            j = np.searchsorted(iv[:, 0], t + tol, side="right") - 1
            observed[:, u] = (j >= 0) & (t - tol <= iv[np.maximum(j, 0), 1])
        return observed

    @property
    def _full_mass(self) -> float:
        return float(self._composite[0].sum())

    @property
    def _composite(self) -> tuple[np.ndarray, int]:
        p = self.params
        if self.exact:
            # Unit mass: the exact stage is scaled to it, the filter too.
            kern, delay = composite_kernel(
                p["kind"], p["tau"] / self.dt, normalize=True, causal=p["causal"]
            )
            return kern / kern.sum(), delay
        return composite_kernel(
            p["kind"], p["tau"] / self.dt, normalize=p["normalize"], causal=p["causal"]
        )

    def _mass_inside(self, k0: int, k1: int) -> np.ndarray:
        """Kernel mass of output rows ``k0 .. k1 - 1`` that falls on observed
        rows of the window: (L, 1), or (L, N) with observation intervals."""
        kern, delay = self._composite
        n_taps = kern.size
        e0, e1 = k0 + delay - n_taps + 1, k1 + delay
        inside = np.zeros(e1 - e0, dtype=bool)
        w0, w1 = max(e0, 0), min(e1, self.n_steps)
        if w1 > w0:
            inside[w0 - e0 : w1 - e0] = True
        if self._source.intervals is None:
            weights = inside[:, None].astype(np.float64)
        else:
            weights = np.zeros((e1 - e0, self.n_units))
            if w1 > w0:
                weights[w0 - e0 : w1 - e0] = self._observed(w0, w1)
        windows = np.lib.stride_tricks.sliding_window_view(weights, n_taps, axis=0)
        # Row m sums kern[k] * weights[m + delay - k].
        return windows @ kern[::-1]

    def _corrected_chunks(self, out, progress):
        """Border-corrected rates: each unit's integral over its observed
        rows equals its spike count there (Elephant's rule: the kernel mass
        inside, then a scale per unit). Streamed, that takes two passes."""
        counts = np.zeros(self.n_units)
        sums = np.zeros(self.n_units)
        if out is not None:
            for _, rows in self._kernel_blocks(out, progress, counts):
                sums += np.nansum(rows, axis=0)
            scale = _count_scale(counts, sums * self.dt)
            if scale is not None:
                out *= scale
            for k0 in range(0, self.n_steps, self.chunk_steps):
                k1 = min(k0 + self.chunk_steps, self.n_steps)
                yield self.times(k0, k1), out[k0:k1]
            return
        for _, rows in self._kernel_blocks(None, _ignore, counts):
            sums += np.nansum(rows, axis=0)
        scale = _count_scale(counts, sums * self.dt)
        for k0, rows in self._kernel_blocks(None, progress):
            if scale is not None:
                rows *= scale
            yield self.times(k0, k0 + rows.shape[0]), rows

    # -- ISI rates

    def _isi_chunks(self, out, progress):
        p = self.params
        estimator = self._source.isi_estimator(
            p["midpoint"], p["interp"], self.exact, self.chunk_steps
        )
        for k0 in range(0, self.n_steps, self.chunk_steps):
            k1 = min(k0 + self.chunk_steps, self.n_steps)
            t_chunk = self.times(k0, k1)
            dest = None if out is None else out[k0:k1]
            block = estimator.evaluate(t_chunk, out=dest)
            observed = self._observed(k0, k1)
            if observed is not None:
                block[~observed] = np.nan
            progress(k1 - k0)
            yield t_chunk, block


def _count_scale(counts: np.ndarray, integrals: np.ndarray) -> np.ndarray | None:
    """Per-unit factors that make each integral equal its count (1 where
    there is nothing to scale or it already does, to rounding)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(integrals > 0, counts / integrals, 1.0)
    scale[np.abs(scale - 1) <= 1e-12] = 1.0
    return None if np.all(scale == 1) else scale


def _ignore(n_steps: int) -> None:
    pass


def plan_rates(
    source: SpikeTrains | DenseSpikes | tuple[Any, Any],
    method: str = "kernel",
    *,
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
    chunk_steps: int | None = None,
    chunk_duration: float | None = None,
    max_chunk_values: int = MAX_CHUNK_VALUES,
    max_output_bytes: int | None = MAX_OUTPUT_BYTES,
    dtype: Any = np.float64,
    batch_spikes: int = BATCH_SPIKES,
    fir_method: str = "auto",
    exact: bool | None = None,
    epochs: Any = None,
    **engine_options: Any,
) -> RatePlan:
    """Check a rate computation and fix its grid; compute nothing yet.

    Parameters
    ----------
    source : SpikeTrains, DenseSpikes or (t, spikes)
        Spike times per unit; a dense matrix on its own grid (possibly read
        lazily from a file); or arrays ``t`` (M,) seconds, uniform, and
        ``spikes`` (M, N) with ``1 / dt`` per spike (the reference's layout).
    method : {"kernel", "isi"}
        Kernel smoothing or inverse inter-spike intervals.
    kind, tau, normalize, causal
        Kernel estimator parameters (``tau`` in seconds); see
        :class:`spikerates.kernels.KernelFilter`.
    border_correction : bool
        Treat the window, and each unit's observed intervals within it, as
        the whole recording: only the spikes inside count, each rate is
        divided by the kernel mass that falls on observed rows, and each
        unit's rates are scaled so that their integral over its observed
        rows equals its spike count there (as
        ``elephant.statistics.instantaneous_rate(border_correction=True)``).
        Streamed, this computes the rates twice.
    midpoint, interp
        ISI estimator parameters; see :class:`spikerates.isi.IsiRates`.
    dt : float, optional
        Bin width in seconds. Required for spike times; for a dense matrix it
        must agree with the spacing of its ``t`` (rtol 1e-6); not for arrays.
    t_start, t_stop : float, optional
        Window in seconds: the grid times are ``t_start + (k + 1) * dt`` up to
        ``t_stop``. Defaults: the recording's window for spike times (see
        :meth:`SpikeTrains.grid`), the whole ``t`` for a dense matrix.
        The window crops the output, not the data: each rate equals the
        whole recording's at that grid time (the kernel and the ISI rates see
        the spikes outside the window within their reach), except with
        ``border_correction``. Spikes outside the window are counted
        (:attr:`RatePlan.n_outside`).
    chunk_steps : int, optional
        Time steps computed per chunk. The rates do not depend on it.
    chunk_duration : float, optional
        Alternatively, seconds per chunk (default 60 s for spike times and
        dense matrices), capped so a chunk holds at most ``max_chunk_values``
        values. Arrays given whole default to about 32 MB of input per chunk.
    max_chunk_values : int
        See ``chunk_duration``.
    max_output_bytes : int or None
        Refuse (``ResourceLimitError``) rates larger than this many bytes as
        ``dtype`` (default 4 GiB); None for no limit.
    dtype : {float64, float32}
        Type the rates will be stored as (for the size check; the computation
        is float64).
    batch_spikes : int
        About how many spikes are binned in one pass (spike times only).
    fir_method : {"auto", "sparse", "direct", "fft"}
        Convolution algorithm of the kernel estimator.
    exact : bool, optional
        Use spike times as they are instead of their bins (spike times
        only). ISI rates then take the exact intervals (two spikes in one
        bin are two spikes); kernel rates evaluate each spike's continuous
        kernel (unit area) at its exact offset from each grid time (for
        ``expogauss`` the exponential stage, followed by the sampled
        Gaussian at unit mass). Default: exact for ISI rates of spike
        times, binned otherwise.
    epochs : (K, 2) array_like, optional
        ``[start, stop]`` times in seconds where the units count as observed
        (spike times only; see :meth:`SpikeTrains.restrict_epochs`):
        outside them rates are NaN, and border correction applies at each
        epoch's edges.
    **engine_options
        Passed to each :class:`spikerates.fir.FirStage`.

    Returns
    -------
    RatePlan
    """
    if method not in METHODS:
        raise ParameterError("method", f"must be one of {METHODS}, got {method!r}")
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError("dtype", f"must be float32 or float64, got {out_dtype}")
    if method == "kernel":
        params = {
            "kind": check_kind(kind),
            "tau": positive_seconds("tau", tau),
            "normalize": bool(normalize),
            "causal": bool(causal),
            "border_correction": bool(border_correction),
        }
    else:
        params = {"midpoint": bool(midpoint), "interp": check_interp(interp)}
    is_events = isinstance(source, SpikeTrains)
    if exact is None:
        exact = method == "isi" and is_events
    exact = bool(exact)
    if (exact or epochs is not None) and not is_events:
        name = "exact" if exact else "epochs"
        raise ParameterError(
            name,
            "needs spike times; dense spikes are already on their grid"
            if exact
            else "need spike times (a SpikeTrains)",
        )
    if epochs is not None:
        source = source.restrict_epochs(epochs)
    src = _make_source(source, dt, t_start, t_stop, batch_spikes)
    n_steps, n_units = int(src.n_steps), int(src.n_units)
    if chunk_steps is not None:
        steps = _CHUNK_STEPS(chunk_steps)
    elif chunk_duration is None and src.kind == "arrays":
        if method == "kernel":
            steps = max(1024, _ARRAY_CHUNK_BYTES // (8 * max(n_units, 1)))
        else:
            steps = min(4096, max(64, _ISI_PIECE // max(n_units, 1) // 64 * 64))
    else:
        duration = positive_seconds(
            "chunk_duration",
            _CHUNK_DURATION if chunk_duration is None else chunk_duration,
        )
        steps = max(1, int(round(duration / src.dt)))
        steps = max(1, min(steps, int(max_chunk_values) // max(1, n_units)))
    minimum = 1 if method == "kernel" else 2
    if n_steps < minimum:
        raise ParameterError(
            "t_stop",
            f"the time window holds {n_steps} steps of {src.dt:g} s; "
            f"{method} rates need at least {minimum} "
            "(give t_start/t_stop when the input has no spikes)",
        )
    plan = RatePlan(
        method=method,
        params=params,
        n_steps=n_steps,
        n_units=n_units,
        unit_ids=src.unit_ids,
        dt=float(src.dt),
        t_start=float(src.t_start),
        t_stop=float(src.t_stop),
        chunk_steps=steps,
        exact=exact,
        _source=src,
        _engine_options={"method": fir_method, **engine_options},
    )
    size = plan.output_bytes(out_dtype)
    if max_output_bytes is not None and size > max_output_bytes:
        raise ResourceLimitError(
            f"the rates would take {_bytes(size)} ({_count(n_steps)} steps x {n_units} "
            f"units x {out_dtype.itemsize} bytes), above the limit of "
            f"{_bytes(max_output_bytes)}; raise the limit (--max-output-size), "
            "store float32 (--dtype float32), use a coarser dt (--dt) or a "
            "shorter window (--t-start/--t-stop)"
        )
    if method == "kernel":
        # Bad kernel parameters (a causal Gaussian...) are found here, before
        # any output exists.
        plan.kernel_filter()
    plan.notes.extend(_notes(plan, src, size))
    return plan


#: Output size above which a note suggests a smaller output.
LARGE_OUTPUT_BYTES = 2 * 10**9


def _notes(plan: RatePlan, src, size: int) -> list[str]:
    """Remarks on inputs that are valid but often a mistake."""
    notes = []
    p = plan.params
    if plan.method == "kernel":
        tau = p["tau"]
        if tau >= 1.0:
            notes.append(
                f"tau = {tau:g} s is long for a firing-rate kernel (tau is in seconds)"
            )
        if not plan.exact and not p["normalize"]:
            kern, _ = plan._composite
            mass = float(kern.sum())
            # The reference cuts every kernel's tails (alpha keeps 96% of its
            # area at any dt); only a coarse grid's bias is worth a note.
            fine = math.prod(
                truncated_mass(stage)
                for stage, _ in kernel_stages(p["kind"], tau / plan.dt)
            )
            if abs(mass - fine) > 0.01 * fine:
                notes.append(
                    f"the {p['kind']} kernel sampled at dt = {plan.dt:g} s holds "
                    f"{mass:.4g} of its mass (tau = {tau / plan.dt:.3g} steps), so "
                    f"rates are scaled by {mass:.4g}; normalise the kernel, "
                    "evaluate it at exact spike times or use a finer dt"
                )
    if src.kind == "events":
        trains = src.trains
        lasts = [times[-1] for times in trains.spike_times if times.size]
        end, what = trains.t_stop, "recording"
        if trains.obs_intervals is not None:
            ends = [
                iv[-1, 1] for iv in trains.obs_intervals if iv is not None and iv.size
            ]
            if ends:
                end, what = max(ends), "last observed interval"
        if end is None and lasts:
            end, what = max(lasts), "last spike"
        # The default grid ends at the first grid time at or after the end,
        # less than one step later: only a longer stretch is padding. The last
        # spike is only a proxy for the recording's end, so past it only a
        # long silence (1 s and a tenth of the window) is worth a note.
        padding = plan.t_stop - end if end is not None else 0.0
        if what == "last spike":
            span = plan.t_stop - plan.t_start
            worth_noting = padding >= max(1.0, 0.1 * span, plan.dt)
        else:
            worth_noting = padding >= plan.dt * (1 + 1e-9)
        if end is not None and worth_noting:
            notes.append(
                f"the window ends {plan.t_stop - end:.6g} s after the {what} "
                f"({end:.6g} s): that stretch holds no spikes"
            )
        if (
            p.get("border_correction")
            and trains.t_stop is None
            and trains.obs_intervals is None
            and lasts
            and abs(plan.t_stop - max(lasts)) <= plan.dt
        ):
            notes.append(
                "the input does not state how long it was recorded, so the "
                f"window ends at the last spike ({max(lasts):.6g} s); border "
                "correction treats that spike as on the recording's edge (give "
                "t_stop)"
            )
    if size > LARGE_OUTPUT_BYTES:
        notes.append(
            f"the rates will take {_bytes(size)} ({_count(plan.n_steps)} steps x "
            f"{plan.n_units} units); float32 output or a coarser dt makes them "
            "smaller"
        )
    return notes


def _count(n: int) -> str:
    return f"{n}" if n < 10**12 else f"{n:.3g}"


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 1e4 else f"{value:.3g} {unit}"
    return f"{n} bytes"


def iter_rates(
    source: SpikeTrains | DenseSpikes | tuple[Any, Any],
    method: str = "kernel",
    **options: Any,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rates chunk by chunk: ``(t_chunk (L,), rates_chunk (L, N) Hz)`` pairs.

    The same as ``plan_rates(source, method, **options).chunks()``; see
    :func:`plan_rates` for the parameters.
    """
    return plan_rates(source, method, **options).chunks()


@dataclass
class RateResult:
    """Rates computed in memory by :func:`compute_rates`.

    Attributes
    ----------
    t : (M,) ndarray of float64
        Grid times in seconds.
    rates : (M, N) ndarray
        Rates in Hz (float64, or the ``dtype`` asked for).
    unit_ids : (N,) ndarray
    dt : float
        Grid step in seconds.
    attrs : dict
        Estimator, parameters, grid and source (as written to files).
    n_outside : int
        Spikes outside the window.
    notes : list of str
        Remarks about the input worth telling a user.
    """

    t: np.ndarray
    rates: np.ndarray
    unit_ids: np.ndarray
    dt: float
    attrs: dict[str, Any]
    n_outside: int = 0
    notes: list[str] = field(default_factory=list)


def compute_rates(
    source: SpikeTrains | DenseSpikes | tuple[Any, Any],
    method: str = "kernel",
    **options: Any,
) -> RateResult:
    """Firing rates of every unit on a uniform grid, in memory.

    Parameters
    ----------
    source : SpikeTrains, DenseSpikes or (t, spikes)
        See :func:`plan_rates`.
    method : {"kernel", "isi"}
    **options
        See :func:`plan_rates`, e.g. ``dt=0.001, kind="gauss", tau=0.04``.

    Returns
    -------
    RateResult

    Examples
    --------
    >>> from spikerates.spiketrains import SpikeTrains
    >>> trains = SpikeTrains([[0.1, 0.15, 0.3], [0.2]], t_start=0.0, t_stop=0.5)
    >>> result = compute_rates(trains, "kernel", dt=0.001, kind="gauss", tau=0.02)
    >>> result.rates.shape
    (500, 2)
    """
    dtype = np.dtype(options.get("dtype", np.float64))
    plan = plan_rates(source, method, **options)
    rates = np.empty((plan.n_steps, plan.n_units))
    for _ in plan.chunks(out=rates):
        pass
    if dtype != rates.dtype:
        rates = rates.astype(dtype)
    return RateResult(
        t=plan.times(),
        rates=rates,
        unit_ids=np.asarray(plan.unit_ids),
        dt=plan.dt,
        attrs=plan.attrs,
        n_outside=plan.n_outside,
        notes=list(plan.notes),
    )
