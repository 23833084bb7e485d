"""The data model: spike times per unit, the time grid, and dense spike matrices.

Two layouts hold the same spikes:

* **events** (:class:`SpikeTrains`): one sorted array of spike times (seconds)
  per unit, with unit ids;
* **dense** (:class:`DenseSpikes`): a time grid ``t`` (M,) and a matrix
  ``spikes`` (M, N) whose rows are time steps and columns units, holding
  either spike counts per bin or amplitudes of ``1/dt`` per spike.

The grid for events is ``t[k] = t_start + (k + 1) * dt`` for ``k = 0..M-1``
and a spike at ``s`` falls in bin ``k`` when ``t[k] - dt < s <= t[k]``. A
spike within ``1e-9 * dt`` of a grid time belongs to that grid time's bin, so
binning never depends on how a time was rounded. Because of this rule,
dense -> events -> dense is the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerates.errors import ParameterError, SpikeDataError
from spikerates.names import VALUE_MODES
from spikerates.params import Integer, positive_seconds

__all__ = [
    "VALUE_MODES",
    "DenseSpikes",
    "Grid",
    "SpikeTrains",
    "bin_index",
    "bin_spikes",
    "count_outside",
    "decide_values",
    "dense_to_events",
    "events_to_dense",
    "normalize_unit_ids",
    "ragged_to_trains",
    "snap_to_grid",
    "trains_to_ragged",
]

#: Tolerance, in units of ``dt``, within which a time counts as a grid time.
SNAP = 1e-9


#: Relative tolerance of the ``values="auto"`` test and of uniform steps.
RTOL = 1e-6

#: Spikes binned together, on average, by :func:`iter_spike_chunks` (a few
#: arrays of this many values).
BATCH_SPIKES = 1 << 16

# Values read at a time when a dense matrix is scanned by row blocks, so that
# memory stays bounded on lazily read HDF5 datasets.
_BLOCK_VALUES = 1 << 22


def normalize_unit_ids(ids: Any, n_units: int | None = None) -> np.ndarray:
    """Unit ids as a 1-D array: int64 for integer ids, str for anything else.

    Parameters
    ----------
    ids : array_like or None
        Unit ids, or None for ``0..n_units-1``.
    n_units : int, optional
        Number of units, used when ``ids`` is None.

    Returns
    -------
    ndarray, shape (N,)
        int64 when every id is an integer (floats with integral values
        included), otherwise unicode strings (bytes are decoded as UTF-8).
    """
    if ids is None:
        return np.arange(0 if n_units is None else n_units, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    arr = arr.ravel()
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            return arr.astype(str)
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if arr.size == 0:
            return arr.astype(np.int64)
        if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            if np.all(np.abs(arr) < 2.0**62):
                return arr.astype(np.int64)
        return np.array([repr(float(v)) for v in arr], dtype=str)
    if arr.dtype.kind == "S":
        return np.array([_utf8(v) for v in arr], dtype=str)
    if arr.dtype.kind == "O":
        out = []
        for v in arr:
            if isinstance(v, bytes):
                v = _utf8(v)
            out.append(v)
        if out and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in out
        ):
            return np.array(out, dtype=np.int64)
        return np.array([str(v) for v in out], dtype=str)
    return arr.astype(str)


def _utf8(value: bytes) -> str:
    """Text of an id or label stored as bytes, which must be UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise SpikeDataError(
            f"unit ids or labels hold text that is not UTF-8 ({value[:20]!r})"
        ) from None


