"""ISI rates: the inverse inter-spike interval, interpolated on a time grid.

:class:`IsiRates` holds the reference's interpolation points of every unit
(``1 / ISI`` at each interval, 0 at the grid's first and last times) and
evaluates them on any contiguous piece of the grid, so a long recording can
be evaluated chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spikerates.errors import ParameterError
from spikerates.fir import flat_nonzero
from spikerates.names import ISI_INTERP_KINDS

__all__ = [
    "ISI_INTERP_KINDS",
    "VECTORISED_KINDS",
    "IsiRates",
    "check_interp",
    "spike_rows_by_unit",
]

#: Interpolation kinds computed for all units at once; the others call scipy
#: once per unit and piece of the grid.
VECTORISED_KINDS = ("zero", "linear")

_SPLINE_ORDERS = {"zero": 0, "slinear": 1, "quadratic": 2, "cubic": 3}
_SPLINE_KINDS = {order: kind for kind, order in _SPLINE_ORDERS.items()}
# Interpolation kinds that take the reference's points with repeated times.
_ISI_REPEATS_KINDS = ("nearest", "nearest-up", "previous", "next")
# Step kinds evaluated without building scipy interpolants (same values).
_STEP_KINDS = _ISI_REPEATS_KINDS
# Padding (in values) of rows of transposed buffers: a row stride that is a
# power of two makes the transposing copy thrash the cache (measured 5x).
_STRIDE_PAD = 8
# Values of the transposed buffer of the per-unit (scipy) kinds.
_SCIPY_BLOCK_VALUES = 1 << 21


def check_interp(interp) -> str:
    """``interp`` if it is one of :data:`ISI_INTERP_KINDS` (else ParameterError)."""
    if interp not in ISI_INTERP_KINDS:
        raise ParameterError(
            "interp",
            f"unknown interpolation {interp!r}; expected one of "
            f"{', '.join(ISI_INTERP_KINDS)}",
        )
    return interp


class IsiRates:
    """ISI rate estimator evaluated on any contiguous piece of a time grid.

    The rate of a unit is ``1 / ISI`` placed at the start (or, with
    ``midpoint``, the middle) of each inter-spike interval, 0 at the grid's
    first and last times and, without ``midpoint``, 0 from the last spike on,
    interpolated between those points with ``interp``, exactly as the
    reference ``rates_isi`` does.

    Where the reference raises, the points are de-duplicated instead: a spike
    on the first grid time replaces the 0 placed there (the rate from then on
    is the first ISI's), a spike on the last grid time merges with the 0 placed
    there; spline interpolations fall back to the highest order the unit's
    points allow (``cubic`` -> ``quadratic`` -> ``slinear`` -> ``zero``).  A
    unit without spikes, or with one, has rate 0 everywhere.

    The estimator keeps two float64 values per spike (a time and a rate) and
    a few integers per unit; building it takes a few more arrays of one value
    per spike.

    Parameters
    ----------
    spike_times : sequence of N array_like
        Spike times in seconds of each unit, on the grid (each one of the grid's
        times), within ``[t_first, t_last]``.  Repeated times count once.
    t_first, t_last : float
        First and last times of the whole grid in seconds.
    midpoint : bool, optional
        Place each ``1 / ISI`` point at the middle of its interval.
    interp : str, optional
        One of :data:`ISI_INTERP_KINDS` (``scipy.interpolate.interp1d`` kinds;
        default ``"zero"``, a step held from each point).  ``zero`` and
        ``linear`` are computed for all units at once; the others call scipy
        per unit.
    """

    def __init__(
        self,
        spike_times: Sequence,
        t_first: float,
        t_last: float,
        midpoint: bool = False,
        interp: str = "zero",
    ) -> None:
        t_first, t_last = float(t_first), float(t_last)
        if not (math.isfinite(t_first) and math.isfinite(t_last) and t_first < t_last):
            raise ValueError(
                f"t_first and t_last must be finite with t_first < t_last, "
                f"got {t_first!r}, {t_last!r}"
            )
        arrays = []
        for times in spike_times:
            times = np.asarray(times, dtype=np.float64).reshape(-1)
            if times.size > 1 and not (times[1:] > times[:-1]).all():
                times = np.unique(times)  # sorted, each time once
            arrays.append(times)
        counts = np.array([times.size for times in arrays], dtype=np.intp)
        flat = np.concatenate(arrays) if arrays else np.zeros(0)
        del arrays
        if not np.isfinite(flat).all():
            raise ValueError("spike_times hold NaN or infinite values")
        if flat.size and (flat.min() < t_first or flat.max() > t_last):
            raise ValueError(
                f"spike_times must lie within [t_first, t_last] = [{t_first!r}, "
                f"{t_last!r}] s"
            )
        self._setup(flat, counts, t_first, t_last, midpoint, interp)

    @classmethod
    def from_sorted(
        cls,
        times,
        counts,
        t_first: float,
        t_last: float,
        *,
        midpoint: bool = False,
        interp: str = "zero",
    ) -> IsiRates:
        """Build from spike times already in the estimator's layout.

        Parameters
        ----------
        times : (S,) array_like of float64
            Spike times in seconds, unit after unit, ascending and distinct
            within each unit, within ``[t_first, t_last]`` (not checked).
        counts : (N,) array_like of int
            Spikes per unit.
        t_first, t_last, midpoint, interp
            As for the constructor.
        """
        self = cls.__new__(cls)
        self._setup(times, counts, float(t_first), float(t_last), midpoint, interp)
        return self

    def _setup(self, times, counts, t_first, t_last, midpoint, interp) -> None:
        self.interp = check_interp(interp)
        self.midpoint = bool(midpoint)
        self.t_first, self.t_last = t_first, t_last
        counts = np.asarray(counts, dtype=np.intp)
        self.n_units = counts.size
        x, y, n_points = _isi_points(
            np.asarray(times, dtype=np.float64), counts, t_first, t_last, self.midpoint
        )
        # The kinds that accept repeated times get the reference's points as
        # they are; the others the de-duplicated points.
        self._repeats = self.interp in _ISI_REPEATS_KINDS
        if not self._repeats:
            x, y, n_points = _drop_repeated_times(x, y, n_points)
        self._x, self._y = x, y
        self._count = n_points
        self._start = np.cumsum(n_points) - n_points
        self._interpolants: list | None = None

    @property
    def points(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """De-duplicated interpolation points ``(times s, rates Hz)`` per unit."""
        points = []
        for s, c in zip(self._start, self._count, strict=True):
            xs, ys = self._x[s : s + c], self._y[s : s + c]
            if self._repeats:
                # Of two equal times keep the later.
                later = np.append(xs[:-1] != xs[1:], True)
                xs, ys = xs[later], ys[later]
            points.append((xs, ys))
        return points

    def evaluate(self, t_chunk, out: np.ndarray | None = None) -> np.ndarray:
        """Rates at the times of a contiguous piece of the grid.

        Parameters
        ----------
        t_chunk : (L,) array_like
            Consecutive grid times in seconds, within ``[t_first, t_last]``.
        out : (L, N) float64 ndarray, optional
            Where to write the result.

        Returns
        -------
        (L, N) ndarray of float64
            Rates in Hz.
        """
        t_chunk = np.asarray(t_chunk, dtype=np.float64).reshape(-1)
        n_t = t_chunk.size
        if out is None:
            out = np.empty((n_t, self.n_units))
        if n_t == 0 or self.n_units == 0:
            return out
        if not (t_chunk[0] >= self.t_first and t_chunk[-1] <= self.t_last):
            raise ValueError(
                f"t_chunk [{t_chunk[0]!r}, {t_chunk[-1]!r}] s lies outside the grid "
                f"[{self.t_first!r}, {self.t_last!r}] s"
            )
        if self.interp in VECTORISED_KINDS:
            self._evaluate_vectorised(t_chunk, out)
        else:
            self._evaluate_scipy(t_chunk, out)
        return out

    def _last_points(self, times: np.ndarray) -> np.ndarray:
        """Index of each unit's last point at or before each time.

        ``times`` has shape (k,); the result (k, N).  Every unit's first point
        is at ``t_first``, so times within the grid always find one.  A
        binary search for all units at once, in steps of whole arrays.
        """
        lo = np.repeat(self._start[None, :], times.size, axis=0)
        hi = lo + self._count
        times = times[:, None]
        last = self._x.size - 1
        while True:
            searching = lo < hi
            if not searching.any():
                return lo - 1
            mid = (lo + hi) >> 1
            after = self._x[np.minimum(mid, last)] > times
            lo = np.where(searching & ~after, mid + 1, lo)
            hi = np.where(searching & after, mid, hi)

    def _evaluate_vectorised(self, t_chunk: np.ndarray, out: np.ndarray) -> None:
        n_t, n_units = t_chunk.size, self.n_units
        # Point j of a unit holds from its time until the next point's time
        # (right-continuous; the last point holds at t_last only).
        first, last = self._last_points(t_chunk[[0, -1]])
        # The points of each unit that hold within the chunk, followed by a
        # padding segment (see _STRIDE_PAD) whose values are never used.
        n_seg = last - first + 2
        seg_end = np.cumsum(n_seg)
        seg = np.arange(seg_end[-1]) + np.repeat(first - (seg_end - n_seg), n_seg)
        pad = seg_end - 1
        seg[pad] = 0
        x_seg = self._x[seg]
        y_seg = self._y[seg]
        starts = _grid_positions(t_chunk, x_seg)
        starts[pad] = n_t
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[pad] = n_t + _STRIDE_PAD
        lengths = ends - starts
        shape = (n_units, n_t + _STRIDE_PAD)
        if self.interp == "zero":
            values = np.repeat(y_seg, lengths).reshape(shape)
        else:
            # np.interp's formula: slope * (t - x_j) + y_j, the slope towards
            # the unit's next point (none after its last point).
            inner = np.ones(seg.size, dtype=bool)
            inner[pad] = False
            inner[pad - 1] = seg[pad - 1] != self._start + self._count - 1
            j = seg[inner]
            slope = np.zeros(seg.size)
            slope[inner] = (self._y[j + 1] - self._y[j]) / (self._x[j + 1] - self._x[j])
            t_padded = np.concatenate([t_chunk, np.zeros(_STRIDE_PAD)])
            values = np.repeat(x_seg, lengths).reshape(shape)
            np.subtract(t_padded, values, out=values)
            values *= np.repeat(slope, lengths).reshape(shape)
            values += np.repeat(y_seg, lengths).reshape(shape)
        out[...] = values[:, :n_t].T

    def _unit_interpolants(self) -> list:
        if self._interpolants is None:
            from scipy import interpolate as sp_interpolate  # deferred: slow

            interpolants = []
            for s, c in zip(self._start, self._count, strict=True):
                # Splines refuse repeated points and need order + 1 points;
                # the other kinds take the reference's points as they are.
                xs, ys = self._x[s : s + c], self._y[s : s + c]
                if self.interp in _SPLINE_ORDERS:
                    kind = _SPLINE_KINDS[min(_SPLINE_ORDERS[self.interp], c - 1)]
                else:
                    kind = self.interp
                interpolants.append(
                    sp_interpolate.interp1d(
                        xs, ys, kind=kind, copy=False, assume_sorted=True
                    )
                )
            self._interpolants = interpolants
        return self._interpolants

    def _evaluate_scipy(self, t_chunk: np.ndarray, out: np.ndarray) -> None:
        # One call per unit over the whole piece, in blocks of units whose
        # transposed buffer stays a few MB.
        n_t = t_chunk.size
        block = max(1, min(self.n_units, _SCIPY_BLOCK_VALUES // max(n_t, 1)))
        transposed = np.empty((block, n_t + _STRIDE_PAD))
        steps = self.interp in _STEP_KINDS
        interpolants = None if steps else self._unit_interpolants()
        for u0 in range(0, self.n_units, block):
            u1 = min(u0 + block, self.n_units)
            for u in range(u0, u1):
                if steps:
                    s, c = self._start[u], self._count[u]
                    xs, ys = self._x[s : s + c], self._y[s : s + c]
                    transposed[u - u0, :n_t] = _step_values(
                        self.interp, xs, ys, t_chunk
                    )
                else:
                    transposed[u - u0, :n_t] = interpolants[u](t_chunk)
            out[:, u0:u1] = transposed[: u1 - u0, :n_t].T


def _step_values(kind: str, xs: np.ndarray, ys: np.ndarray, t: np.ndarray):
    """``scipy.interpolate.interp1d(xs, ys, kind)(t)`` for the step kinds,
    with scipy's own arithmetic (one search, no interpolant object)."""
    if kind in ("nearest", "nearest-up"):
        # Halfway points, halved before adding as scipy does.
        half = xs / 2.0
        bounds = half[1:] + half[:-1]
        side = "left" if kind == "nearest" else "right"
        index = np.searchsorted(bounds, t, side=side).clip(0, xs.size - 1)
        return ys[index]
    if kind == "previous":
        shifted = np.nextafter(xs, -np.inf)
        index = np.searchsorted(shifted, t, side="left").clip(1, xs.size)
        return ys[index - 1]
    shifted = np.nextafter(xs, np.inf)  # next
    index = np.searchsorted(shifted, t, side="right").clip(0, xs.size - 1)
    return ys[index]


def _isi_points(
    times: np.ndarray, counts: np.ndarray, t_first: float, t_last: float, midpoint: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's interpolation points of every unit, concatenated.

    Per unit: ``t_first``, the spikes (or, with ``midpoint``, the middles of
    the intervals), ``t_last``; rates ``1 / ISI`` at the intervals' points and
    0 elsewhere.  Returns times, rates and the points per unit.  Built with
    a few arrays of one value per spike, without per-spike indices.
    """
    ends = np.cumsum(counts)
    last_spikes = ends[counts > 0] - 1
    # 1 / ISI after each spike; 0 after a unit's last one.
    rates = np.empty(times.size)
    np.subtract(times[1:], times[:-1], out=rates[:-1])
    rates[last_spikes] = np.inf
    np.divide(1.0, rates, out=rates)
    if midpoint:
        # The points are the intervals': drop each unit's last spike.
        inner = np.ones(times.size, dtype=bool)
        inner[last_spikes] = False
        middles = np.add(times[:-1], times[1:])
        middles *= 0.5
        x = middles[inner[:-1]]
        del middles
        y = rates[inner]
        counts = np.maximum(counts - 1, 0)
        ends = np.cumsum(counts)
    else:
        x, y = times, rates
    del rates
    # t_first before each unit's points, t_last after them.
    at = np.empty(2 * counts.size, dtype=np.intp)
    at[0::2] = ends - counts
    at[1::2] = ends
    edges = np.empty(2 * counts.size)
    edges[0::2] = t_first
    edges[1::2] = t_last
    x = np.insert(x, at, edges)
    y = np.insert(y, at, 0.0)
    return x, y, counts + 2


def _drop_repeated_times(
    x: np.ndarray, y: np.ndarray, n_points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of two equal consecutive times of a unit keep the later point."""
    if x.size < 2:
        return x, y, n_points
    repeated = x[:-1] == x[1:]
    # A unit's last point and the next unit's first are not compared.
    repeated[np.cumsum(n_points)[:-1] - 1] = False
    dropped = np.flatnonzero(repeated)
    if dropped.size == 0:
        return x, y, n_points
    keep = np.append(~repeated, True)
    units = np.searchsorted(np.cumsum(n_points), dropped, side="right")
    n_points = n_points - np.bincount(units, minlength=n_points.size)
    return x[keep], y[keep], n_points


def _grid_positions(t_chunk: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``np.searchsorted(t_chunk, times, side="left")`` for a uniform grid.

    Unsorted queries make searchsorted slow; on a uniform grid the index is
    the rounded-up quotient, corrected by exact comparisons so that ties
    between a time and a grid value resolve exactly as searchsorted does.
    """
    n_t = t_chunk.size
    if n_t < 2 or times.size == 0:
        return np.searchsorted(t_chunk, times, side="left")
    step = (t_chunk[-1] - t_chunk[0]) / (n_t - 1)
    idx = np.ceil((times - t_chunk[0]) / step)
    idx = np.clip(idx, 0, n_t).astype(np.intp)
    for _ in range(4):
        too_high = (idx > 0) & (t_chunk[np.maximum(idx - 1, 0)] >= times)
        too_low = (idx < n_t) & (t_chunk[np.minimum(idx, n_t - 1)] < times)
        if not (too_high.any() or too_low.any()):
            return idx
        idx += too_low.astype(np.intp) - too_high
    return np.searchsorted(t_chunk, times, side="left")


def spike_rows_by_unit(spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time-step indices of the non-zero entries, grouped by unit (column).

    Returns the row indices (ascending within each unit, units in order) and
    the count per unit.  Raises ValueError on NaN or infinite values.
    """
    n_units = spikes.shape[1]
    spikes = np.ascontiguousarray(spikes)
    flat = flat_nonzero(spikes)
    # NaN and infinities are non-zero: checking the gathered values is enough.
    if spikes.dtype.kind == "f" and not np.isfinite(spikes.reshape(-1)[flat]).all():
        raise ValueError("spikes hold NaN or infinite values")
    rows, units = np.divmod(flat, n_units)
    # A stable sort by unit keeps the rows ascending within each unit; small
    # integer keys let numpy use a radix sort.
    key_type = np.int16 if n_units <= np.iinfo(np.int16).max else np.int32
    order = np.argsort(units.astype(key_type), kind="stable")
    counts = np.bincount(units, minlength=n_units)
    return rows[order], counts
