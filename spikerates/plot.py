"""Figures: spike rasters, rate heat maps with traces, tuning curves.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with no
pyplot state, so nothing here needs a display or touches the caller's
backend. The format comes from the file extension (``.png``, ``.svg``,
``.pdf``) and the file is written atomically: a temporary file beside the
target, renamed over it once complete.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from spikerates.errors import ParameterError

__all__ = [
    "FIGURE_FORMATS",
    "BlockMeans",
    "plot_raster",
    "plot_rates",
    "plot_simulation",
    "plot_tuning",
]

#: File extensions accepted for figures, mapped to matplotlib format names.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: Above this many spikes a raster is drawn as a spike-count image: single
#: ticks would merge into solid bars anyway and take long to render.
MAX_RASTER_TICKS = 200_000

_DPI = 120


def figure_format(path: str | os.PathLike) -> str:
    """Return the figure format for ``path`` from its extension.

    Raises
    ------
    ParameterError
        If the extension is not one of ``.png``, ``.svg``, ``.pdf``.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FIGURE_FORMATS:
        raise ParameterError(
            "plot",
            f"figure file {os.fspath(path)!r} must end in .png, .svg or .pdf",
        )
    return FIGURE_FORMATS[ext]


def plot_raster(
    spikes: Any,
    unit_ids: Sequence | np.ndarray | str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    *,
    t_start: float | None = None,
    t_stop: float | None = None,
    title: str | None = None,
) -> None:
    """Draw a spike raster: one row of ticks per unit.

    Parameters
    ----------
    spikes : list of (n_i,) arrays, SpikeTrains or DenseSpikes
        Spike times in seconds per unit, or a data-model object holding them
        (a dense matrix gives a spike at ``t[k]`` for every non-zero bin).
    unit_ids : (N,) array_like, optional
        Labels of the units; defaults to the object's ``unit_ids`` or
        ``0 .. N-1``. A path here (with ``path`` omitted) is taken as the
        figure path, so ``plot_raster(trains, "raster.png")`` works.
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    t_start, t_stop : float, optional
        Time axis limits in seconds; default to the object's window or the
        spikes' range.
    title : str, optional
        Figure title.
    """
    if path is None and isinstance(unit_ids, str | os.PathLike):
        unit_ids, path = None, unit_ids
    if path is None:
        raise ParameterError("path", "a figure file path is required")
    fmt = figure_format(path)
    spike_times, ids, t_lo, t_hi = _spike_times_of(spikes, unit_ids)
    t_start = t_lo if t_start is None else t_start
    t_stop = t_hi if t_stop is None else t_stop
    n_units = len(spike_times)

    fig = Figure(figsize=(8.0, min(2.2 + 0.16 * n_units, 9.0)), layout="constrained")
    ax = fig.add_subplot()
    _draw_raster(fig, ax, spike_times, ids, t_start, t_stop)
    ax.set_title(title or f"spike raster, {n_units} units")
    _save(fig, path, fmt)


