"""Figures of the analyses: unit-metric distributions and PSTHs.

Like :mod:`spikerates.plot`, figures are drawn on
:class:`matplotlib.figure.Figure` objects without pyplot state, in the
format of the file's extension (``.png``, ``.svg``, ``.pdf``), and written
atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikerates.errors import ParameterError
from spikerates.io.atomic import atomic_output
from spikerates.metrics import METRIC_NAMES, UnitTable
from spikerates.plot import figure_format
from spikerates.psth import PSTH

__all__ = ["plot_metric_distributions", "plot_psth"]

_DPI = 120

#: Units drawn with their bands in a PSTH figure, by default.
PSTH_TRACES = 4


def _save(fig: Figure, path: str | os.PathLike, fmt: str) -> None:
    with atomic_output(path, as_path=True) as tmp:
        fig.savefig(tmp, format=fmt, dpi=_DPI)


def plot_metric_distributions(
    table: UnitTable,
    path: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Histogram of each metric over units, one panel per metric.

    Parameters
    ----------
    table : UnitTable
        From :func:`spikerates.metrics.compute_metrics` (or several stacked).
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    names : sequence of str, optional
        Metrics to draw; default every metric column present. NaN values
        are left out and counted in the panel's title.
    title : str, optional
        Figure title.
    """
    fmt = figure_format(path)
    if names is None:
        names = [n for n in METRIC_NAMES if n in table.columns]
    for name in names:
        if name not in table.columns:
            raise ParameterError("names", f"no metric column {name!r} in the table")
    n = max(len(names), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 2.6 * rows + 0.5), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        values = np.asarray(table.columns[name], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            ax.hist(finite, bins=min(30, max(5, int(np.sqrt(finite.size)) + 1)))
        missing = values.size - finite.size
        ax.set_title(name + (f" ({missing} NaN)" if missing else ""), fontsize=9)
        ax.set_ylabel("units", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(title or f"unit metrics, {table.n_rows} units")
    _save(fig, path, fmt)


def plot_psth(
    psth: PSTH,
    path: str | os.PathLike,
    *,
    units: Sequence[Any] | None = None,
    title: str | None = None,
) -> None:
    """PSTH traces with bands for a few units and a heat map of every unit.

    Parameters
    ----------
    psth : PSTH
        From :func:`spikerates.psth.compute_psth`.
    path : str or os.PathLike
        Figure file, ``.png``, ``.svg`` or ``.pdf``.
    units : sequence, optional
        Unit ids to draw as traces; default the :data:`PSTH_TRACES` units
        with the most trials and the highest mean rate.
    title : str, optional
        Figure title.

    Notes
    -----
    One column per group: on top, each chosen unit's mean rate with its
    bootstrap band (lines at the grid times, events at 0); below, the mean
    PSTH of every unit, rows sorted by the time of their peak, each row
    scaled to its own peak.
    """
    fmt = figure_format(path)
    ids = [str(u) for u in psth.unit_ids.tolist()]
    if units is None:
        overall = np.nanmean(psth.mean, axis=(0, 1)) if psth.mean.size else np.zeros(0)
        score = np.where(np.isfinite(overall), overall, -np.inf)
        chosen = list(np.argsort(-score, kind="stable")[:PSTH_TRACES])
    else:
        index = {u: i for i, u in enumerate(ids)}
        missing = [str(u) for u in units if str(u) not in index]
        if missing:
            raise ParameterError("units", f"no unit with id {', '.join(missing)}")
        chosen = [index[str(u)] for u in units]
    n_groups = len(psth.groups)
    fig = Figure(figsize=(4.2 * n_groups + 0.8, 6.5), layout="constrained")
    t = psth.t
    for g, group in enumerate(psth.groups):
        ax = fig.add_subplot(2, n_groups, g + 1)
        for i in chosen:
            (line,) = ax.plot(t, psth.mean[g, :, i], lw=1.2, label=f"unit {ids[i]}")
            ax.fill_between(
                t,
                psth.ci_low[g, :, i],
                psth.ci_high[g, :, i],
                color=line.get_color(),
                alpha=0.25,
                lw=0,
            )
        ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
        ax.set_title(f"{group}" if n_groups > 1 else "PSTH", fontsize=10)
        ax.set_ylabel("rate (Hz)")
        if chosen:
            ax.legend(fontsize=7, loc="upper right")
        heat = fig.add_subplot(2, n_groups, n_groups + g + 1)
        mean = psth.mean[g].T  # (N, M)
        peak = np.nanmax(np.where(np.isfinite(mean), mean, -np.inf), axis=1)
        has = np.isfinite(peak) & (peak > 0)
        order = np.argsort(
            np.where(has, np.argmax(np.nan_to_num(mean, nan=-1.0), axis=1), t.size),
            kind="stable",
        )
        scaled = np.where(
            has[:, None], mean / np.where(has, peak, 1.0)[:, None], np.nan
        )
        dt = psth.attrs.get("dt", (t[1] - t[0]) if t.size > 1 else 1.0)
        image = heat.imshow(
            scaled[order],
            aspect="auto",
            interpolation="nearest",
            origin="upper",
            extent=(t[0] - dt, t[-1], scaled.shape[0], 0) if t.size else None,
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
        )
        heat.axvline(0.0, color="w", lw=0.8, ls="--")
        heat.set_xlabel("time from event (s)")
        heat.set_ylabel("unit (by peak time)")
    fig.colorbar(image, ax=heat, label="rate / peak", shrink=0.8)
    fig.suptitle(title or f"PSTH, {psth.unit_ids.size} units")
    _save(fig, path, fmt)