def _id_key(value: Any) -> str:
    """Canonical text of a unit id, so ``"3"`` from a command line matches 3."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        if np.isfinite(number) and number == round(number):
            return str(int(number))
        return text
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _select_mask(
    unit_ids: np.ndarray, wanted: Iterable[Any], source: str | None
) -> np.ndarray:
    """Boolean mask over ``unit_ids`` of the ids in ``wanted`` (all must exist)."""
    if isinstance(wanted, str | bytes | int | np.integer):
        wanted = [wanted]
    keys = [_id_key(u) for u in unit_ids]
    index = {k: i for i, k in enumerate(keys)}
    mask = np.zeros(len(keys), dtype=bool)
    missing = []
    for w in wanted:
        i = index.get(_id_key(w))
        if i is None:
            missing.append(str(w))
        else:
            mask[i] = True
    if missing:
        shown = ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "")
        raise SpikeDataError(
            f"no unit with id {', '.join(missing)}; the ids are: {shown or '(none)'}",
            path=source,
            dataset="unit_ids",
        )
    return mask


@dataclass(frozen=True)
class Grid:
    """A uniform time grid ``t[k] = t_start + (k + 1) * dt``, ``k = 0..n_steps-1``.

    Parameters
    ----------
    t_start : float
        Start of the first bin, in seconds (the first grid time is
        ``t_start + dt``).
    dt : float
        Bin width in seconds, > 0.
    n_steps : int
        Number of bins M, >= 0.
    """

    t_start: float
    dt: float
    n_steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "dt", positive_seconds("dt", self.dt))
        if not np.isfinite(self.t_start):
            raise ParameterError("t_start", f"must be finite, got {self.t_start}")
        if self.n_steps < 0:
            raise ParameterError("t_stop", "must not be before t_start")
        object.__setattr__(self, "t_start", float(self.t_start))
        object.__setattr__(self, "dt", float(self.dt))
        object.__setattr__(self, "n_steps", int(self.n_steps))

    @property
    def t_stop(self) -> float:
        """The last grid time ``t[M-1]`` in seconds (``t_start`` when M = 0)."""
        return self.t_start + self.n_steps * self.dt

    def times(self, k0: int = 0, k1: int | None = None) -> np.ndarray:
        """Grid times ``t[k]`` for ``k`` in ``[k0, k1)``, seconds, shape (k1-k0,)."""
        k0, k1 = self._range(k0, k1)
        return self.t_start + (np.arange(k0, k1, dtype=np.int64) + 1) * self.dt

    def steps_to(self, time: float) -> int:
        """The integer ``j`` with ``t_start + (j-1)*dt < time <= t_start + j*dt``
        (snapped as :func:`bin_index` snaps): the bins from ``t_start`` up to
        the one holding ``time``, counted with sign."""
        return _snapped_ceil(float(time), self.t_start, self.dt)

    def _range(self, k0: int, k1: int | None) -> tuple[int, int]:
        k1 = self.n_steps if k1 is None else int(k1)
        k0 = int(k0)
        if not 0 <= k0 <= k1 <= self.n_steps:
            raise ValueError(
                f"bin range [{k0}, {k1}) is outside the grid of {self.n_steps} steps"
            )
        return k0, k1


def _snap_tolerance(
    times: np.ndarray | float, t_start: float, dt: float
) -> np.ndarray | float:
    """Snap tolerance in steps: 1e-9, or the float64 resolution of the times
    when that is coarser (hours-long recordings at fine dt)."""
    resolution = 4 * np.finfo(np.float64).eps * (np.abs(times) + abs(t_start)) / dt
    return np.maximum(SNAP, resolution)


def bin_index(times: np.ndarray, t_start: float, dt: float) -> np.ndarray:
    """Bin of each time on the grid ``t[k] = t_start + (k+1)*dt`` (float array).

    A time ``s`` is in bin ``k`` when ``t[k] - dt < s <= t[k]``; a time
    within ``1e-9 * dt`` of a grid time is in that grid time's bin (or within
    a few float64 ulps of it, when those are wider, as for times of hours at
    ``dt`` of microseconds).

    Parameters
    ----------
    times : ndarray, shape (n,)
        Spike times in seconds.
    t_start, dt : float
        The grid, in seconds.

    Returns
    -------
    ndarray of float64, shape (n,)
        Integral bin numbers (may be negative or beyond the grid), kept in
        floating point so that far-away times cannot overflow.
    """
    times = np.asarray(times, dtype=np.float64)
    steps = (times - t_start) / dt
    nearest = np.rint(steps)
    on_grid = np.abs(steps - nearest) <= _snap_tolerance(times, t_start, dt)
    # Off the grid, ceil is safe: the time is clear of every bin edge.
    return np.where(on_grid, nearest, np.ceil(steps)) - 1.0


def _snapped_ceil(time: float, t_start: float, dt: float) -> int:
    """Integer j with ``t_start + (j-1)*dt < time <= t_start + j*dt``, snapped."""
    steps = (time - t_start) / dt
    nearest = np.rint(steps)
    if abs(steps - nearest) <= _snap_tolerance(time, t_start, dt):
        return int(nearest)
    return int(np.ceil(steps))


def _chunk_bins(
    spike_times: Sequence[np.ndarray], grid: Grid, k0: int, k1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bins in ``[k0, k1)`` and unit numbers of the spikes falling there."""
    lo = grid.t_start + (k0 - 1) * grid.dt
    hi = grid.t_start + (k1 + 1) * grid.dt
    whole = k0 == 0 and k1 == grid.n_steps
    bins, units = [], []
    for unit, times in enumerate(spike_times):
        times = np.asarray(times, dtype=np.float64)
        if not whole:
            # Sorted times: only a slice (with one bin of margin) can fall here.
            i0, i1 = np.searchsorted(times, [lo, hi], side="left")
            times = times[i0 : i1 + 1]
        if times.size == 0:
            continue
        k = bin_index(times, grid.t_start, grid.dt)
        k = k[(k >= k0) & (k < k1)]
        bins.append(k.astype(np.int64))
        units.append(np.full(k.size, unit, dtype=np.int64))
    if not bins:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(bins), np.concatenate(units)


def bin_spikes(
    spike_times: Sequence[np.ndarray],
    grid: Grid,
    k0: int = 0,
    k1: int | None = None,
) -> np.ndarray:
    """Count spikes per bin of ``grid`` for bins ``k0 <= k < k1``.

    Parameters
    ----------
    spike_times : list of ndarray
        N arrays of spike times in seconds, each sorted ascending (as
        :class:`SpikeTrains` keeps them).
    grid : Grid
        The time grid.
    k0, k1 : int
        Range of bins (default: the whole grid).

    Returns
    -------
    ndarray of int64, shape (k1 - k0, N)
        Spike counts. Spikes outside the range are left out; see
        :func:`count_outside`.
    """
    k0, k1 = grid._range(k0, k1)
    n_units = len(spike_times)
    bins, units = _chunk_bins(spike_times, grid, k0, k1)
    flat = np.bincount((bins - k0) * n_units + units, minlength=(k1 - k0) * n_units)
    return flat.astype(np.int64).reshape(k1 - k0, n_units)


def count_outside(spike_times: Sequence[np.ndarray], grid: Grid) -> int:
    """Number of spikes that fall outside ``grid`` (before its first or after its
    last bin).

    Parameters
    ----------
    spike_times : list of ndarray
        Spike times in seconds per unit.
    grid : Grid
        The time grid.

    Returns
    -------
    int
    """
    outside = 0
    for times in spike_times:
        k = bin_index(np.asarray(times, dtype=np.float64), grid.t_start, grid.dt)
        outside += int(np.count_nonzero((k < 0) | (k >= grid.n_steps)))
    return outside


def snap_to_grid(spike_times: Sequence[np.ndarray], grid: Grid) -> list[np.ndarray]:
    """Replace each spike time by the grid time ``t[k]`` of its bin.

    Parameters
    ----------
    spike_times : list of ndarray
        Spike times in seconds per unit.
    grid : Grid
        The time grid.

    Returns
    -------
    list of ndarray
        Per unit, the sorted grid times of the occupied bins, each once (the
        times ``spikes2events`` gives for the binned spikes). Spikes outside
        the grid are left out.
    """
    out = []
    for times in spike_times:
        times = np.asarray(times, dtype=np.float64)
        k = bin_index(times, grid.t_start, grid.dt)
        k = k[(k >= 0) & (k < grid.n_steps)].astype(np.int64)
        if k.size > 1:
            if np.all(k[1:] >= k[:-1]):
                # Sorted times (as SpikeTrains keeps them): drop repeats.
                k = k[np.concatenate([[True], k[1:] != k[:-1]])]
            else:
                k = np.unique(k)
        out.append(grid.t_start + (k + 1) * grid.dt)
    return out


