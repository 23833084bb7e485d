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
    "IsiRates",
    "check_interp",
    "spike_rows_by_unit",
]

_SPLINE_ORDERS = {"zero": 0, "slinear": 1, "quadratic": 2, "cubic": 3}
# Kinds evaluated by polynomial pieces (the others by steps or lines).
_SPLINE_KINDS = ("slinear", "quadratic", "cubic")
# Padding (in values) of rows of transposed buffers: a row stride that is a
# power of two makes the transposing copy thrash the cache (measured 5x).
_STRIDE_PAD = 8
# Interpolation kinds that take the reference's points with repeated times.
_ISI_REPEATS_KINDS = ("nearest", "nearest-up", "previous", "next")
# Values written per piece of the grid (a piece's switches are found and
# placed at once), and per group of blocks within a piece (the formula's
# passes over a group stay in the cache).
_PIECE_VALUES = 1 << 20
_GROUP_VALUES = 1 << 16
# A spline value below this fraction of the largest B-spline coefficient of
# its interval is evaluated by de Boor's recursion (see _spline_plan).
_EXACT_FRACTION = 1e-3
# Fewer units than this are written unit by unit and transposed (the
# broadcast over units has too short an inner loop).
_MIN_BROADCAST_UNITS = 32


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
    per spike.  Evaluating keeps, from the first call on, one more value per
    point for ``nearest``, ``nearest-up`` and ``next`` (the time from which
    each point holds), and for the spline kinds each unit's spline and its
    polynomial pieces (about ten values per point for ``cubic``).

    Every kind is evaluated for all units at once, piece by piece of the
    grid: the step kinds and ``linear`` by repeating each point's value (or
    line) over the grid times it holds; the splines by Horner's scheme on
    their polynomial pieces, broadcast over blocks of rows, with the values
    near zero evaluated again by de Boor's recursion in scipy's order of
    operations (see ``_spline_plan``).

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
        default ``"zero"``, a step held from each point).
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
        self._plan: _Plan | None = None
        self._hold: np.ndarray | None = None

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
        if self.interp not in _SPLINE_KINDS:
            piece_rows = max(1, _PIECE_VALUES // self.n_units)
            k0s = np.arange(0, n_t, piece_rows)
            k1s = np.minimum(k0s + piece_rows, n_t)
            # the points holding at every piece's ends, in one search
            held = self._last_points(t_chunk[np.concatenate([k0s, k1s - 1])])
            for p, (k0, k1) in enumerate(zip(k0s.tolist(), k1s.tolist(), strict=True)):
                self._evaluate_vectorised(
                    t_chunk[k0:k1], out[k0:k1], held[p], held[p + k0s.size]
                )
            return out
        plan = self._evaluation_plan()
        piece_rows = max(1, _PIECE_VALUES // self.n_units)
        direct = out.dtype == np.float64 and out.flags.c_contiguous
        scratch = None if direct else np.empty((min(piece_rows, n_t), self.n_units))
        for k0 in range(0, n_t, piece_rows):
            k1 = min(k0 + piece_rows, n_t)
            dest = out[k0:k1] if direct else scratch[: k1 - k0]
            plan.fill(t_chunk[k0:k1], dest)
            if not direct:
                out[k0:k1] = dest
        return out

    def _last_points(self, times: np.ndarray) -> np.ndarray:
        """Index of each unit's point that holds at each time.

        ``times`` has shape (k,); the result (k, N).  Every unit's first point
        holds from ``t_first``, so times within the grid always find one.  A
        binary search for all units at once, in steps of whole arrays.
        """
        hold = self._hold_times()
        lo = np.repeat(self._start[None, :], times.size, axis=0)
        hi = lo + self._count
        times = times[:, None]
        last = hold.size - 1
        while True:
            searching = lo < hi
            if not searching.any():
                return lo - 1
            mid = (lo + hi) >> 1
            after = hold[np.minimum(mid, last)] > times
            lo = np.where(searching & ~after, mid + 1, lo)
            hi = np.where(searching & after, mid, hi)

    def _evaluate_vectorised(
        self, t_chunk: np.ndarray, out: np.ndarray, first: np.ndarray, last: np.ndarray
    ) -> None:
        """Step and linear kinds on a piece of the grid.

        ``first`` and ``last`` (N,) are each unit's points that hold at the
        piece's first and last time (:meth:`_last_points`).
        """
        n_t, n_units = t_chunk.size, self.n_units
        # Point j of a unit holds from its hold time until the next point's
        # (right-continuous; with ``zero`` the last point holds at t_last
        # only).
        # The points of each unit that hold within the chunk, followed by a
        # padding segment (see _STRIDE_PAD) whose values are never used.
        n_seg = last - first + 2
        seg_end = np.cumsum(n_seg)
        seg = np.arange(seg_end[-1]) + np.repeat(first - (seg_end - n_seg), n_seg)
        pad = seg_end - 1
        seg[pad] = 0
        x_seg = self._x[seg]
        y_seg = self._y[seg]
        starts = _grid_positions(t_chunk, self._hold_times()[seg])
        starts[pad] = n_t
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[pad] = n_t + _STRIDE_PAD
        lengths = ends - starts
        shape = (n_units, n_t + _STRIDE_PAD)
        if self.interp != "linear":
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

    def _hold_times(self) -> np.ndarray:
        """The time from which each point holds (a point of a step kind
        holds from the first grid time at or after it)."""
        if self.interp in ("zero", "linear", "previous"):
            return self._x
        if self._hold is None:
            x = self._x
            hold = x.copy()
            later = np.ones(x.size, dtype=bool)
            later[self._start] = False  # each unit's first holds from t_first
            if self.interp == "next":
                # From just above the previous point's time.
                previous = x[:-1]
            else:
                # Halfway points, halved before adding as scipy does: the
                # later point holds above one (``nearest``) or from it on.
                half = x / 2.0
                previous = half[1:] + half[:-1]
            if self.interp in ("next", "nearest"):
                previous = np.nextafter(previous, np.inf)
            hold[1:][later[1:]] = previous[later[1:]]
            self._hold = hold
        return self._hold

    def _evaluation_plan(self) -> _Plan:
        if self._plan is None:
            self._plan = _spline_plan(
                self._x,
                self._y,
                self._start,
                self._count,
                self.t_first,
                self.t_last,
                self.interp,
            )
        return self._plan


class _Plan:
    """Every unit's rate as a sequence of pieces, each one formula.

    Piece ``g`` (a global index over all units, ascending along each unit
    and from unit to unit) holds from the first grid time at or after its
    switch time (``side="left"``), or after it (``side="right"``), until the
    unit's next piece.  The switches of all units are kept sorted by time,
    so the switches within a piece of the grid are one slice, and the state
    (each unit's current piece) carries from one piece of the grid to the
    next.

    A piece of the output is written in two levels: every ``R``-th row gets
    each unit's current piece, broadcast over the ``R`` rows that follow,
    then the cells between a switch and the next such row are written one by
    one.  Few units are written unit by unit (``np.repeat``) and transposed.

    ``formula(t, g, out)`` writes the rates at times ``t`` of pieces ``g``
    (arrays that broadcast to ``out``) and may return a mask of the cells to
    evaluate again with ``exact(t, g)`` (1-D arrays); ``per_unit`` lists
    units evaluated by their own function of time, after the others.
    """

    def __init__(
        self, times, units, targets, initial, side, formula, exact=None, per_unit=()
    ):
        order = np.argsort(times)  # ties: any order (only slices are taken)
        self.times = times[order]
        self.units = units[order]
        self.targets = targets[order]
        self.initial = initial
        self.side = side
        self.formula = formula
        self.exact = exact
        self.per_unit = list(per_unit)
        self.n_units = initial.size
        self._state = initial.copy()
        self._applied = 0

    def _count_until(self, t: float) -> int:
        """Switches that hold at grid time ``t``."""
        side = "right" if self.side == "left" else "left"
        return int(np.searchsorted(self.times, t, side=side))

    def _advance(self, n_applied: int) -> None:
        if n_applied < self._applied:
            self._state[...] = self.initial
            self._applied = 0
        if n_applied > self._applied:
            sl = slice(self._applied, n_applied)
            np.maximum.at(self._state, self.units[sl], self.targets[sl])
            self._applied = n_applied

    def fill(self, t: np.ndarray, out: np.ndarray) -> None:
        """Write the rates at grid times ``t`` (L,) into ``out`` (L, N)."""
        lo = self._count_until(t[0])
        hi = self._count_until(t[-1])
        self._advance(lo)
        times = self.times[lo:hi]
        if self.side == "right":
            times = np.nextafter(times, np.inf)
        rows = _grid_positions(t, times)
        # Unit after unit, ascending in time within each unit.
        order = np.argsort(self.targets[lo:hi])
        units = self.units[lo:hi][order].astype(np.intp)
        targets = self.targets[lo:hi][order]
        rows = rows[order]
        if self.n_units >= _MIN_BROADCAST_UNITS:
            self._fill_two_level(t, out, units, targets, rows)
        else:
            self._fill_by_unit(t, out, units, targets, rows)
        for unit, function in self.per_unit:
            out[:, unit] = function(t)

    def _fill_two_level(self, t, out, units, targets, rows):
        n_t, n_units = out.shape
        n_switch = rows.size
        # Rows per block: the broadcast costs per block, the cells written
        # one by one grow with the block (about density * R / 2 per cell);
        # measured best at half the square root of 1 / density.
        density = n_switch / (n_t * n_units)
        block = round(0.5 * math.sqrt(1.0 / max(density, 1e-9)))
        block = int(min(n_t, max(1, block)))
        n_blocks = -(-n_t // block)
        first_block = -(-rows // block)  # first block start at or after a switch
        current = np.zeros((n_blocks, n_units), dtype=np.intp)
        current[0] = self._state
        inside = first_block < n_blocks
        np.maximum.at(
            current.reshape(-1),
            first_block[inside] * n_units + units[inside],
            targets[inside],
        )
        np.maximum.accumulate(current, axis=0, out=current)
        full = n_t // block
        # Groups of blocks whose values stay in the cache through the
        # formula's passes.
        group = max(1, _GROUP_VALUES // (block * n_units))
        for b0 in range(0, full, group):
            b1 = min(b0 + group, full)
            r0, r1 = b0 * block, b1 * block
            out3 = out[r0:r1].reshape(b1 - b0, block, n_units)
            mask = self.formula(
                t[r0:r1].reshape(b1 - b0, block, 1), current[b0:b1, None, :], out3
            )
            if mask is not None:
                cells = np.flatnonzero(mask)
                rows_, units_ = np.divmod(cells, n_units)
                self._redo(
                    out3, cells, t[r0 + rows_], current[b0 + rows_ // block, units_]
                )
        if n_t > full * block:
            tail = out[full * block :]
            mask = self.formula(t[full * block :, None], current[full][None, :], tail)
            if mask is not None:
                cells = np.flatnonzero(mask)
                rows_, units_ = np.divmod(cells, n_units)
                self._redo(tail, cells, t[full * block + rows_], current[full, units_])
        if not n_switch:
            return
        # Cells from a switch to the next switch of its unit or the next
        # block start, whichever comes first.
        following = np.full(n_switch, n_t, dtype=np.intp)
        same = units[1:] == units[:-1]
        following[:-1][same] = rows[1:][same]
        lengths = np.minimum(following, np.minimum(first_block * block, n_t)) - rows
        n_cells = int(lengths.sum())
        if n_cells:
            offsets = np.cumsum(lengths) - lengths
            step = np.arange(n_cells) - np.repeat(offsets, lengths)
            cell_rows = np.repeat(rows, lengths) + step
            cells = cell_rows * n_units + np.repeat(units, lengths)
            values = np.empty(n_cells)
            cell_targets = np.repeat(targets, lengths)
            cell_times = t[cell_rows]
            mask = self.formula(cell_times, cell_targets, values)
            if mask is not None:
                redo = np.flatnonzero(mask)
                self._redo(values, redo, cell_times[redo], cell_targets[redo])
            out.reshape(-1)[cells] = values

    def _fill_by_unit(self, t, out, units, targets, rows):
        n_t, n_units = out.shape
        # Each unit's current piece from row 0, then its switches: sorting
        # by piece index orders them unit by unit and in time.
        seg_targets = np.concatenate([self._state, targets])
        seg_rows = np.concatenate([np.zeros(n_units, dtype=np.intp), rows])
        seg_units = np.concatenate([np.arange(n_units), units])
        order = np.argsort(seg_targets)
        seg_targets = seg_targets[order]
        seg_rows = seg_rows[order]
        seg_units = seg_units[order]
        ends = np.full(seg_rows.size, n_t, dtype=np.intp)
        same = seg_units[1:] == seg_units[:-1]
        ends[:-1][same] = seg_rows[1:][same]
        cell_targets = np.repeat(seg_targets, ends - seg_rows).reshape(n_units, n_t)
        by_unit = np.empty((n_units, n_t))
        mask = self.formula(t[None, :], cell_targets, by_unit)
        if mask is not None:
            cells = np.flatnonzero(mask)
            self._redo(by_unit, cells, t[cells % n_t], cell_targets.reshape(-1)[cells])
        out[...] = by_unit.T

    def _redo(self, values, cells, t, g) -> None:
        """Evaluate again, exactly, the given cells of ``values``."""
        if cells.size:
            redone = np.empty(cells.size)
            self.exact(t, g, redone)
            values.reshape(-1)[cells] = redone


def _horner_formula(breaks, coefs, thresholds):
    """Polynomial pieces by Horner's scheme in the offset from each piece's
    left breakpoint; returns the mask of values below their threshold."""

    def formula(t, g, out):
        offset = np.subtract(t, breaks.take(g))
        np.multiply(offset, coefs[0].take(g), out=out)
        for c in coefs[1:-1]:
            out += c.take(g)
            out *= offset
        out += coefs[-1].take(g)
        np.abs(out, out=offset)
        return np.less(offset, thresholds.take(g))

    return formula


def _de_boor_formula(order, knots, coefs, piece_knot, piece_coef):
    """Spline values by de Boor's recursion (de Boor 1972), in the order of
    operations of scipy's B-spline evaluation, so that the values are the
    same to the last bit."""

    def formula(t, g, out):
        ell = piece_knot.take(g)
        base = piece_coef.take(g)
        # Offsets of the times from the knots around their interval.
        right = [np.subtract(knots.take(ell + m), t) for m in range(1, order + 1)]
        left = [np.subtract(t, knots.take(ell + 1 - m)) for m in range(1, order + 1)]
        h = [None]
        for j in range(1, order + 1):
            new = [None] * (j + 1)
            for n in range(1, j + 1):
                span = knots.take(ell + n) - knots.take(ell + n - j)
                w = 1.0 / span if j == 1 else h[n - 1] / span
                term = w * right[n - 1]
                new[n - 1] = (
                    term if n == 1 else np.add(new[n - 1], term, out=new[n - 1])
                )
                new[n] = w * left[j - n]
            h = new
        np.multiply(coefs.take(base), h[0], out=out)
        for a in range(1, order + 1):
            out += coefs.take(base + a) * h[a]

    return formula


def _spline_plan(x, y, start, count, t_first, t_last, interp) -> _Plan:
    """Plan of the spline kinds: one piece per knot interval.

    Each unit's spline is scipy's (``make_interp_spline``, as ``interp1d``
    builds it), evaluated for all units at once by Horner's scheme on its
    polynomial pieces.  Horner's values differ from scipy's (de Boor's
    recursion) by a few units in the last place of the largest B-spline
    coefficient ``S`` of the interval (measured below 2e-15 S, see the
    tests); where a
    value is below ``_EXACT_FRACTION * S`` that difference could exceed
    1e-9 of the value, and de Boor's recursion, in scipy's order of
    operations, gives the value to the last bit.  A unit with too few points
    for the order gets the highest order its points allow; it is evaluated
    by scipy unless its rate is 0 throughout.
    """
    from scipy import interpolate as sp_interpolate  # deferred: slow

    order = _SPLINE_ORDERS[interp]
    # A unit at rate 0: one piece of zero coefficients between t_first and
    # t_last (any knots with non-zero spans would do).
    zero_knots = np.repeat([t_first, t_last], order + 1)
    knots, coefs, ells, per_unit, converted = [], [], [], [], []
    for unit, (s, c) in enumerate(zip(start, count, strict=True)):
        k = min(order, int(c) - 1)
        xs, ys = x[s : s + c], y[s : s + c]
        if k == order:
            spline = sp_interpolate.make_interp_spline(xs, ys, k=k, check_finite=False)
            unit_knots, unit_coefs = spline.t, spline.c
            ell = np.flatnonzero(unit_knots[1:] > unit_knots[:-1])
            converted.append((unit, spline))
        else:
            unit_knots, unit_coefs = zero_knots, np.zeros(order + 1)
            ell = np.array([order])
            if np.any(ys != 0):
                spline = sp_interpolate.make_interp_spline(
                    xs, ys, k=k, check_finite=False
                )
                per_unit.append((unit, spline))
        knots.append(unit_knots)
        coefs.append(unit_coefs)
        ells.append(ell)
    n_knots = np.array([k.size for k in knots])
    n_coefs = np.array([c.size for c in coefs])
    n_pieces = np.array([e.size for e in ells], dtype=np.intp)
    piece_units = np.repeat(np.arange(count.size), n_pieces)
    ell = np.concatenate(ells)
    piece_knot = (np.cumsum(n_knots) - n_knots)[piece_units] + ell
    piece_coef = (np.cumsum(n_coefs) - n_coefs)[piece_units] + ell - order
    knots = np.concatenate(knots)
    breaks = knots[piece_knot]
    first = np.cumsum(n_pieces) - n_pieces
    later = np.ones(ell.size, dtype=bool)
    later[first] = False
    coefs = np.concatenate(coefs)
    exact = _de_boor_formula(order, knots, coefs, piece_knot, piece_coef)
    # The largest B-spline coefficient of each interval.
    largest = np.abs(coefs[piece_coef])
    for a in range(1, order + 1):
        np.maximum(largest, np.abs(coefs[piece_coef + a]), out=largest)
    # Each piece's polynomial in the offset from its left breakpoint, as
    # scipy converts the unit's spline.
    power = np.zeros((order + 1, ell.size))
    for unit, spline in converted:
        pieces = slice(first[unit], first[unit] + n_pieces[unit])
        power[:, pieces] = sp_interpolate.PPoly.from_spline(spline).c[:, ells[unit]]
    largest *= _EXACT_FRACTION
    formula = _horner_formula(breaks, list(power), largest)
    plan = _Plan(
        breaks[later],
        piece_units[later].astype(np.int32),
        np.flatnonzero(later),
        first,
        "left",
        formula,
        exact,
        per_unit,
    )
    plan.breaks, plan.thresholds = breaks, largest  # for inspection
    return plan


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
