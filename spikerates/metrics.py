"""Per-unit metrics computed from spike times alone.

Every function takes a :class:`~spikerates.spiketrains.SpikeTrains` and
returns one value per unit, in the units' order. The metrics are those of
spike-sorting quality control and spike-train statistics:

* ``num_spikes``: spikes inside the observed time;
* ``firing_rate``: ``num_spikes`` over the observed duration, in Hz;
* ``presence_ratio``: fraction of full ``presence_bin`` bins holding at
  least one spike (SpikeInterface's definition);
* ``isi_violations_ratio`` and ``isi_violations_count``: inter-spike
  intervals shorter than a refractory threshold (Hill et al. 2011, as
  SpikeInterface computes them);
* ``cv``: standard deviation over mean of the inter-spike intervals;
* ``cv2``: mean of ``2 |I[i+1] - I[i]| / (I[i+1] + I[i])`` (Holt et al. 1996);
* ``lv``: mean of ``3 ((I[i] - I[i+1]) / (I[i] + I[i+1]))**2`` (Shinomoto
  et al. 2003);
* ``fano_factor``: variance over mean of the spike counts in consecutive
  windows of ``fano_window`` seconds.

**Observed time.** A unit is observed over its ``obs_intervals`` when the
data has them, clipped to the recording window ``t_start..t_stop`` when the
source states one; otherwise over that window; otherwise (no window stated)
over the first to the last spike of *all* units, so that a quiet unit is not
credited with a shorter recording. An end of the window that the source
leaves unstated comes from the spikes in the same way. Spikes outside the
observed time are left out of every metric, and an inter-spike interval that
spans a gap between two observation intervals is not an interval of the
train: intervals are taken within each observation interval only.

Units with too few spikes for a metric get NaN (two intervals, i.e. three
spikes, for ``cv``, ``cv2`` and ``lv``; one spike for the ISI-violation
ratio; two full windows and at least one spike in them for ``fano_factor``;
one full bin for ``presence_ratio``). A unit observed over no time at all has
a NaN ``firing_rate``; an observed unit without spikes has a rate of 0 and a
presence ratio of 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerates.errors import ParameterError
from spikerates.spiketrains import SpikeTrains

__all__ = [
    "METRIC_NAMES",
    "SUMMARY_NAMES",
    "UnitTable",
    "compute_metrics",
    "concat_tables",
    "observed_intervals",
    "summarize",
]

#: Metric columns of :func:`compute_metrics`, in output order.
METRIC_NAMES = (
    "num_spikes",
    "firing_rate",
    "presence_ratio",
    "isi_violations_ratio",
    "isi_violations_count",
    "cv",
    "cv2",
    "lv",
    "fano_factor",
)

#: Columns of :func:`summarize`, in output order.
SUMMARY_NAMES = (
    "unit_id",
    "label",
    "num_spikes",
    "first_spike",
    "last_spike",
    "observed_duration",
    "firing_rate",
)


@dataclass
class UnitTable:
    """A table with one row per unit, as plain column arrays.

    Parameters
    ----------
    columns : dict of str to ndarray
        Column name to a 1-D array of length ``n_rows``, in display order.
    attrs : dict
        Parameters the table was computed with (plain numbers and strings),
        for writers that keep metadata.
    """

    columns: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {np.asarray(c).shape[0] for c in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")

    @property
    def n_rows(self) -> int:
        """Number of rows (units)."""
        for col in self.columns.values():
            return int(np.asarray(col).shape[0])
        return 0

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return list(self.columns)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts of plain Python values (NaN stays a float NaN)."""
        out = []
        cols = {k: np.asarray(v) for k, v in self.columns.items()}
        for i in range(self.n_rows):
            out.append({k: v[i].item() for k, v in cols.items()})
        return out


