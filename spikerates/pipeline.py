"""Streaming rate estimation: spike trains in, a rate matrix out, in time chunks.

A recording of any length flows through here in blocks of time steps: the
rate driver (:mod:`spikerates.driver`) bins (or reads) one chunk at a time,
the estimator carries its state across chunk edges, and every finished block
of rates is appended to a writer. Peak memory is a few arrays of ``chunk x
n_units`` values plus the spike times, whatever the recording's length. The
in-memory estimators drain the same driver, so streamed and in-memory
results agree to rounding.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from spikerates.driver import MAX_CHUNK_VALUES, METHODS, plan_rates
from spikerates.spiketrains import BATCH_SPIKES, DenseSpikes, SpikeTrains

__all__ = ["MAX_CHUNK_VALUES", "METHODS", "WriterFactory", "estimate_rates"]

#: ``writer_factory(n_rows, unit_ids, attrs)`` -> a context manager whose value
#: has ``append(t_chunk, values)`` (e.g. :func:`spikerates.io.open_matrix_writer`).
WriterFactory = Callable[[int, np.ndarray, dict[str, Any]], AbstractContextManager]


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
    max_chunk_values: int = MAX_CHUNK_VALUES,
    batch_spikes: int = BATCH_SPIKES,
    **options: Any,
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
        (``"Hz"``) and the source. It is called only once every parameter
        has been checked, so bad parameters leave no file.
    method : {"kernel", "isi"}
        Kernel smoothing or inverse inter-spike intervals.
    kind, tau, normalize, causal, border_correction
        Kernel estimator parameters (``tau`` in seconds); see
        :class:`spikerates.kernels.KernelFilter`.
    midpoint, interp
        ISI estimator parameters; see :class:`spikerates.isi.IsiRates`.
    dt : float, optional
        Bin width in seconds. Required for spike-time input; for dense input
        it must agree with the spacing of ``t`` (rtol 1e-6).
    t_start, t_stop : float, optional
        Time window in seconds: the grid is ``t_start + (k + 1) * dt`` up to
        the last grid time ``t_stop``. Defaults: the recording's window for
        events (see :meth:`spikerates.spiketrains.SpikeTrains.grid`), and the
        whole ``t`` for dense input.
    chunk_duration : float
        Longest stretch of time, in seconds, processed at once. Chunks are
        also kept below ``max_chunk_values`` values so memory stays bounded
        for many units.
    dtype : {float64, float32}
        Data type of the written rates; the computation is float64.
    progress : callable, optional
        Called with the number of time steps completed by each chunk (an
        increment, as ``tqdm.update`` expects); the increments add up to
        ``n_steps``.
    max_chunk_values, batch_spikes, **options
        Passed to :func:`spikerates.driver.plan_rates`.

    Returns
    -------
    dict
        ``n_steps``, ``n_units``, ``dt`` (s), ``t_start`` (s, the time
        before the first grid time), ``t_stop`` (s, the last grid time),
        ``n_outside`` (spikes outside the window) and ``notes`` (remarks
        about the input worth telling a user).
    """
    if not isinstance(source, SpikeTrains | DenseSpikes):
        raise TypeError(
            f"source must be SpikeTrains or DenseSpikes, got {type(source).__name__}"
        )
    out_dtype = np.dtype(dtype)
    plan = plan_rates(
        source,
        method,
        kind=kind,
        tau=tau,
        normalize=normalize,
        causal=causal,
        border_correction=border_correction,
        midpoint=midpoint,
        interp=interp,
        dt=dt,
        t_start=t_start,
        t_stop=t_stop,
        chunk_duration=chunk_duration,
        dtype=out_dtype,
        max_chunk_values=max_chunk_values,
        batch_spikes=batch_spikes,
        **options,
    )
    n_written = 0
    with (
        writer_factory(plan.n_steps, plan.unit_ids, plan.attrs) as writer,
        _WriteBehind(writer) as behind,
    ):
        for t_rows, rows in plan.chunks(progress=progress):
            behind.append(t_rows, rows.astype(out_dtype, copy=False))
            n_written += rows.shape[0]
    if n_written != plan.n_steps:
        raise RuntimeError(
            f"the rate estimator produced {n_written} rows for {plan.n_steps} steps"
        )
    return {
        "n_steps": plan.n_steps,
        "n_units": plan.n_units,
        "dt": plan.dt,
        "t_start": plan.t_start,
        "t_stop": plan.t_stop,
        "n_outside": plan.n_outside,
        "notes": list(plan.notes),
    }


class _WriteBehind:
    """Append rows to a writer from a background thread, one chunk behind.

    Writing a large output is mostly copying into the file system, during
    which other Python threads keep running (h5py lets go of the GIL), so the
    next chunk is computed meanwhile on another core. The
    queue holds one chunk, which bounds the extra memory to two chunks. An
    error in the writer is raised in the caller at its next append or on
    exit.
    """

    def __init__(self, writer: Any) -> None:
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