def plot_rates(
    t: Any,
    rates: Any,
    unit_ids: Sequence | np.ndarray | None,
    path: str | os.PathLike,
    *,
    max_rows: int = 2000,
    n_traces: int = 4,
    title: str | None = None,
) -> None:
    """Draw firing rates as a heat map (units x time) with a few traces.

    Long recordings are decimated for drawing by averaging blocks of
    consecutive time steps, read block by block, so ``t`` and ``rates`` may
    be lazily read arrays such as h5py datasets of any length.

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds.
    rates : (M, N) array_like
        Firing rates in Hz.
    unit_ids : (N,) array_like, optional
        Labels of the units (default ``0 .. N-1``).
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    max_rows : int
        Most time samples drawn; longer inputs are averaged in blocks.
    n_traces : int
        Number of units drawn as traces below the heat map, spread over the
        range of mean rates.
    title : str, optional
        Figure title.
    """
    fmt = figure_format(path)
    shape = tuple(getattr(rates, "shape", np.shape(rates)))
    if len(shape) == 1:
        rates = np.asarray(rates)[:, None]
        shape = rates.shape
    if len(shape) != 2:
        raise ParameterError("rates", f"must be 2-D (M, N), got shape {shape}")
    n_steps, n_units = shape
    if len(t) != n_steps:
        raise ParameterError(
            "t", f"has {len(t)} times but rates have {n_steps} rows (time steps)"
        )
    if n_steps == 0 or n_units == 0:
        raise ParameterError("rates", f"nothing to draw: shape {shape}")
    ids = _unit_ids(unit_ids, n_units)
    t_drawn, r_drawn, block = _block_means(t, rates, max_rows)
    # Width of one drawn column in seconds.
    dt = (float(t_drawn[-1]) - float(t_drawn[0])) / max(1, len(t_drawn) - 1)

    fig = Figure(figsize=(9.0, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(3.0, 1.7), width_ratios=(1, 0.025))
    ax_map = fig.add_subplot(grid[0, 0])
    ax_bar = fig.add_subplot(grid[0, 1])
    ax_tr = fig.add_subplot(grid[1, 0], sharex=ax_map)

    finite = r_drawn[np.isfinite(r_drawn)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    half = 0.5 * dt if len(t_drawn) > 1 else 0.5
    image = ax_map.imshow(
        r_drawn.T,
        aspect="auto",
        interpolation="nearest",
        origin="upper",
        extent=(
            float(t_drawn[0]) - half,
            float(t_drawn[-1]) + half,
            n_units - 0.5,
            -0.5,
        ),
        cmap="viridis",
        vmin=vmin,
        vmax=vmax,
    )
    clipped = finite.size and float(finite.max()) > vmax
    fig.colorbar(image, cax=ax_bar, extend="max" if clipped else "neither")
    ax_bar.set_ylabel("rate (Hz)")
    _unit_axis(ax_map, ids)
    ax_map.tick_params(labelbottom=False)
    note = ""
    if block > 1:
        step = float(t[1]) - float(t[0])
        note = f"; drawn as means over {block * step:.3g} s"
    ax_map.set_title(title or f"firing rates, {n_units} units{note}")

    picks = _spread_by_mean(r_drawn, n_traces)
    for j in picks:
        ax_tr.plot(t_drawn, r_drawn[:, j], lw=1.0, label=f"unit {ids[j]}")
    ax_tr.set_xlabel("time (s)")
    ax_tr.set_ylabel("rate (Hz)")
    ax_tr.set_xlim(float(t_drawn[0]) - half, float(t_drawn[-1]) + half)
    ax_tr.grid(alpha=0.3)
    # Above the panel, where it never hides a trace.
    ax_tr.legend(
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        fontsize="small",
        ncols=min(len(picks), 4),
        frameon=False,
        borderaxespad=0.2,
    )
    fig.add_subplot(grid[1, 1]).set_axis_off()
    _save(fig, path, fmt)


def plot_tuning(
    x: Any,
    rates: Any,
    path: str | os.PathLike,
    measured: Any = None,
    derivative: Any = None,
    *,
    max_curves: int = 40,
    title: str | None = None,
) -> None:
    """Draw tuning curves: rate against input, optionally with measurements.

    Parameters
    ----------
    x : (P,) array_like
        Input values (dimensionless, the ``x`` of ``J = gain * e * x + bias``).
    rates : (P, N) array_like
        Analytic firing rates in Hz.
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    measured : (P, N) array_like or tuple (x_measured, rates_measured), optional
        Rates in Hz counted from a simulation, drawn as markers on the curves.
    derivative : (P, N) array_like, optional
        d rate / dx in Hz per unit input, drawn in a second panel.
    max_curves : int
        Most neurons drawn; larger populations show an even subset.
    title : str, optional
        Figure title.
    """
    fmt = figure_format(path)
    x = np.asarray(x, dtype=np.float64)
    rates = _as_2d("rates", rates, len(x))
    n_units = rates.shape[1]
    picks = np.unique(np.linspace(0, n_units - 1, min(n_units, max_curves)).round())
    picks = picks.astype(int)
    colors = _colors(len(picks))

    n_panels = 2 if derivative is not None else 1
    fig = Figure(figsize=(7.5, 4.6 if n_panels == 1 else 7.2), layout="constrained")
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    for c, j in zip(colors, picks, strict=True):
        ax.plot(x, rates[:, j], color=c, lw=1.2)
    handles = [Line2D([], [], color="0.3", lw=1.2)]
    labels = ["analytic"]
    if measured is not None:
        if isinstance(measured, tuple):
            x_m = np.asarray(measured[0], dtype=np.float64)
            r_m = _as_2d("measured", measured[1], len(x_m))
        else:
            x_m, r_m = x, _as_2d("measured", measured, len(x))
        if r_m.shape[1] != n_units:
            raise ParameterError(
                "measured", f"has {r_m.shape[1]} neurons, rates have {n_units}"
            )
        # Thin the markers so dense x grids stay readable.
        every = max(1, math.ceil(len(x_m) / 41))
        for c, j in zip(colors, picks, strict=True):
            ax.plot(
                x_m[::every],
                r_m[::every, j],
                ls="none",
                marker="o",
                ms=3.5,
                mfc="none",
                mew=0.9,
                color=c,
            )
        handles.append(
            Line2D([], [], ls="none", marker="o", ms=3.5, mfc="none", color="0.3")
        )
        labels.append("measured (simulation)")
    if len(handles) > 1:
        ax.legend(handles, labels, loc="upper left", fontsize="small")
    ax.set_ylabel("rate (Hz)")
    ax.grid(alpha=0.3)
    shown = "" if len(picks) == n_units else f" ({len(picks)} of {n_units} shown)"
    ax.set_title(title or f"tuning curves, {n_units} neurons{shown}")
    if derivative is not None:
        d = _as_2d("derivative", derivative, len(x))
        for c, j in zip(colors, picks, strict=True):
            axes[1].plot(x, d[:, j], color=c, lw=1.2)
        axes[1].set_ylabel("d rate / dx (Hz per unit x)")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("input x")
    axes[-1].set_xlim(float(x.min()), float(x.max()))
    _save(fig, path, fmt)


def plot_simulation(
    t: Any,
    spike_times: Any,
    input: Any,
    path: str | os.PathLike,
    *,
    unit_ids: Sequence | np.ndarray | None = None,
    title: str | None = None,
) -> None:
    """Draw a simulation: the input signal above the spike raster it drives.

    Parameters
    ----------
    t : (M,) array_like
        Times of the input samples in seconds.
    spike_times : list of (n_i,) arrays, SpikeTrains or DenseSpikes
        The spikes, times in seconds.
    input : (M,) array_like
        Input signal ``x`` per step (dimensionless).
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    unit_ids : (N,) array_like, optional
        Labels of the neurons.
    title : str, optional
        Figure title.
    """
    fmt = figure_format(path)
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(input, dtype=np.float64)
    if x.shape != t.shape:
        raise ParameterError(
            "input", f"shape {x.shape} does not match the times' {t.shape}"
        )
    trains, ids, _, _ = _spike_times_of(spike_times, unit_ids)
    n_units = len(trains)
    dt = float(t[1] - t[0]) if len(t) > 1 else 0.0
    t_start, t_stop = float(t[0]) - dt, float(t[-1])

    fig = Figure(figsize=(8.0, min(3.6 + 0.16 * n_units, 10.0)), layout="constrained")
    ax_in, ax_r = fig.subplots(
        2,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": (1.0, max(1.5, min(0.12 * n_units, 5.0)))},
    )
    step = max(1, len(t) // 4000)
    ax_in.plot(t[::step], x[::step], color="tab:blue", lw=1.0)
    ax_in.set_ylabel("input x")
    ax_in.grid(alpha=0.3)
    ax_in.set_title(title or f"simulation, {n_units} neurons")
    _draw_raster(fig, ax_r, trains, ids, t_start, t_stop)
    ax_in.tick_params(labelbottom=False)
    _save(fig, path, fmt)


# -- drawing helpers ---------------------------------------------------------


def _draw_raster(fig, ax, spike_times, ids, t_start, t_stop) -> None:
    n_units = len(spike_times)
    n_spikes = sum(len(s) for s in spike_times)
    if n_spikes > MAX_RASTER_TICKS:
        n_bins = 1000
        edges = np.linspace(t_start, t_stop, n_bins + 1)
        counts = np.stack([np.histogram(s, bins=edges)[0] for s in spike_times])
        image = ax.imshow(
            counts,
            aspect="auto",
            interpolation="nearest",
            cmap="Greys",
            extent=(t_start, t_stop, n_units - 0.5, -0.5),
        )
        bin_ms = 1e3 * (t_stop - t_start) / n_bins
        fig.colorbar(image, ax=ax, label=f"spikes per {bin_ms:.3g} ms bin", pad=0.01)
    else:
        segments = [
            np.stack(
                [
                    np.column_stack([s, np.full(len(s), j - 0.38)]),
                    np.column_stack([s, np.full(len(s), j + 0.38)]),
                ],
                axis=1,
            )
            for j, s in enumerate(spike_times)
            if len(s)
        ]
        lines = np.concatenate(segments) if segments else np.empty((0, 2, 2))
        lw = 0.9 if n_spikes < 5000 else 0.5
        ax.add_collection(LineCollection(lines, colors="black", linewidths=lw))
        ax.set_ylim(n_units - 0.5, -0.5)
    ax.set_xlim(t_start, t_stop)
    ax.set_xlabel("time (s)")
    _unit_axis(ax, ids)


def _unit_axis(ax, ids: np.ndarray) -> None:
    """Label rows with unit ids: all of them when few, else a readable subset."""
    n_units = len(ids)
    ax.set_ylabel("unit")
    if n_units <= 25:
        ax.set_yticks(np.arange(n_units), [str(u) for u in ids])
        if n_units > 12:
            ax.tick_params(axis="y", labelsize="small")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.yaxis.set_major_formatter(
            FuncFormatter(
                lambda v, _: str(ids[int(v)]) if 0 <= int(v) < n_units else ""
            )
        )


def _spread_by_mean(rates: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` units spread from the most to the least active."""
    n_units = rates.shape[1]
    means = np.nan_to_num(np.nanmean(rates, axis=0)) if rates.size else np.zeros(0)
    order = np.argsort(-means, kind="stable")
    picks = np.unique(np.linspace(0, n_units - 1, min(n, n_units)).round().astype(int))
    return [int(order[p]) for p in picks]


def _colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](v) for v in np.linspace(0.0, 0.95, n)]


# -- data helpers ------------------------------------------------------------


def _spike_times_of(spikes: Any, unit_ids: Any):
    """Spike times per unit, unit ids and the time range from any spike input."""
    t_lo = t_hi = None
    if hasattr(spikes, "amplitude_chunk"):
        # Dense matrix (possibly lazily read): collect the times of non-zero bins.
        t = np.asarray(spikes.t, dtype=np.float64)
        n_units = int(spikes.n_units)
        pieces: list[list[np.ndarray]] = [[] for _ in range(n_units)]
        step = max(1, (1 << 22) // max(1, n_units))
        for k0 in range(0, len(t), step):
            chunk = np.asarray(spikes.amplitude_chunk(k0, min(k0 + step, len(t))))
            units, rows = np.nonzero(chunk.T)
            bounds = np.searchsorted(units, np.arange(n_units + 1))
            for j in range(n_units):
                pieces[j].append(t[k0 + rows[bounds[j] : bounds[j + 1]]])
        times = [np.concatenate(p) if p else np.empty(0) for p in pieces]
        dt = float(t[1] - t[0]) if len(t) > 1 else 0.0
        t_lo, t_hi = float(t[0]) - dt, float(t[-1])
        default_ids = getattr(spikes, "unit_ids", None)
    elif hasattr(spikes, "spike_times"):
        times = [np.asarray(s, dtype=np.float64) for s in spikes.spike_times]
        t_lo, t_hi = getattr(spikes, "t_start", None), getattr(spikes, "t_stop", None)
        default_ids = getattr(spikes, "unit_ids", None)
    else:
        times = [np.asarray(s, dtype=np.float64).ravel() for s in spikes]
        default_ids = None
    ids = _unit_ids(unit_ids if unit_ids is not None else default_ids, len(times))
    if t_lo is None or t_hi is None:
        nonempty = [s for s in times if len(s)]
        lo = min(float(s.min()) for s in nonempty) if nonempty else 0.0
        hi = max(float(s.max()) for s in nonempty) if nonempty else 1.0
        t_lo = min(0.0, lo) if t_lo is None else t_lo
        t_hi = hi if t_hi is None else t_hi
    if t_hi <= t_lo:
        t_hi = t_lo + 1.0
    return times, ids, float(t_lo), float(t_hi)


def _unit_ids(unit_ids: Any, n_units: int) -> np.ndarray:
    if unit_ids is None:
        return np.arange(n_units)
    ids = np.asarray(unit_ids)
    if ids.shape != (n_units,):
        raise ParameterError(
            "unit_ids", f"has shape {ids.shape}, expected ({n_units},)"
        )
    return ids


def _as_2d(name: str, values: Any, n_rows: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise ParameterError(name, f"must have shape ({n_rows}, N), got {values.shape}")
    return values


class BlockMeans:
    """Means of blocks of consecutive rows, fed one chunk of rows at a time.

    Long rate matrices are drawn as at most ``max_rows`` rows: every
    ``block = ceil(n_rows / max_rows)`` consecutive rows (time steps) are
    averaged, the last block possibly shorter. Memory is that of the result,
    whatever ``n_rows``, so a figure of a streamed or lazily read matrix
    stays small.

    Parameters
    ----------
    n_rows : int
        Number of rows M that will be added.
    n_units : int
        Number of columns N.
    max_rows : int
        Most rows kept (>= 1).
    """

    def __init__(self, n_rows: int, n_units: int, max_rows: int = 2000) -> None:
        self.n_rows = int(n_rows)
        self.block = max(1, math.ceil(self.n_rows / max(1, int(max_rows))))
        n_out = math.ceil(self.n_rows / self.block)
        self._t_sum = np.zeros(n_out)
        self._r_sum = np.zeros((n_out, int(n_units)))
        self._count = np.zeros(n_out)
        self.rows_added = 0

    def add(self, t_chunk: Any, values: Any) -> None:
        """Add the next rows: times (L,) in seconds and values (L, N)."""
        t_chunk = np.asarray(t_chunk, dtype=np.float64).reshape(-1)
        n = t_chunk.size
        if n == 0:
            return
        if self.rows_added + n > self.n_rows:
            raise ParameterError(
                "values",
                f"{self.rows_added + n} rows added to block means of {self.n_rows}",
            )
        values = np.asarray(values, dtype=np.float64).reshape(n, -1)
        which = (self.rows_added + np.arange(n)) // self.block
        starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
        blocks = which[starts]
        self._t_sum[blocks] += np.add.reduceat(t_chunk, starts)
        self._r_sum[blocks] += np.add.reduceat(values, starts, axis=0)
        self._count[blocks] += np.diff(np.r_[starts, n])
        self.rows_added += n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean time (K,) and mean values (K, N) of each block added so far."""
        filled = self._count > 0
        count = self._count[filled]
        return self._t_sum[filled] / count, self._r_sum[filled] / count[:, None]


def _block_means(t: Any, rates: Any, max_rows: int):
    """Block means of ``rates`` (and ``t``), read one group of blocks at a time.

    A lazily read dataset of any length is drawn in bounded memory.
    """
    n_steps, n_units = rates.shape
    means = BlockMeans(n_steps, n_units, max_rows)
    # Read whole blocks in groups of about 2**22 values.
    per_read = max(1, (1 << 22) // max(1, means.block * n_units)) * means.block
    for k0 in range(0, n_steps, per_read):
        k1 = min(k0 + per_read, n_steps)
        means.add(t[k0:k1], rates[k0:k1])
    t_out, r_out = means.result()
    return t_out, r_out, means.block


def _save(fig: Figure, path: str | os.PathLike, fmt: str) -> None:
    """Write ``fig`` atomically: a temporary file beside ``path``, then rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    # A fresh name opened exclusively keeps the umask's permissions, unlike mkstemp.
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format=fmt, dpi=_DPI)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
