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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, ResourceLimitError
from spikerates.isi import IsiRates, check_interp, spike_rows_by_unit
from spikerates.kernels import KernelFilter, check_kind
from spikerates.params import Integer, positive_seconds
from spikerates.spiketrains import (
    BATCH_SPIKES,
    DenseSpikes,
    Grid,
    SpikeTrains,
    check_grid,
    count_outside,
    dense_to_events,
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

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t[k0:k1]

    def dense_chunks(self, chunk_steps: int) -> Iterator[tuple[int, int, Any]]:
        for k0 in range(0, self.n_steps, chunk_steps):
            k1 = min(k0 + chunk_steps, self.n_steps)
            yield k0, k1, self.spikes[k0:k1]

    def isi_estimator(self, midpoint: bool, interp: str, chunk_steps: int):
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
    """A dense matrix (in memory or lazily read), rows inside the window."""

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
        self.t = t_all[self.k_first : self.k_end]
        self.n_steps = len(self.t)
        self.n_units = int(dense.n_units)
        self.unit_ids = np.asarray(dense.unit_ids)
        self.t_start = float(self.t[0] - self.dt)
        self.t_stop = float(self.t[-1])
        self.source_name = dense.source or ""
        self._n_all = len(t_all)
        self._n_outside: int | None = None

    @property
    def n_outside(self) -> int:
        """Spikes in the rows cut off by the window (read once, by chunks)."""
        if self._n_outside is None:
            step = max(1, MAX_CHUNK_VALUES // max(1, self.n_units))
            n = 0
            for a, b in ((0, self.k_first), (self.k_end, self._n_all)):
                for k0 in range(a, b, step):
                    k1 = min(k0 + step, b)
                    n += int(self.dense.counts_chunk(k0, k1).sum())
            self._n_outside = n
        return self._n_outside

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.t[k0:k1]

    def dense_chunks(self, chunk_steps: int) -> Iterator[tuple[int, int, Any]]:
        for k0 in range(0, self.n_steps, chunk_steps):
            k1 = min(k0 + chunk_steps, self.n_steps)
            chunk = self.dense.amplitude_chunk(self.k_first + k0, self.k_first + k1)
            yield k0, k1, chunk

    def isi_estimator(self, midpoint: bool, interp: str, chunk_steps: int):
        # The times of the non-zero rows of each unit, one pass by chunks.
        trains = dense_to_events(
            (
                (self.t[k0:k1], chunk)
                for k0, k1, chunk in self.dense_chunks(chunk_steps)
            ),
            per_bin=True,
            unit_ids=self.unit_ids,
        )
        counts = np.array([s.size for s in trains.spike_times], dtype=np.intp)
        times = np.concatenate(trains.spike_times) if counts.size else np.zeros(0)
        return IsiRates.from_sorted(
            times, counts, self.t[0], self.t[-1], midpoint=midpoint, interp=interp
        )


class _EventsSource:
    """Spike times per unit, put on the grid of step ``dt``."""

    kind = "events"

    def __init__(self, trains: SpikeTrains, dt, t_start, t_stop, batch_spikes):
        if dt is None:
            raise ParameterError(
                "dt", "a bin width in seconds is required to put spike times on a grid"
            )
        self.trains = trains
        self.grid: Grid = trains.grid(positive_seconds("dt", dt), t_start, t_stop)
        self.dt = self.grid.dt
        self.n_steps = self.grid.n_steps
        self.n_units = trains.n_units
        self.unit_ids = np.asarray(trains.unit_ids)
        self.t_start = self.grid.t_start
        self.t_stop = self.grid.t_stop
        self.source_name = trains.source or ""
        self._batch_spikes = batch_spikes
        self._n_outside: int | None = None

    @property
    def n_outside(self) -> int:
        if self._n_outside is None:
            self._n_outside = count_outside(self.trains.spike_times, self.grid)
        return self._n_outside

    def times(self, k0: int, k1: int) -> np.ndarray:
        return self.grid.times(k0, k1)

    def spike_chunks(self, chunk_steps: int):
        return self.trains.iter_chunks(
            self.grid, chunk_steps, batch_spikes=self._batch_spikes
        )

    def isi_estimator(self, midpoint: bool, interp: str, chunk_steps: int):
        snapped = snap_to_grid(self.trains.spike_times, self.grid)
        counts = np.array([times.size for times in snapped], dtype=np.intp)
        times = np.concatenate(snapped) if snapped else np.zeros(0)
        first = float(self.grid.times(0, 1)[0])
        return IsiRates.from_sorted(
            times, counts, first, self.t_stop, midpoint=midpoint, interp=interp
        )


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
    notes: list[str] = field(default_factory=list)
    _source: Any = field(default=None, repr=False)
    _engine_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_outside(self) -> int:
        """Spikes of the source left out by the window."""
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
            Called with the number of time steps of input consumed by each
            chunk (the increments add up to M).

        Yields
        ------
        t_chunk : (L,) ndarray of float64
            Grid times in seconds.
        rates_chunk : (L, N) ndarray of float64
            Rates in Hz at those times (L >= 1); the L add up to M.
        """
        if out is not None and (
            out.shape != (self.n_steps, self.n_units) or out.dtype != np.float64
        ):
            raise ValueError(
                f"out must be a float64 array of shape {(self.n_steps, self.n_units)}"
            )
        if progress is None:
            progress = _ignore
        if self.method == "kernel":
            return self._kernel_chunks(out, progress)
        return self._isi_chunks(out, progress)

    def kernel_filter(self) -> KernelFilter:
        """A fresh streaming filter for this plan's kernel and grid."""
        p = self.params
        return KernelFilter(
            p["kind"],
            p["tau"],
            self.dt,
            self.n_units,
            normalize=p["normalize"],
            causal=p["causal"],
            border_correction=p["border_correction"],
            method=self._engine_options.get("method", "auto"),
            **{k: v for k, v in self._engine_options.items() if k != "method"},
        )

    def _kernel_chunks(self, out, progress):
        rate_filter = self.kernel_filter()
        source, chunk_steps = self._source, self.chunk_steps
        row = 0

        def emit(block):
            nonlocal row
            n = block.shape[0]
            if n:
                yield self.times(row, row + n), block
                row += n

        if source.kind == "events":
            amplitude = 1.0 / self.dt
            for k0, k1, rows, units in source.spike_chunks(chunk_steps):
                dest = None
                if out is not None:
                    n_ready = rate_filter.rows_ready(k1 - k0)
                    dest = out[row : row + n_ready]
                block = rate_filter.process_spikes(
                    k1 - k0, rows, units, amplitude, out=dest
                )
                progress(k1 - k0)
                yield from emit(block)
        else:
            for k0, k1, chunk in source.dense_chunks(chunk_steps):
                if out is None:
                    block = rate_filter.process(chunk)
                else:
                    n_ready = rate_filter.rows_ready(k1 - k0)
                    block = rate_filter.process(chunk, out=out[row : row + n_ready])
                progress(k1 - k0)
                yield from emit(block)
        tail = np.asarray(rate_filter.finish())
        if out is not None and tail.shape[0]:
            out[row:] = tail
            tail = out[row:]
        yield from emit(tail)
        if row != self.n_steps:
            raise RuntimeError(
                f"the kernel filter produced {row} rows for {self.n_steps} steps"
            )

    def _isi_chunks(self, out, progress):
        p = self.params
        estimator = self._source.isi_estimator(
            p["midpoint"], p["interp"], self.chunk_steps
        )
        for k0 in range(0, self.n_steps, self.chunk_steps):
            k1 = min(k0 + self.chunk_steps, self.n_steps)
            t_chunk = self.times(k0, k1)
            dest = None if out is None else out[k0:k1]
            block = estimator.evaluate(t_chunk, out=dest)
            progress(k1 - k0)
            yield t_chunk, block


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
    kind, tau, normalize, causal, border_correction
        Kernel estimator parameters (``tau`` in seconds); see
        :class:`spikerates.kernels.KernelFilter`.
    midpoint, interp
        ISI estimator parameters; see :class:`spikerates.isi.IsiRates`.
    dt : float, optional
        Bin width in seconds. Required for spike times; for a dense matrix it
        must agree with the spacing of its ``t`` (rtol 1e-6); not for arrays.
    t_start, t_stop : float, optional
        Window in seconds: the grid times are ``t_start + (k + 1) * dt`` up to
        ``t_stop``. Defaults: the recording's window for spike times (see
        :meth:`SpikeTrains.grid`), the whole ``t`` for a dense matrix.
        Spikes outside the window are left out and counted.
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
        _source=src,
        _engine_options={"method": fir_method, **engine_options},
    )
    size = plan.output_bytes(out_dtype)
    if max_output_bytes is not None and size > max_output_bytes:
        raise ResourceLimitError(
            f"the rates would take {_bytes(size)} ({n_steps} steps x {n_units} "
            f"units x {out_dtype.itemsize} bytes), above the limit of "
            f"{_bytes(max_output_bytes)}; raise the limit (--max-output-size), "
            "store float32 (--dtype float32), use a coarser dt (--dt) or a "
            "shorter window (--t-start/--t-stop)"
        )
    if method == "kernel":
        # Bad kernel parameters (a causal Gaussian...) are found here, before
        # any output exists.
        plan.kernel_filter()
    return plan


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
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
        Spikes left out by the window.
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