def concat_tables(tables: Sequence[UnitTable], files: Sequence[str]) -> UnitTable:
    """Stack tables of several inputs into one, with a leading ``file`` column.

    Parameters
    ----------
    tables : sequence of UnitTable
        Tables to stack; a column missing from some (a label column one
        format has and another lacks) is filled with ``""`` for text and NaN
        for numbers.
    files : sequence of str
        The input each table came from, one per table.

    Returns
    -------
    UnitTable
        Columns in order of first appearance; a column mixing text and
        numbers across inputs (unit ids) becomes text. ``attrs`` are the
        first table's.
    """
    if len(tables) != len(files):
        raise ValueError("one file name per table is needed")
    if not tables:
        return UnitTable({"file": np.zeros(0, dtype=str)})
    names: list[str] = []
    for tab in tables:
        names += [n for n in tab.names if n not in names]
    columns: dict[str, np.ndarray] = {
        "file": np.concatenate(
            [
                np.full(t.n_rows, f, dtype=object)
                for t, f in zip(tables, files, strict=True)
            ]
        ).astype(str)
    }
    for name in names:
        present = [np.asarray(t.columns[name]) for t in tables if name in t.columns]
        text = any(p.dtype.kind in "USO" for p in present)
        parts = []
        for tab in tables:
            if name in tab.columns:
                part = np.asarray(tab.columns[name])
            elif text:
                part = np.full(tab.n_rows, "", dtype=str)
            else:
                part = np.full(tab.n_rows, np.nan)
            parts.append(part.astype(str) if text else part)
        columns[name] = np.concatenate(parts)
    return UnitTable(columns, dict(tables[0].attrs))


# -- observed time -------------------------------------------------------------


def _window(trains: SpikeTrains) -> tuple[float, float] | None:
    """The recording window: the stated ends, else the spikes' extremes."""
    lo, hi = trains.t_start, trains.t_stop
    if lo is None or hi is None:
        firsts = [t[0] for t in trains.spike_times if t.size]
        lasts = [t[-1] for t in trains.spike_times if t.size]
        if lo is None:
            lo = min(firsts) if firsts else (hi if hi is not None else None)
        if hi is None:
            hi = max(lasts) if lasts else lo
    if lo is None or hi is None:
        return None
    return float(lo), float(max(hi, lo))


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping union of ``[start, stop]`` rows, shape (K, 2)."""
    if intervals.shape[0] <= 1:
        return intervals.reshape(-1, 2)
    iv = intervals[np.argsort(intervals[:, 0], kind="stable")]
    stops = np.maximum.accumulate(iv[:, 1])
    # A new run starts where an interval begins after every earlier stop.
    starts_run = np.r_[True, iv[1:, 0] > stops[:-1]]
    first = np.flatnonzero(starts_run)
    last = np.r_[first[1:] - 1, iv.shape[0] - 1]
    return np.column_stack([iv[first, 0], stops[last]])


def observed_intervals(trains: SpikeTrains) -> list[np.ndarray]:
    """Where each unit is observed, following the module's rule.

    Parameters
    ----------
    trains : SpikeTrains

    Returns
    -------
    list of ndarray
        Per unit, sorted non-overlapping ``[start, stop]`` rows in seconds,
        shape (K, 2); K = 0 when the unit is never observed (no window and no
        spikes at all).
    """
    window = _window(trains)
    stated = trains.t_start is not None or trains.t_stop is not None
    out = []
    for i in range(trains.n_units):
        if trains.obs_intervals is not None:
            iv = _merge(np.asarray(trains.obs_intervals[i], dtype=np.float64))
            if stated and window is not None:
                lo = window[0] if trains.t_start is not None else -np.inf
                hi = window[1] if trains.t_stop is not None else np.inf
                iv = np.column_stack(
                    [np.maximum(iv[:, 0], lo), np.minimum(iv[:, 1], hi)]
                )
                iv = iv[iv[:, 1] >= iv[:, 0]]
        elif window is None:
            iv = np.zeros((0, 2))
        else:
            iv = np.array([window], dtype=np.float64)
        out.append(iv.reshape(-1, 2))
    return out


# Spikes per batch of units whose interval statistics are computed on one flat
# concatenation (bounds memory on long recordings; few numpy calls per batch).
_BATCH_SPIKES = 1 << 20


def _observed_spikes(
    times: np.ndarray, iv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The spikes of one unit inside its observation intervals (closed), and
    the interval (row of ``iv``) each is in."""
    if iv.shape[0] == 1:
        lo = np.searchsorted(times, iv[0, 0], side="left")
        hi = np.searchsorted(times, iv[0, 1], side="right")
        return times[lo:hi], np.zeros(hi - lo, dtype=np.int64)
    if iv.shape[0] == 0:
        return times[:0], np.zeros(0, dtype=np.int64)
    j = np.searchsorted(iv[:, 0], times, side="right") - 1
    inside = (j >= 0) & (times <= iv[np.maximum(j, 0), 1])
    return times[inside], j[inside].astype(np.int64)