@dataclass
class SpikeTrains:
    """Spike times per unit (the events layout).

    Parameters
    ----------
    spike_times : list of ndarray
        N arrays of spike times in seconds. Converted to float64 and sorted;
        NaN or infinite times are an error.
    unit_ids : ndarray, shape (N,), optional
        Unit ids (int64 or str); default ``0..N-1``. Must be unique.
    t_start, t_stop : float, optional
        Recording window in seconds, when the source states one; used as the
        grid's defaults by :meth:`grid`.
    labels : ndarray of str, shape (N,), optional
        Per-unit labels, e.g. Phy's ``good``/``mua``/``noise``.
    source : str, optional
        File the spikes came from (named in error messages).
    obs_intervals : list of ndarray, optional
        Per unit, a (K, 2) array of ``[start, stop]`` times in seconds where
        the unit was observed (NWB ``obs_intervals``), or None for a unit
        observed over the whole recording. ``None`` means every unit is
        observed over the whole recording window.
    label_column : str, optional
        Name of the column the labels came from (``quality``, ``group``,
        ``KSLabel``...), so that writers can give them back under that name.
    info : dict, optional
        Provenance of the spikes: detected format and layout, the table and
        id column the units came from, and session metadata that writers
        carry over (plain str/number values).
    """

    spike_times: list[np.ndarray]
    unit_ids: np.ndarray | None = None
    t_start: float | None = None
    t_stop: float | None = None
    labels: np.ndarray | None = None
    source: str | None = None
    obs_intervals: list[np.ndarray] | None = None
    label_column: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        trains = []
        for i, times in enumerate(self.spike_times):
            arr = np.asarray(times)
            if arr.dtype.kind not in "iuf":
                raise SpikeDataError(
                    f"spike times of unit #{i} are not numbers (dtype {arr.dtype})",
                    path=self.source,
                    dataset="spike_times",
                )
            arr = arr.astype(np.float64).ravel()
            if not np.all(np.isfinite(arr)):
                bad = arr[~np.isfinite(arr)][0]
                raise SpikeDataError(
                    f"unit #{i} has a {bad} spike time; spike times must be finite",
                    path=self.source,
                    dataset="spike_times",
                )
            if arr.size > 1 and np.any(arr[1:] < arr[:-1]):
                arr = np.sort(arr, kind="stable")
            trains.append(arr)
        self.spike_times = trains
        self.unit_ids = normalize_unit_ids(self.unit_ids, len(trains))
        if self.unit_ids.shape != (len(trains),):
            raise SpikeDataError(
                f"{self.unit_ids.size} unit ids for {len(trains)} units; "
                "expected one id per unit",
                path=self.source,
                dataset="unit_ids",
            )
        seen: set[str] = set()
        for key in (_id_key(u) for u in self.unit_ids):
            if key in seen:
                raise SpikeDataError(
                    f"unit id {key} appears more than once; unit ids must be unique",
                    path=self.source,
                    dataset="unit_ids",
                )
            seen.add(key)
        if self.labels is not None:
            labels = normalize_unit_ids(self.labels).astype(str)
            if labels.shape != (len(trains),):
                raise SpikeDataError(
                    f"{labels.size} labels for {len(trains)} units; "
                    "expected one label per unit",
                    path=self.source,
                    dataset="labels",
                )
            self.labels = labels
        if self.obs_intervals is not None:
            self.obs_intervals = self._check_intervals(self.obs_intervals)
        for name in ("t_start", "t_stop"):
            value = getattr(self, name)
            if value is not None:
                value = float(value)
                if not np.isfinite(value):
                    raise SpikeDataError(
                        f"{name} must be finite, got {value}", path=self.source
                    )
                setattr(self, name, value)
        if (
            self.t_start is not None
            and self.t_stop is not None
            and self.t_stop < self.t_start
        ):
            raise SpikeDataError(
                f"t_stop {self.t_stop} is before t_start {self.t_start}",
                path=self.source,
            )

    def _check_intervals(self, intervals: Sequence[Any]) -> list[np.ndarray]:
        if len(intervals) != len(self.spike_times):
            raise SpikeDataError(
                f"{len(intervals)} observation interval lists for "
                f"{len(self.spike_times)} units; expected one per unit",
                path=self.source,
                dataset="obs_intervals",
            )
        checked = []
        for i, iv in enumerate(intervals):
            if iv is None:
                # This unit is observed over the whole recording.
                checked.append(None)
                continue
            arr = np.asarray(iv, dtype=np.float64).reshape(-1, 2)
            if not np.all(np.isfinite(arr)) or np.any(arr[:, 1] < arr[:, 0]):
                raise SpikeDataError(
                    f"unit #{i} has an observation interval that is not finite "
                    "or ends before it starts",
                    path=self.source,
                    dataset="obs_intervals",
                )
            checked.append(arr[np.argsort(arr[:, 0], kind="stable")])
        return checked

    @property
    def n_units(self) -> int:
        """Number of units N."""
        return len(self.spike_times)

    @property
    def n_spikes(self) -> int:
        """Total number of spikes over all units."""
        return int(sum(t.size for t in self.spike_times))

    def _subset(self, mask: np.ndarray) -> SpikeTrains:
        idx = np.flatnonzero(mask)
        return SpikeTrains(
            [self.spike_times[i] for i in idx],
            unit_ids=self.unit_ids[idx],
            t_start=self.t_start,
            t_stop=self.t_stop,
            labels=None if self.labels is None else self.labels[idx],
            source=self.source,
            obs_intervals=None
            if self.obs_intervals is None
            else [self.obs_intervals[i] for i in idx],
            label_column=self.label_column,
            info=dict(self.info),
        )

    def select_units(self, ids: Iterable[Any]) -> SpikeTrains:
        """The units with the given ids, in the source's order.

        Parameters
        ----------
        ids : iterable
            Unit ids; text such as ``"3"`` matches the integer id 3.

        Returns
        -------
        SpikeTrains

        Raises
        ------
        SpikeDataError
            If an id is not in the data.
        """
        return self._subset(_select_mask(self.unit_ids, ids, self.source))

    def select_labels(self, labels: str | Iterable[str]) -> SpikeTrains:
        """The units whose label is one of ``labels`` (e.g. ``"good"``).

        Raises
        ------
        SpikeDataError
            If the data carries no labels.
        """
        if self.labels is None:
            raise SpikeDataError(
                "the data has no unit labels to select on", path=self.source
            )
        if isinstance(labels, str):
            labels = [labels]
        wanted = {str(x).strip().lower() for x in labels}
        mask = np.array([lab.strip().lower() in wanted for lab in self.labels], bool)
        return self._subset(mask.reshape(-1))

    def grid(
        self,
        dt: float,
        t_start: float | None = None,
        t_stop: float | None = None,
    ) -> Grid:
        """The grid to bin these spikes on (see the module docstring).

        Parameters
        ----------
        dt : float
            Bin width in seconds.
        t_start : float, optional
            Start of the first bin in seconds. Default: the source's
            ``t_start`` if known, else 0 -- moved down to the grid point
            (multiple of ``dt``) just below the earliest spike if any spike is
            at or before 0.
        t_stop : float, optional
            The last grid time in seconds; the number of steps is
            ``round((t_stop - t_start) / dt)``. Default: the source's
            ``t_stop`` if known, else the first grid time at or after the last
            spike.

        Returns
        -------
        Grid
        """
        dt = positive_seconds("dt", dt)
        if t_start is None:
            t_start = self.t_start
        if t_start is None:
            firsts = [t[0] for t in self.spike_times if t.size]
            t_start = 0.0
            if firsts:
                j = _snapped_ceil(min(firsts), 0.0, dt)
                if j <= 0:
                    t_start = (j - 1) * dt
        t_start = float(t_start)
        if t_stop is None:
            t_stop = self.t_stop
        if t_stop is None:
            lasts = [t[-1] for t in self.spike_times if t.size]
            n_steps = max(_snapped_ceil(max(lasts), t_start, dt), 0) if lasts else 0
        else:
            n_steps = int(round((float(t_stop) - t_start) / dt))
            if n_steps < 0:
                raise ParameterError("t_stop", f"{t_stop} is before t_start {t_start}")
        return Grid(t_start, dt, n_steps)

    def restrict(
        self, window: Grid | float, t_stop: float | None = None
    ) -> SpikeTrains:
        """The spikes inside a window.

        Parameters
        ----------
        window : Grid or float
            A :class:`Grid`: the spikes that fall in its bins by the binning
            rule (``t[0] - dt < s <= t[-1]``, see :func:`bin_index`), with the
            grid's ``t_start`` and ``t_stop``. A number: the start of the
            closed window ``[window, t_stop]`` in seconds.
        t_stop : float, optional
            End of the closed window in seconds (with a number only).

        Returns
        -------
        SpikeTrains
            Other fields kept; observation intervals (when the data has
            them) intersected with the window.
        """
        if isinstance(window, Grid):
            grid = window
            kept = []
            for times in self.spike_times:
                k = bin_index(times, grid.t_start, grid.dt)
                kept.append(times[(k >= 0) & (k < grid.n_steps)])
            return self._with(
                kept,
                grid.t_start,
                grid.t_stop,
                None
                if self.obs_intervals is None
                else [
                    None
                    if iv is None
                    else intersect_intervals(iv, [[grid.t_start, grid.t_stop]])
                    for iv in self.obs_intervals
                ],
            )
        if t_stop is None:
            raise ParameterError("t_stop", "is needed with a t_start in seconds")
        t_lo, t_hi = float(window), float(t_stop)
        return self.restrict_epochs([[t_lo, t_hi]], window=(t_lo, t_hi))

    def _with(self, spike_times, t_start, t_stop, obs_intervals) -> SpikeTrains:
        return SpikeTrains(
            spike_times,
            unit_ids=self.unit_ids,
            t_start=t_start,
            t_stop=t_stop,
            labels=self.labels,
            source=self.source,
            obs_intervals=obs_intervals,
            label_column=self.label_column,
            info=dict(self.info),
        )

    def restrict_epochs(
        self, epochs: Any, *, window: tuple[float, float] | None = None
    ) -> SpikeTrains:
        """The spikes inside any of ``epochs``; the units observed only there.

        Parameters
        ----------
        epochs : (K, 2) array_like
            ``[start, stop]`` times in seconds (closed intervals: a spike on
            an epoch's start or stop is kept). Overlapping epochs are merged.
        window : (float, float), optional
            Recording window of the result (default: the recording's, or the
            epochs' span).

        Returns
        -------
        SpikeTrains
            With ``obs_intervals`` the intersection of each unit's
            observation intervals (or of the recording window) with the
            epochs.
        """
        epochs = check_intervals(epochs, "epochs")
        if window is None:
            lo = self.t_start if self.t_start is not None else epochs[0, 0]
            hi = self.t_stop if self.t_stop is not None else epochs[-1, 1]
            window = (float(lo), float(hi))
        t_lo, t_hi = float(window[0]), float(window[1])
        if not t_lo <= t_hi:
            raise ParameterError("t_stop", f"{t_hi} is before t_start {t_lo}")
        trains = []
        for times in self.spike_times:
            i0 = np.searchsorted(times, epochs[:, 0], side="left")
            i1 = np.searchsorted(times, epochs[:, 1], side="right")
            parts = [times[a:b] for a, b in zip(i0, i1, strict=True)]
            trains.append(np.concatenate(parts) if parts else times[:0])
        observed = []
        for unit in range(self.n_units):
            base = None if self.obs_intervals is None else self.obs_intervals[unit]
            if base is None:
                base = np.array([[t_lo, t_hi]])
            observed.append(intersect_intervals(base, epochs))
        return self._with(trains, t_lo, t_hi, observed)

    def exclude_intervals(self, invalid: Any) -> SpikeTrains:
        """Drop ``invalid`` times (NWB ``invalid_times``) from every unit's
        observation.

        Parameters
        ----------
        invalid : (K, 2) array_like
            ``[start, stop]`` times in seconds where the data are not valid.

        Returns
        -------
        SpikeTrains
            The spikes outside ``invalid`` (a spike exactly on an invalid
            interval's edge is kept), each unit observed where it was and the
            data are valid.
        """
        invalid = check_intervals(invalid, "invalid_times")
        if invalid.size == 0:
            return self._with(
                list(self.spike_times), self.t_start, self.t_stop, self.obs_intervals
            )
        # The complement of the invalid intervals, over all time.
        edges = np.concatenate([[-np.inf], invalid.reshape(-1), [np.inf]])
        valid = edges.reshape(-1, 2)
        valid = valid[valid[:, 1] >= valid[:, 0]]
        lo = -np.inf if self.t_start is None else self.t_start
        hi = np.inf if self.t_stop is None else self.t_stop
        trains, observed = [], []
        for unit, times in enumerate(self.spike_times):
            inside = np.ones(times.size, dtype=bool)
            for a, b in invalid:
                inside &= ~((times > a) & (times < b))
            trains.append(times[inside])
            base = None if self.obs_intervals is None else self.obs_intervals[unit]
            if base is None:
                base = np.array([[lo, hi]])
            observed.append(intersect_intervals(base, valid))
        return self._with(trains, self.t_start, self.t_stop, observed)

    def bin(self, grid: Grid, k0: int = 0, k1: int | None = None) -> np.ndarray:
        """Spike counts per bin of ``grid``, int64 of shape (k1 - k0, N).

        See :func:`bin_spikes` for the binning rule.
        """
        return bin_spikes(self.spike_times, grid, k0, k1)

    def iter_chunks(
        self,
        grid: Grid,
        chunk_steps: int,
        *,
        first: int = 0,
        stop: int | None = None,
        batch_spikes: int = BATCH_SPIKES,
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """The spikes of ``grid`` bins chunk by chunk; see :func:`iter_spike_chunks`."""
        return iter_spike_chunks(
            self.spike_times,
            grid,
            chunk_steps,
            first=first,
            stop=stop,
            batch_spikes=batch_spikes,
        )


def check_intervals(intervals: Any, name: str = "intervals") -> np.ndarray:
    """Intervals as a sorted (K, 2) float64 array of ``[start, stop]`` seconds,
    overlapping or touching ones merged (``ParameterError`` if malformed)."""
    arr = np.asarray(intervals, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim == 1 and arr.size == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ParameterError(
            name, f"expected a (K, 2) array of [start, stop] times, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 1] < arr[:, 0]):
        raise ParameterError(
            name, "every interval must be finite with start <= stop (seconds)"
        )
    return _merge_intervals(arr)


def _merge_intervals(arr: np.ndarray) -> np.ndarray:
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    if arr.shape[0] < 2:
        return arr.copy()
    ends = np.maximum.accumulate(arr[:, 1])
    new = np.concatenate([[True], arr[1:, 0] > ends[:-1]])
    starts = arr[new, 0]
    last = np.append(np.flatnonzero(new)[1:] - 1, arr.shape[0] - 1)
    return np.column_stack([starts, ends[last]])


def intersect_intervals(a: Any, b: Any) -> np.ndarray:
    """Intersection of two sets of closed intervals, a sorted (K, 2) array."""
    a = _merge_intervals(np.asarray(a, dtype=np.float64).reshape(-1, 2))
    b = _merge_intervals(np.asarray(b, dtype=np.float64).reshape(-1, 2))
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def iter_spike_chunks(
    spike_times: Sequence[np.ndarray],
    grid: Grid,
    chunk_steps: int,
    *,
    first: int = 0,
    stop: int | None = None,
    batch_spikes: int = BATCH_SPIKES,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(k0, k1, rows, units)``: the spikes of bins ``[k0, k1)``.

    Parameters
    ----------
    spike_times : sequence of N sorted ndarrays
        Spike times in seconds per unit.
    grid : Grid
        The bins (see :func:`bin_index`).
    chunk_steps : int
        Bins per chunk (>= 1).
    first, stop : int, optional
        Range of bins to cover (default the grid's ``0 .. n_steps``); bins
        before 0 or from ``n_steps`` on continue the grid's rule.
    batch_spikes : int
        About how many spikes are binned together in one vectorised pass.

    Yields
    ------
    k0, k1 : int
        The chunk's bins.
    rows : ndarray of int64
        Bins counted from ``k0``, ordered by unit then bin; two spikes in
        one bin are two entries.
    units : ndarray of int
        The unit (column) of each entry.
    """
    chunk_steps = Integer("chunk_steps", low=1)(chunk_steps)
    stop = grid.n_steps if stop is None else int(stop)
    first = int(first)
    n_units = len(spike_times)
    dt = grid.dt
    starts = range(first, stop, chunk_steps)
    if not len(starts):
        return
    n_spikes = sum(times.size for times in spike_times)
    span = stop - first
    per_batch = batch_spikes * span // max(1, chunk_steps * n_spikes)
    per_batch = int(min(max(per_batch, 1), len(starts)))
    # Slices are half a step wider than the bins so that bin_index, the
    # binning rule itself, decides the edge cases.
    margin = 0.5 * dt
    unit_numbers = np.arange(n_units)
    for b0 in range(0, len(starts), per_batch):
        edges = np.append(
            np.asarray(starts[b0 : b0 + per_batch], dtype=np.int64),
            min(starts[b0] + per_batch * chunk_steps, stop),
        )
        lo_bin, hi_bin = int(edges[0]), int(edges[-1])
        t_lo = grid.t_start + lo_bin * dt - margin
        t_hi = grid.t_start + hi_bin * dt + margin
        pieces = [
            times[
                np.searchsorted(times, t_lo, side="right") : np.searchsorted(
                    times, t_hi, side="right"
                )
            ]
            for times in spike_times
        ]
        sizes = [piece.size for piece in pieces]
        flat = np.concatenate(pieces) if pieces else np.zeros(0)
        k = bin_index(flat, grid.t_start, dt)
        inside = (k >= lo_bin) & (k < hi_bin)
        bins = k[inside].astype(np.int64) - lo_bin
        units = np.repeat(unit_numbers, sizes)[inside]
        # Ordered by unit then bin: one search finds every unit's spikes in
        # every chunk of the batch.
        width = hi_bin - lo_bin
        bounds = np.searchsorted(
            units * width + bins,
            (unit_numbers[:, None] * width + (edges - lo_bin)).reshape(-1),
        ).reshape(n_units, edges.size)
        for c in range(edges.size - 1):
            k0, k1 = int(edges[c]), int(edges[c + 1])
            lo, hi = bounds[:, c], bounds[:, c + 1]
            counts = hi - lo
            offsets = np.cumsum(counts) - counts
            index = np.arange(int(counts.sum()))
            index += np.repeat(lo - offsets, counts)
            yield k0, k1, bins[index] - (k0 - lo_bin), units[index]


class _ColumnView:
    """Columns of a 2-D array-like, sliced by rows on demand (lazy datasets)."""

    def __init__(self, base: Any, columns: np.ndarray) -> None:
        self.base = base
        self.columns = np.asarray(columns, dtype=np.int64)
        self.shape = (base.shape[0], self.columns.size)
        self.dtype = base.dtype
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.base[rows])[:, self.columns]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def check_grid(
    t: Any,
    dt: float | None = None,
    *,
    in_file: bool = False,
    source: str | None = None,
    dataset: str = "t",
) -> tuple[np.ndarray, float]:
    """Check that ``t`` is a uniform time grid; return it as float64 and its step.

    The one grid rule of spikerates: ``t`` is 1-D, finite, increasing, and
    every step differs from the mean step by at most ``1e-6`` of it (or by the
    rounding of the stored values, when that is coarser: float32 times, or
    float64 times of hours at fine steps).

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds.
    dt : float, optional
        The step in seconds, when known; it must agree with ``t`` (same
        tolerance). Needed when ``t`` has fewer than 2 times.
    in_file : bool
        ``t`` was read from a file: errors are :class:`SpikeDataError` naming
        ``source`` and ``dataset``; otherwise :class:`ParameterError` naming
        ``dataset`` as the parameter.
    source, dataset : str, optional
        Named in error messages.

    Returns
    -------
    t : (M,) ndarray of float64
    step : float
        The mean step ``(t[-1] - t[0]) / (M - 1)`` in seconds (``dt`` when
        M < 2).
    """

    def error(message: str) -> Exception:
        if in_file:
            return SpikeDataError(message, path=source, dataset=dataset)
        return ParameterError(dataset, message)

    raw = np.asarray(t)
    if raw.ndim != 1:
        raise error(f"expected a 1-D array of times, got shape {raw.shape}")
    if raw.dtype.kind not in "iuf":
        raise error(f"expected numbers, got dtype {raw.dtype}")
    tt = raw.astype(np.float64, copy=False)
    if not np.all(np.isfinite(tt)):
        raise error("times must be finite; found NaN or inf")
    if dt is not None:
        dt = positive_seconds("dt", dt)
    if tt.size < 2:
        if dt is None:
            raise error(
                f"{tt.size} time point(s): at least 2 are needed to infer the "
                "step; give dt"
            )
        return tt, dt
    steps = np.diff(tt)
    if np.any(steps <= 0):
        k = int(np.flatnonzero(steps <= 0)[0])
        raise error(
            f"times must increase; t[{k + 1}] = {float(tt[k + 1])!r} follows "
            f"t[{k}] = {float(tt[k])!r}"
        )
    step = (tt[-1] - tt[0]) / (tt.size - 1)
    # Steps cannot be more regular than the values are precise.
    resolution = 4 * np.finfo(raw.dtype).eps if raw.dtype.kind == "f" else 0.0
    tol = max(RTOL * step, resolution * float(np.abs(tt).max()))
    bad = np.abs(steps - step) > tol
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise error(
            f"times must be uniform (steps equal to within rtol {RTOL:g}); step {k} "
            f"is {float(steps[k]):g} s where the mean step is {float(step):g} s"
        )
    # A given dt only has to agree: the grid follows t itself, so that times
    # far along a long recording stay within the binning tolerance of t[k].
    if dt is not None and abs(dt - step) > tol:
        raise error(
            f"the given dt = {float(dt):g} s disagrees with the time step "
            f"{float(step):g} s of t"
        )
    return tt, float(step)


class _ValueScan:
    """Running summary of spike values for the ``values`` rule."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.all_counts = True
        self.all_amplitude = True
        self.first_non_count: float | None = None
        self.first_non_amplitude: float | None = None

    def update(
        self, block: np.ndarray, row0: int, source: str | None, dataset: str
    ) -> None:
        """Scan rows ``row0 ...`` of the matrix."""

        def where(mask: np.ndarray) -> str:
            row, col = np.argwhere(mask.reshape(block.shape[0], -1))[0]
            return f"{values[row, col]:g} at row {row0 + row}, column {col}"

        if block.dtype.kind == "b":
            block = block.astype(np.int64)
        if block.dtype.kind not in "iuf":
            raise SpikeDataError(
                f"spike values must be numbers, got dtype {block.dtype}",
                path=source,
                dataset=dataset,
            )
        values = block.astype(np.float64, copy=False).reshape(block.shape[0], -1)
        if not np.all(np.isfinite(values)):
            raise SpikeDataError(
                f"spike values must be finite; found {where(~np.isfinite(values))}",
                path=source,
                dataset=dataset,
            )
        if np.any(values < 0):
            raise SpikeDataError(
                f"spike values must be >= 0; found {where(values < 0)}",
                path=source,
                dataset=dataset,
            )
        if self.all_counts and block.dtype.kind == "f":
            fractional = values != np.round(values)
            if np.any(fractional):
                self.all_counts = False
                self.first_non_count = float(values[fractional][0])
        if self.all_amplitude:
            nonzero = values[values != 0]
            multiple = nonzero * self.dt
            nearest = np.rint(multiple)
            bad = (nearest < 1) | (np.abs(multiple - nearest) > RTOL * multiple)
            if np.any(bad):
                self.all_amplitude = False
                self.first_non_amplitude = float(nonzero[bad][0])


def _row_blocks(
    n_rows: int, n_cols: int, block: int | None = None
) -> Iterable[tuple[int, int]]:
    """Consecutive ``(k0, k1)`` row ranges of about ``_BLOCK_VALUES`` values."""
    if block is None:
        block = max(1, _BLOCK_VALUES // max(1, n_cols))
    for k0 in range(0, n_rows, block):
        yield k0, min(k0 + block, n_rows)


def decide_values(
    spikes: Any,
    dt: float,
    mode: str = "auto",
    *,
    source: str | None = None,
    dataset: str | None = "spikes",
) -> str:
    """Decide whether dense spike values are counts or amplitudes .

    ``auto`` gives ``"amplitude"`` when every non-zero value is a positive
    integer multiple of ``1/dt`` (rtol 1e-6), else ``"counts"`` when every value
    is a non-negative integer, else an error asking for ``values``. NaN,
    infinite and negative values are an error whatever the mode; ``counts``
    requires integers.

    Parameters
    ----------
    spikes : array_like, shape (M, N)
        Spike values; an h5py Dataset is scanned in row blocks.
    dt : float
        Time step in seconds.
    mode : {"auto", "counts", "amplitude"}
    source, dataset : str, optional
        Named in error messages.

    Returns
    -------
    str
        ``"counts"`` or ``"amplitude"``.
    """
    if mode not in VALUE_MODES:
        raise ParameterError(
            "values", f"must be one of {', '.join(VALUE_MODES)}, got {mode!r}"
        )
    scan = _ValueScan(float(dt))
    shape = getattr(spikes, "shape", None)
    if shape is None or isinstance(spikes, list | tuple):
        spikes = np.asarray(spikes)
        shape = spikes.shape
    n_rows = shape[0] if len(shape) else 0
    n_cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    for k0, k1 in _row_blocks(n_rows, n_cols):
        scan.update(np.asarray(spikes[k0:k1]), k0, source, dataset or "spikes")
    if mode == "counts":
        if not scan.all_counts:
            raise SpikeDataError(
                f"values='counts' needs non-negative integers; found "
                f"{scan.first_non_count:g}",
                path=source,
                dataset=dataset,
            )
        return "counts"
    if mode == "amplitude":
        return "amplitude"
    if scan.all_amplitude:
        return "amplitude"
    if scan.all_counts:
        return "counts"
    raise SpikeDataError(
        f"cannot tell whether spike values are counts or amplitudes (1/dt = "
        f"{1 / dt:g} per spike): found {scan.first_non_amplitude:g}, which is "
        "neither an integer nor a multiple of 1/dt; give values='counts' or "
        "values='amplitude'",
        path=source,
        dataset=dataset,
    )


@dataclass
class DenseSpikes:
    """Spikes on a uniform time grid (the dense layout).

    Parameters
    ----------
    t : ndarray, shape (M,)
        Grid times in seconds, uniform (steps equal within rtol 1e-6).
    spikes : array_like, shape (M, N)
        Spike values, rows = time steps, columns = units: a numpy array or a
        lazily read h5py Dataset (anything with ``.shape`` supporting
        ``[k0:k1]`` row slicing).
    unit_ids : ndarray, shape (N,), optional
        Unit ids; default ``0..N-1``.
    values : {"auto", "counts", "amplitude"}
        What a value means: spikes per bin, or ``1/dt`` per spike. ``auto``
        decides with :func:`decide_values` (scanning the data once).
    source : str, optional
        File the data came from (named in error messages).
    dt : float, optional
        Time step in seconds; default inferred from ``t`` (required when
        M < 2). A given dt must agree with ``t``.
    """

    t: np.ndarray
    spikes: Any
    unit_ids: np.ndarray | None = None
    values: str = "auto"
    source: str | None = None
    dt: float | None = None
    _file: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.t, self.dt = check_grid(self.t, self.dt, in_file=True, source=self.source)
        shape = getattr(self.spikes, "shape", None)
        if shape is None:
            self.spikes = np.asarray(self.spikes)
            shape = self.spikes.shape
        if len(shape) == 1 and isinstance(self.spikes, np.ndarray):
            self.spikes = self.spikes.reshape(-1, 1)
            shape = self.spikes.shape
        if len(shape) != 2 or shape[0] != self.t.size:
            hint = ""
            if len(shape) == 2 and shape[1] == self.t.size:
                hint = " (it looks transposed: rows must be time steps)"
            raise SpikeDataError(
                f"shape {tuple(shape)} disagrees with t of {self.t.size} steps; "
                f"expected (M, N) = ({self.t.size}, N){hint}",
                path=self.source,
                dataset="spikes",
            )
        self.unit_ids = normalize_unit_ids(self.unit_ids, shape[1])
        if self.unit_ids.shape != (shape[1],):
            raise SpikeDataError(
                f"{self.unit_ids.size} unit ids for {shape[1]} columns of spikes; "
                "expected one id per column",
                path=self.source,
                dataset="unit_ids",
            )
        self.values = decide_values(
            self.spikes, self.dt, self.values, source=self.source
        )

    @property
    def n_units(self) -> int:
        """Number of units N."""
        return int(self.spikes.shape[1])

    @property
    def n_steps(self) -> int:
        """Number of time steps M."""
        return int(self.t.size)

    @property
    def grid(self) -> Grid:
        """The grid ``t[k] = t[0] - dt + (k + 1) * dt`` these spikes sit on."""
        t_start = float(self.t[0] - self.dt) if self.t.size else 0.0
        return Grid(t_start, self.dt, self.t.size)

    def amplitude_chunk(self, k0: int = 0, k1: int | None = None) -> np.ndarray:
        """Rows ``k0:k1`` as float64 amplitudes (``1/dt`` per spike).

        Counts are divided by ``dt``; amplitude values pass through unchanged.

        Returns
        -------
        ndarray of float64, shape (k1 - k0, N), in units of 1/s.
        """
        k1 = self.n_steps if k1 is None else k1
        block = np.array(self.spikes[k0:k1], dtype=np.float64)
        if self.values == "counts":
            block /= self.dt
        return block

    def counts_chunk(self, k0: int = 0, k1: int | None = None) -> np.ndarray:
        """Rows ``k0:k1`` as int64 spike counts per bin, shape (k1 - k0, N).

        Amplitude values give ``round(value * dt)`` spikes, at least one for
        any positive value.
        """
        k1 = self.n_steps if k1 is None else k1
        block = np.asarray(self.spikes[k0:k1])
        if self.values == "counts":
            return np.rint(block).astype(np.int64)
        counts = np.rint(block.astype(np.float64) * self.dt).astype(np.int64)
        counts[(block > 0) & (counts < 1)] = 1
        return counts

    def select_units(self, ids: Iterable[Any]) -> DenseSpikes:
        """The columns of the given unit ids, in the source's order."""
        columns = np.flatnonzero(_select_mask(self.unit_ids, ids, self.source))
        if isinstance(self.spikes, np.ndarray):
            spikes = self.spikes[:, columns]
        else:
            spikes = _ColumnView(self.spikes, columns)
        return DenseSpikes(
            self.t,
            spikes,
            unit_ids=self.unit_ids[columns],
            values=self.values,
            source=self.source,
            dt=self.dt,
            _file=self._file,
        )

    def close(self) -> None:
        """Close the file behind a lazily read dataset (no-op otherwise)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DenseSpikes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dense_to_events(
    dense: DenseSpikes | Iterable[tuple[Any, Any]],
    *,
    per_bin: bool = False,
    unit_ids: Any = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    source: str | None = None,
    block_rows: int | None = None,
) -> SpikeTrains:
    """Spike times from dense spikes: a bin with count c gives c spikes at t[k].

    The one conversion from the dense layout to the events layout.

    Parameters
    ----------
    dense : DenseSpikes or iterable of (t_chunk, counts_chunk)
        A :class:`DenseSpikes` (read in blocks of ``block_rows`` rows, default
        about 4 million values per block), or consecutive pieces of a dense
        matrix in time order: ``t_chunk`` (L,) times in seconds and
        ``counts_chunk`` (L, N) spikes per bin (integers or booleans; any
        non-zero value is at least one spike), e.g. a simulation streamed in
        chunks.
    per_bin : bool
        Give each occupied bin one time, whatever its count (the times of the
        non-zero entries).
    unit_ids : array_like, optional
        Unit ids (default: those of ``dense``, or ``0..N-1``).
    t_start, t_stop : float, optional
        Recording window of the result, in seconds (default for a
        :class:`DenseSpikes`: ``t[0] - dt`` and ``t[-1]``, so that binning at
        the same ``dt`` gives back the same grid and counts).
    source : str, optional
        Where the spikes came from (default: that of ``dense``).
    block_rows : int, optional
        Rows read at a time from a :class:`DenseSpikes`.

    Returns
    -------
    SpikeTrains
        Times of each unit in time order.
    """
    if isinstance(dense, DenseSpikes):
        n_units = dense.n_units
        if unit_ids is None:
            unit_ids = dense.unit_ids.copy()
        if source is None:
            source = dense.source
        if dense.n_steps and t_start is None:
            t_start = float(dense.t[0] - dense.dt)
        if dense.n_steps and t_stop is None:
            t_stop = float(dense.t[-1])
        pieces: Iterable[tuple[Any, Any]] = (
            (dense.t[k0:k1], dense.counts_chunk(k0, k1))
            for k0, k1 in _row_blocks(dense.n_steps, dense.n_units, block_rows)
        )
    else:
        n_units = None if unit_ids is None else len(unit_ids)
        pieces = dense
    times, units = [], []
    for t_chunk, counts in pieces:
        t_chunk = np.asarray(t_chunk, dtype=np.float64).reshape(-1)
        counts = np.asarray(counts)
        if counts.ndim == 1:
            counts = counts[:, None]
        if n_units is None:
            n_units = counts.shape[1]
        rows, cols = np.nonzero(counts)
        if per_bin or counts.dtype.kind == "b":
            times.append(t_chunk[rows])
            units.append(cols)
        else:
            reps = np.maximum(counts[rows, cols], 1).astype(np.int64)
            times.append(np.repeat(t_chunk[rows], reps))
            units.append(np.repeat(cols, reps))
    n_units = n_units or 0
    if times:
        all_times = np.concatenate(times)
        all_units = np.concatenate(units)
    else:
        all_times = np.zeros(0)
        all_units = np.zeros(0, np.int64)
    del times, units
    # A stable sort by unit keeps each unit's times in row (time) order;
    # small integer keys let numpy use a radix sort.
    key_type = np.int16 if n_units <= np.iinfo(np.int16).max else np.int32
    order = np.argsort(all_units.astype(key_type), kind="stable")
    bounds = np.cumsum(np.bincount(all_units, minlength=n_units))
    spike_times = np.split(all_times[order], bounds[:-1]) if n_units else []
    return SpikeTrains(
        list(spike_times),
        unit_ids=unit_ids,
        t_start=t_start,
        t_stop=t_stop,
        source=source,
    )


def events_to_dense(trains: SpikeTrains, grid: Grid) -> np.ndarray:
    """Spike counts of ``trains`` on ``grid``, int64 of shape (M, N)."""
    return bin_spikes(trains.spike_times, grid)


def ragged_to_trains(
    flat: Any,
    index: Any,
    *,
    source: str | None = None,
    dataset: str = "spike_times",
) -> list[np.ndarray]:
    """Split an NWB-style ragged array into per-unit arrays.

    Parameters
    ----------
    flat : array_like, shape (n,)
        All spike times in seconds, unit after unit.
    index : array_like of int, shape (N,)
        End offset of each unit in ``flat`` (any integer dtype).

    Returns
    -------
    list of ndarray
        N float64 arrays (not yet sorted).

    Raises
    ------
    SpikeDataError
        On a non-integer, decreasing or out-of-range index.
    """
    flat = np.asarray(flat)
    index = np.asarray(index)
    idx_name = f"{dataset}_index"
    if flat.ndim != 1:
        if flat.ndim == 2 and 1 in flat.shape:
            flat = flat.ravel()
        else:
            raise SpikeDataError(
                f"expected a 1-D array of spike times, got shape {flat.shape}",
                path=source,
                dataset=dataset,
            )
    if flat.dtype.kind not in "iuf":
        raise SpikeDataError(
            f"spike times must be numbers, got dtype {flat.dtype}",
            path=source,
            dataset=dataset,
        )
    if index.ndim != 1:
        raise SpikeDataError(
            f"expected a 1-D index, got shape {index.shape}",
            path=source,
            dataset=idx_name,
        )
    if index.dtype.kind == "f" and np.all(index == np.round(index)):
        index = index.astype(np.int64)
    if index.dtype.kind not in "iu":
        raise SpikeDataError(
            f"the index must hold integers, got dtype {index.dtype}",
            path=source,
            dataset=idx_name,
        )
    if index.dtype.kind == "u" and index.size and int(index.max()) > flat.size:
        # Before the cast to int64, which would wrap the largest values.
        bad = int(index[index > flat.size][0])
        raise SpikeDataError(
            f"offset {bad} is out of range for {flat.size} spike times",
            path=source,
            dataset=idx_name,
        )
    ends = index.astype(np.int64)
    if ends.size and (ends.min() < 0 or ends.max() > flat.size):
        bad = ends[(ends < 0) | (ends > flat.size)][0]
        raise SpikeDataError(
            f"offset {bad} is out of range for {flat.size} spike times",
            path=source,
            dataset=idx_name,
        )
    if ends.size > 1 and np.any(np.diff(ends) < 0):
        k = int(np.flatnonzero(np.diff(ends) < 0)[0])
        raise SpikeDataError(
            f"offsets must not decrease; entry {k + 1} ({ends[k + 1]}) is below "
            f"entry {k} ({ends[k]})",
            path=source,
            dataset=idx_name,
        )
    if ends.size and ends[-1] != flat.size:
        raise SpikeDataError(
            f"the last offset is {ends[-1]} but there are {flat.size} spike times",
            path=source,
            dataset=idx_name,
        )
    if not ends.size and flat.size:
        raise SpikeDataError(
            f"{flat.size} spike times but no units in the index",
            path=source,
            dataset=idx_name,
        )
    flat = flat.astype(np.float64)
    return list(np.split(flat, ends[:-1])) if ends.size else []


def trains_to_ragged(trains: SpikeTrains) -> tuple[np.ndarray, np.ndarray]:
    """Flat spike times (float64, seconds) and end offsets (int64) per unit."""
    counts = np.array([t.size for t in trains.spike_times], dtype=np.int64)
    flat = (
        np.concatenate(trains.spike_times) if trains.spike_times else np.zeros(0)
    ).astype(np.float64)
    return flat, np.cumsum(counts)