def _full_bin_counts(times: np.ndarray, iv: np.ndarray, width: float) -> np.ndarray:
    """Spike counts in the full bins of ``width`` seconds that tile each
    observation interval from its start; a trailing partial bin is left out.

    Bins are closed on the left, and the last full bin of an interval also
    holds a spike on its right edge (``numpy.histogram``'s rule). ``times``
    are sorted; the result has one count per full bin, interval after
    interval (int64).
    """
    parts = []
    for a, b in iv:
        ratio = (b - a) / width
        # Snap, so that an interval of exactly k bins has k despite rounding.
        k = int(np.floor(ratio + 1e-9 * max(1.0, ratio)))
        if k <= 0:
            continue
        edges = a + width * np.arange(k + 1)
        pos = np.searchsorted(times, edges, side="left")
        pos[-1] = np.searchsorted(times, edges[-1], side="right")
        parts.append(np.diff(pos))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _range_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sums of ``values[offsets[u]:offsets[u+1]]`` (clipped to its length).

    The ranges are contiguous, so the non-empty ones are exactly the
    stretches between consecutive non-empty starts (``numpy.add.reduceat``).
    """
    n = values.size
    starts = np.minimum(offsets[:-1], n)
    ends = np.minimum(offsets[1:], n)
    out = np.zeros(starts.size)
    nonempty = ends > starts
    if np.any(nonempty):
        out[nonempty] = np.add.reduceat(values, starts[nonempty])
    return out


def _interval_stats(
    times: np.ndarray,
    offsets: np.ndarray,
    segment: np.ndarray,
    isi_threshold: float,
) -> dict[str, np.ndarray]:
    """ISI statistics of a batch of units from their flat observed spikes.

    Unit ``u`` holds the spikes ``offsets[u]:offsets[u+1]``; ``segment``
    numbers the observation intervals uniquely over the batch, so intervals
    are only taken between consecutive spikes of one unit and one segment.
    Every statistic is a sum over a unit's range of the flat arrays, with
    the entries that are not intervals of the unit set to 0.
    """
    n_units = offsets.size - 1
    isi = np.diff(times)
    same = segment[1:] == segment[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        n_isi = _range_sums(same.astype(np.float64), offsets)
        violations = _range_sums(
            (same & (isi < isi_threshold)).astype(np.float64), offsets
        )
        mean_isi = _range_sums(np.where(same, isi, 0.0), offsets) / n_isi
        # Population standard deviation (ddof = 0), in two passes for accuracy
        # on regular trains.
        spike_mean = np.repeat(mean_isi, np.diff(offsets))[:-1]
        dev = np.where(same, isi - spike_mean, 0.0)
        var_isi = _range_sums(dev * dev, offsets) / n_isi
        cv = np.where(n_isi >= 2, np.sqrt(var_isi) / mean_isi, np.nan)
        pair = same[1:] & same[:-1]
        first, second = isi[:-1], isi[1:]
        total = first + second
        # Two zero intervals (repeated spike times) vary by nothing.
        ok = pair & (total > 0)
        local = np.where(ok, (second - first) / np.where(ok, total, 1.0), 0.0)
        n_pairs = _range_sums(pair.astype(np.float64), offsets)
        cv2 = 2.0 * _range_sums(np.abs(local), offsets) / n_pairs
        lv = 3.0 * _range_sums(local * local, offsets) / n_pairs
    return {
        "isi_violations_count": np.rint(violations).astype(np.int64).reshape(n_units),
        "cv": cv,
        "cv2": np.where(n_pairs > 0, cv2, np.nan),
        "lv": np.where(n_pairs > 0, lv, np.nan),
    }


def _unit_batches(n_spikes: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive unit ranges holding about ``_BATCH_SPIKES`` spikes each."""
    out, i0, held = [], 0, 0
    for i, n in enumerate(n_spikes):
        if held and held + n > _BATCH_SPIKES:
            out.append((i0, i))
            i0, held = i, 0
        held += int(n)
    if i0 < len(n_spikes):
        out.append((i0, len(n_spikes)))
    return out


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ParameterError(
            name, f"must be a finite number of seconds > 0, got {value:g}"
        )
    return value


def compute_metrics(
    trains: SpikeTrains,
    *,
    presence_bin: float = 60.0,
    isi_threshold: float = 0.0015,
    min_isi: float = 0.0,
    fano_window: float = 1.0,
) -> UnitTable:
    """Quality and variability metrics of every unit.

    Parameters
    ----------
    trains : SpikeTrains
        The units; observed time follows the module's rule.
    presence_bin : float
        Bin width of ``presence_ratio``, seconds (> 0).
    isi_threshold : float
        Refractory threshold of the ISI violations, seconds (> 0): an
        interval shorter than this is a violation.
    min_isi : float
        Shortest interval the recording system can produce (censored
        period), seconds, ``0 <= min_isi < isi_threshold``.
    fano_window : float
        Counting window of ``fano_factor``, seconds (> 0).

    Returns
    -------
    UnitTable
        Columns ``cluster_id`` (the unit ids), ``label`` when the data has
        labels, then :data:`METRIC_NAMES`; ``attrs`` holds the parameters.
        ``num_spikes`` and ``isi_violations_count`` are int64, the rest
        float64 (NaN where a unit has too few spikes).

    Notes
    -----
    With ``n`` observed spikes over ``T`` seconds and ``v`` intervals below
    ``isi_threshold``, ``isi_violations_ratio = v T / (2 n**2 (isi_threshold
    - min_isi))``, the rate of violations relative to the rate a
    contaminating Poisson process would produce (Hill et al. 2011).
    """
    presence_bin = _check_positive("presence_bin", presence_bin)
    isi_threshold = _check_positive("isi_threshold", isi_threshold)
    fano_window = _check_positive("fano_window", fano_window)
    min_isi = float(min_isi)
    if not (np.isfinite(min_isi) and 0 <= min_isi < isi_threshold):
        raise ParameterError(
            "min_isi",
            f"must be >= 0 and below isi_threshold ({isi_threshold:g} s), "
            f"got {min_isi:g}",
        )
    intervals = observed_intervals(trains)
    n_units = trains.n_units
    durations = np.array(
        [float(np.sum(iv[:, 1] - iv[:, 0])) for iv in intervals], dtype=np.float64
    ).reshape(-1)
    counts = np.zeros(n_units, dtype=np.int64)
    presence = np.full(n_units, np.nan)
    fano = np.full(n_units, np.nan)
    stats = {
        "isi_violations_count": np.zeros(n_units, dtype=np.int64),
        "cv": np.full(n_units, np.nan),
        "cv2": np.full(n_units, np.nan),
        "lv": np.full(n_units, np.nan),
    }
    sizes = np.fromiter(
        (t.size for t in trains.spike_times), dtype=np.int64, count=n_units
    )
    for u0, u1 in _unit_batches(sizes):
        times, segments = [], []
        seg_base = 0
        for i in range(u0, u1):
            kept, seg = _observed_spikes(trains.spike_times[i], intervals[i])
            counts[i] = kept.size
            times.append(kept)
            segments.append(seg + seg_base)
            seg_base += intervals[i].shape[0]
            bins = _full_bin_counts(kept, intervals[i], presence_bin)
            if bins.size:
                presence[i] = np.count_nonzero(bins) / bins.size
            windows = _full_bin_counts(kept, intervals[i], fano_window).astype(float)
            if windows.size >= 2 and windows.sum() > 0:
                mean = windows.mean()
                fano[i] = np.mean((windows - mean) ** 2) / mean
        batch = _interval_stats(
            np.concatenate(times),
            np.concatenate([[0], np.cumsum(counts[u0:u1])]),
            np.concatenate(segments),
            isi_threshold,
        )
        for name, values in batch.items():
            stats[name][u0:u1] = values
    violations = stats["isi_violations_count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        firing_rate = np.where(durations > 0, counts / durations, np.nan)
        ratio = violations * durations / (2.0 * counts**2 * (isi_threshold - min_isi))
        ratio = np.where((counts > 0) & (durations > 0), ratio, np.nan)
    cv, cv2, lv = stats["cv"], stats["cv2"], stats["lv"]

    columns: dict[str, np.ndarray] = {"cluster_id": trains.unit_ids.copy()}
    if trains.labels is not None:
        columns[trains.label_column or "label"] = trains.labels.astype(str)
    columns.update(
        num_spikes=counts,
        firing_rate=firing_rate.astype(np.float64),
        presence_ratio=presence.astype(np.float64),
        isi_violations_ratio=ratio.astype(np.float64),
        isi_violations_count=violations,
        cv=cv.astype(np.float64),
        cv2=cv2.astype(np.float64),
        lv=lv.astype(np.float64),
        fano_factor=fano.astype(np.float64),
    )
    attrs = {
        "presence_bin": presence_bin,
        "isi_threshold": isi_threshold,
        "min_isi": min_isi,
        "fano_window": fano_window,
    }
    return UnitTable(columns, attrs)


def summarize(trains: SpikeTrains) -> UnitTable:
    """What :command:`spikerates info` shows per unit, from spike times only.

    Parameters
    ----------
    trains : SpikeTrains

    Returns
    -------
    UnitTable
        Columns :data:`SUMMARY_NAMES`: ``unit_id``; ``label`` (empty text
        when the data has none); ``num_spikes`` (every spike of the unit,
        int64); ``first_spike`` and ``last_spike`` in seconds (NaN for an
        empty unit); ``observed_duration`` in seconds (the module's rule);
        ``firing_rate`` in Hz, the observed spikes over the observed
        duration. ``attrs`` holds ``t_start``/``t_stop`` of the window used.
    """
    n_units = trains.n_units
    counts = np.fromiter(
        (t.size for t in trains.spike_times), dtype=np.int64, count=n_units
    )
    nonempty = counts > 0
    first = np.full(n_units, np.nan)
    last = np.full(n_units, np.nan)
    if n_units:
        first[nonempty] = [
            t[0] for t, ok in zip(trains.spike_times, nonempty, strict=True) if ok
        ]
        last[nonempty] = [
            t[-1] for t, ok in zip(trains.spike_times, nonempty, strict=True) if ok
        ]
    intervals = observed_intervals(trains)
    durations = np.array(
        [float(np.sum(iv[:, 1] - iv[:, 0])) for iv in intervals], dtype=np.float64
    ).reshape(-1)
    if trains.obs_intervals is None:
        window = _window(trains)
        inside = counts.copy()
        if window is not None and (
            trains.t_start is not None or trains.t_stop is not None
        ):
            lo, hi = window
            inside = np.array(
                [
                    np.searchsorted(t, hi, side="right") - np.searchsorted(t, lo)
                    for t in trains.spike_times
                ],
                dtype=np.int64,
            ).reshape(-1)
    else:
        inside = np.array(
            [
                _observed_spikes(t, iv)[0].size
                for t, iv in zip(trains.spike_times, intervals, strict=True)
            ],
            dtype=np.int64,
        ).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(
            durations > 0, inside / np.where(durations > 0, durations, 1), np.nan
        )
    labels = (
        trains.labels.astype(str)
        if trains.labels is not None
        else np.full(n_units, "", dtype=str)
    )
    window = _window(trains)
    attrs: dict[str, Any] = {}
    if window is not None:
        attrs = {"t_start": window[0], "t_stop": window[1]}
    return UnitTable(
        {
            "unit_id": trains.unit_ids.copy(),
            "label": labels,
            "num_spikes": counts,
            "first_spike": first,
            "last_spike": last,
            "observed_duration": durations,
            "firing_rate": rate.astype(np.float64),
        },
        attrs,
    )
