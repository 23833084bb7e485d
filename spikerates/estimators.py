"""Firing-rate estimators: spike events, kernel rates and ISI rates.

Conventions (those of the reference toolbox):

- ``t`` is a uniform time grid in seconds, shape (M,).
- ``spikes`` is an (M, N) array, one row per time step and one column per
  unit; a non-zero value is a spike.  For rates in Hz a spike has the value
  ``1 / dt`` (a bin with count ``c`` may equally hold ``c / dt``).
- Rates come out as (M, N) float64 arrays in Hz, whatever the input dtype.

Kernel rates are computed by :class:`KernelFilter`, a streaming convolution
along time for all units at once that carries the kernel's support across
chunk edges; :func:`rates_kernel` runs that same filter over a whole array in
chunks.  ISI rates are computed by :class:`IsiRates` from spike times, one
contiguous piece of the grid at a time; :func:`rates_isi` runs it over a whole
array.  Both agree with the reference implementation to rounding error and
give exact zeros wherever the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spikerates.errors import ParameterError
from spikerates.names import ISI_INTERP_KINDS, KERNEL_KINDS

__all__ = [
    "ISI_INTERP_KINDS",
    "KERNEL_KINDS",
    "IsiRates",
    "KernelFilter",
    "rates_isi",
    "rates_kernel",
    "spikes2events",
    "validate_grid",
]

#: Convolution algorithms of :class:`KernelFilter` (see its ``method``).
KERNEL_METHODS = ("auto", "sparse", "direct", "fft")

_GRID_RTOL = 1e-6
_SPLINE_ORDERS = {"zero": 0, "slinear": 1, "quadratic": 2, "cubic": 3}
_SPLINE_KINDS = {order: kind for kind, order in _SPLINE_ORDERS.items()}
# Interpolation kinds that take the reference's points with repeated times.
_ISI_REPEATS_KINDS = ("nearest", "nearest-up", "previous", "next")

# Rows of output per block of the direct method, chosen by measurement so
# that the working set of a block stays in the L2 cache.
_DIRECT_BLOCK = 64
# Output rows per block of the sparse method: multiples of 8 that are not
# powers of two (see _FirStage._sparse_shape).
_SPARSE_BLOCKS = (8, 24, 40, 56, 72, 88, 104, 120, 136)
# Bound on the values of the sparse method's table of kernel pieces.
_SPARSE_TABLE_VALUES = 1 << 19
# Bound on the (spike, piece) entries of one sparse product (16 bytes each).
_SPARSE_ENTRIES = 1 << 20
# Bound on the output values of one sparse product (larger ones were measured
# to be slower: their working set leaves the cache).
_SPARSE_OUT_VALUES = 1 << 20
_FFT_COLUMNS = 32
# Bytes of float64 input converted per chunk by rates_kernel by default.
_CHUNK_BYTES = 1 << 25
# Elements of output built per piece by rates_isi (transposed, then copied).
_ISI_PIECE = 1 << 19
# Padding (in values) of rows of transposed buffers: a row stride that is a
# power of two makes the transposing copy thrash the cache (measured 5x).
_STRIDE_PAD = 8


# ---------------------------------------------------------------- validation


def _as_float_grid(t) -> np.ndarray:
    t = np.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D array of times, got shape {t.shape}")
    if t.dtype.kind not in "iuf":
        raise ValueError(f"t must hold real numbers, got dtype {t.dtype}")
    return t


def validate_grid(t) -> float:
    """Check that ``t`` is a uniform time grid and return its step.

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds, increasing with a constant step.

    Returns
    -------
    dt : float
        The step in seconds, ``t[1] - t[0]`` computed in float64 (the value
        the reference uses to convert ``tau`` into steps).

    Raises
    ------
    ValueError
        If ``t`` is not 1-D, has fewer than 2 points, holds NaN or infinite
        values, is not increasing, or its steps differ from their mean by
        more than ``1e-6`` relative (or by more than the rounding of the
        values themselves, for coarse dtypes such as float32).
    """
    t = _as_float_grid(t)
    if t.size < 2:
        raise ValueError(f"t must hold at least 2 time points, got {t.size}")
    t64 = t.astype(np.float64, copy=False)
    if not np.isfinite(t64).all():
        raise ValueError("t holds NaN or infinite values")
    mean_step = (t64[-1] - t64[0]) / (t64.size - 1)
    if not mean_step > 0:
        raise ValueError("t must be increasing")
    steps = np.diff(t64)
    # Steps cannot be more regular than the values are precise.
    resolution = 4 * np.finfo(t.dtype).eps if t.dtype.kind == "f" else 0.0
    tol = max(_GRID_RTOL * mean_step, resolution * float(np.abs(t64).max()))
    worst = float(np.abs(steps - mean_step).max())
    if worst > tol:
        raise ValueError(
            "t must be a uniform grid: steps range from "
            f"{steps.min():.9g} to {steps.max():.9g} s (mean {mean_step:.9g} s, "
            f"tolerance rtol {_GRID_RTOL:g})"
        )
    return float(t64[1] - t64[0])


def _spikes_matrix(spikes, n_steps: int, name: str = "spikes") -> np.ndarray:
    """Return ``spikes`` as an (M, N) real array (1-D means one unit)."""
    spikes = np.asarray(spikes)
    if spikes.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {spikes.dtype}")
    if spikes.ndim == 1:
        spikes = spikes[:, None]
    if spikes.ndim != 2:
        raise ValueError(
            f"{name} must be an (M, N) array (time steps x units), "
            f"got {spikes.ndim} dimensions"
        )
    if spikes.shape[0] != n_steps:
        raise ValueError(
            f"{name} has {spikes.shape[0]} time steps (rows) but t has {n_steps}; "
            "expected shape (M, N) with M = len(t)"
        )
    return spikes


def _check_finite(x: np.ndarray, name: str = "spikes") -> None:
    if x.dtype.kind != "f" or x.size == 0:
        return
    # One cheap reduction first; only a non-finite sum needs the full check
    # (finite values can overflow the sum).
    if not np.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")


def _positive_seconds(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(
            name, f"must be a number in seconds, got {value!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(name, f"must be > 0 seconds, got {value!r}")
    return value


def _check_tau(tau) -> float:
    return _positive_seconds("tau", tau)


def _check_kind(kind) -> str:
    name = str(kind).lower()
    if name not in KERNEL_KINDS:
        raise ParameterError(
            "kind",
            f"unknown kernel {kind!r}; expected one of {', '.join(KERNEL_KINDS)}",
        )
    return name


def _check_interp(interp) -> str:
    if interp not in ISI_INTERP_KINDS:
        raise ParameterError(
            "interp",
            f"unknown interpolation {interp!r}; expected one of "
            f"{', '.join(ISI_INTERP_KINDS)}",
        )
    return interp


def _flat_nonzero(a: np.ndarray, rows_per_block: int = 4096) -> np.ndarray:
    """Flat indices of the non-zero entries of a C-contiguous 2-D array.

    Comparing to zero first and scanning a boolean array is several times
    faster than ``np.flatnonzero`` on floats; blocks keep the mask in cache.
    """
    n_rows, n_cols = a.shape
    if n_rows * n_cols <= rows_per_block * max(n_cols, 1):
        return np.flatnonzero(a.reshape(-1) != 0)
    parts = []
    for r0 in range(0, n_rows, rows_per_block):
        block = a[r0 : r0 + rows_per_block].reshape(-1)
        parts.append(np.flatnonzero(block != 0) + r0 * n_cols)
    return np.concatenate(parts)


# ------------------------------------------------------------------- events


def spikes2events(t, spikes) -> list[np.ndarray]:
    """Return the spike times of each unit.

    Parameters
    ----------
    t : (M,) array_like
        Times in seconds at which ``spikes`` is defined.
    spikes : (N, M) array_like
        Spike data whose **last axis is time** (the transpose of the (M, N)
        layout used by the rate estimators); a non-zero value is a spike.  A
        1-D array is one unit.

    Returns
    -------
    list of N ndarrays
        The times (float64 seconds, ascending) of the non-zero entries of
        each unit.  Spike values are ignored: a bin with a count of 2 gives
        one time.

    Raises
    ------
    ValueError
        If the shapes disagree or either array holds NaN or infinite values.
    """
    t = _as_float_grid(t).astype(np.float64, copy=False)
    if not np.isfinite(t).all():
        raise ValueError("t holds NaN or infinite values")
    spikes = np.asarray(spikes)
    if spikes.dtype.kind not in "biuf":
        raise ValueError(f"spikes must hold real numbers, got dtype {spikes.dtype}")
    if spikes.ndim == 1:
        spikes = spikes[None, :]
    if spikes.ndim != 2:
        raise ValueError(
            f"spikes must be an (N, M) array, got {spikes.ndim} dimensions"
        )
    if spikes.shape[-1] != t.size:
        raise ValueError(
            f"the last axis of spikes has length {spikes.shape[-1]} but t has "
            f"{t.size}; spikes2events expects (N, M), time last"
        )
    _check_finite(spikes)
    if spikes.shape[0] == 0:
        return []
    units, steps = np.nonzero(spikes)
    counts = np.bincount(units, minlength=spikes.shape[0])
    return np.split(t[steps], np.cumsum(counts)[:-1])


# ------------------------------------------------------------------ kernels

# No spikes: (rows, units, values) of an empty chunk.
_NO_SPIKES = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0))


def _spike_entries(
    n_rows: int, n_units: int, rows, units, values
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(rows, units, values)`` of a chunk, one entry per cell.

    Entries of one cell are added up in their order.  Raises ValueError for
    non-integer indices, indices outside the chunk, non-finite values or
    lengths that differ.
    """
    rows, units = np.asarray(rows), np.asarray(units)
    if (rows.size and rows.dtype.kind not in "iu") or (
        units.size and units.dtype.kind not in "iu"
    ):
        raise ValueError("rows and units must be integer arrays")
    rows = rows.astype(np.intp, copy=False).reshape(-1)
    units = units.astype(np.intp, copy=False).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(rows.size, values.item())
    values = values.reshape(-1)
    if not rows.size == units.size == values.size:
        raise ValueError(
            f"rows, units and values must have one length, got {rows.size}, "
            f"{units.size} and {values.size}"
        )
    if rows.size == 0:
        return rows, units, values
    if rows.min() < 0 or rows.max() >= n_rows:
        raise ValueError(f"rows must lie in [0, {n_rows}) (the chunk's time steps)")
    if units.min() < 0 or units.max() >= n_units:
        raise ValueError(f"units must lie in [0, {n_units})")
    if not np.isfinite(values).all():
        raise ValueError("spike values hold NaN or infinite values")
    # Entries ordered by unit then row, or by row then unit, show repeated
    # cells as equal neighbours; other orders are sorted first.
    key = units * n_rows + rows
    steps = np.diff(key)
    if (steps > 0).all():
        return rows, units, values
    by_row = False
    if not (steps >= 0).all():
        row_key = rows * n_units + units
        row_steps = np.diff(row_key)
        if (row_steps > 0).all():
            return rows, units, values
        if (row_steps >= 0).all():
            by_row, key, steps = True, row_key, row_steps
        else:
            order = np.argsort(key, kind="stable")
            key, values = key[order], values[order]
            steps = np.diff(key)
    starts = np.flatnonzero(np.concatenate([[True], steps != 0]))
    values = np.add.reduceat(values, starts)
    key = key[starts]
    if by_row:
        rows, units = np.divmod(key, n_units)
    else:
        units, rows = np.divmod(key, n_rows)
    return rows, units, values


def _add_coo_product(
    rows: np.ndarray,
    cols: np.ndarray,
    data: np.ndarray,
    dense: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out += A @ dense`` for the coordinate matrix ``A[rows, cols] = data``.

    Each entry adds ``data * dense[col]`` to ``out[row]``, in entry order.
    ``out`` is C-contiguous float64; ``rows`` and ``cols`` share one integer
    dtype.  Uses scipy's compiled loop into ``out`` directly when this scipy
    has it, otherwise scipy's public product and one addition.
    """
    kernel = _coo_kernel()
    if kernel is not None:
        kernel(
            data.size,
            dense.shape[1],
            rows,
            cols,
            data,
            dense.reshape(-1),
            out.reshape(-1),
        )
        return
    from scipy import sparse as sp_sparse  # deferred: slow to import

    matrix = sp_sparse.coo_array((data, (rows, cols)), shape=(out.shape[0], len(dense)))
    out += matrix @ dense


_COO_KERNEL: list = []


def _coo_kernel():
    """scipy's ``coo_matmat_dense`` (an internal function: ``Y += A @ X``), or
    None when this scipy lacks it or it does not compute that."""
    if not _COO_KERNEL:
        kernel = None
        try:
            from scipy.sparse import _sparsetools  # deferred: slow to import

            kernel = _sparsetools.coo_matmat_dense
            rows, cols = np.array([0, 1, 1], np.int32), np.array([1, 0, 1], np.int32)
            x = np.array([[1.0, 2.0], [3.0, 4.0]])
            y = np.ones((2, 2))
            kernel(
                3,
                2,
                rows,
                cols,
                np.array([2.0, 3.0, 4.0]),
                x.reshape(-1),
                y.reshape(-1),
            )
            if not np.array_equal(y, [[7.0, 9.0], [16.0, 23.0]]):
                kernel = None
        except Exception:  # absent, or another signature: use the public API
            kernel = None
        _COO_KERNEL.append(kernel)
    return _COO_KERNEL[0]


def _sampled_kernel(
    kind: str, tau_steps: float, *, normalize: bool, causal: bool
) -> tuple[np.ndarray, int]:
    """The reference's kernel sampled on its integer grid, and its delay.

    The kernels are continuous functions (unit area in steps) evaluated at
    ``np.arange`` positions, so their length and delay follow the reference
    exactly: ``expon`` and ``alpha`` on ``[0, 5 tau)``, ``gauss`` with
    ``std = tau / 2`` on ``[-4 std, 4 std)``; the delay (``tau`` or ``4 std``,
    rounded half to even) centres the output on the spike.
    """
    if kind == "expon":
        k = np.arange(0, 5 * tau_steps)
        kern = np.exp(-k / tau_steps) / tau_steps
        delay = tau_steps
    elif kind == "alpha":
        alpha = 1.0 / tau_steps
        k = np.arange(0, 5 * tau_steps)
        kern = alpha**2 * k * np.exp(-alpha * k)
        delay = tau_steps
    else:  # gauss
        std = tau_steps / 2.0
        k = np.arange(-4 * std, 4 * std)
        kern = np.exp(-0.5 * (k / std) ** 2) / np.sqrt(2 * np.pi * std**2)
        delay = 4 * std
    delay = 0 if causal else int(np.round(delay))
    if normalize:
        mass = kern.sum()
        if not mass > 0:
            raise ParameterError(
                "tau", f"{tau_steps:g} steps is too short to sample a {kind} kernel"
            )
        kern = kern / mass
    return np.ascontiguousarray(kern, dtype=np.float64), delay


class _FirStage:
    """One streaming FIR filter ``y = (kern * x)[delay:]`` along axis 0.

    Output row ``m`` is ``sum_k kern[k] x[m + delay - k]`` with ``x = 0``
    outside the rows fed, i.e. the reference's
    ``np.convolve(kern, x, "full")[delay : M + delay]`` per column.

    Input comes as dense rows (:meth:`run`) or as the spikes of a chunk
    (:meth:`run_spikes`); the last ``K - 1`` rows (``K`` taps) are carried to
    the next chunk in the form the chunk came in.
    """

    def __init__(self, kern: np.ndarray, delay: int, n_units: int, method: str):
        self.kern = kern
        self.delay = delay
        self.n_units = n_units
        self.method = method
        self.n_taps = kern.size
        # An alpha kernel shorter than a step samples only its zero at t = 0.
        self._all_zero = not kern.any()
        self.rows_in = 0
        # The last K - 1 input rows: a dense array, or spikes (rows counted
        # from the next chunk's first row, so negative; units; values).
        self._tail: np.ndarray | tuple[np.ndarray, ...] = _NO_SPIKES
        self._plans: dict[str, object] = {}

    # -- bookkeeping

    def rows_ready(self, n_rows: int) -> int:
        """Rows of output that ``n_rows`` more input rows make final."""
        start = max(self.rows_in, self.delay)
        return max(0, self.rows_in + n_rows - start)

    def run(
        self, x: np.ndarray, out: np.ndarray | None = None, *, validate: bool = False
    ) -> np.ndarray:
        """Feed (L, N) float64 C-contiguous rows; return the rows now final.

        With ``validate``, raise ValueError (before any state changes) if the
        rows hold NaN or infinite values.
        """
        n_rows = x.shape[0]
        out = self._output(n_rows, out)
        if n_rows == 0:
            return out
        if x.size == 0:
            self.rows_in += n_rows
            return out
        if self.method == "auto":
            method = self._choose_method(np.count_nonzero(x) / x.size)
        else:
            method = self.method
        if method == "sparse":
            flat = _flat_nonzero(x)
            values = x.reshape(-1)[flat]
            # NaN and infinities are non-zero: checking the gathered values
            # is enough.
            if validate and not np.isfinite(values).all():
                raise ValueError("spikes hold NaN or infinite values")
            rows, units = np.divmod(flat, self.n_units)
            self._run_sparse(n_rows, rows, units, values, out)
        else:
            if validate:
                _check_finite(x)
            self._run_dense(x, out, method)
        return out

    def run_spikes(
        self,
        n_rows: int,
        rows: np.ndarray,
        units: np.ndarray,
        values: np.ndarray,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Feed ``n_rows`` rows given by their non-zero entries.

        ``rows`` (within the chunk), ``units`` and float64 ``values`` name
        distinct cells, finite (see :meth:`KernelFilter.process_spikes`).
        """
        out = self._output(n_rows, out)
        if n_rows == 0:
            return out
        if self.n_units == 0:
            self.rows_in += n_rows
            return out
        method = self.method
        if method == "auto":
            method = self._choose_method(values.size / (n_rows * self.n_units))
        if method == "sparse":
            self._run_sparse(n_rows, rows, units, values, out)
        else:
            x = np.zeros((n_rows, self.n_units))
            x[rows, units] = values
            self._run_dense(x, out, method)
        return out

    def flush(self) -> np.ndarray:
        """Rows still owed after the last input (the kernel's tail)."""
        return self.run_spikes(self.delay, *_NO_SPIKES)

    def _output(self, n_rows: int, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            out = np.empty((self.rows_ready(n_rows), self.n_units))
        return out

    def _choose_method(self, density: float) -> str:
        k = self.n_taps
        # Costs in ns per output value measured on 2 cores (AMD EPYC,
        # OpenBLAS, pocketfft; 100 and 500 units, kernels of 50 to 800 taps,
        # 0.5% to 20% of bins holding a spike); only their ratios matter.  The
        # sparse method costs a little per output value and per spike the
        # products of its kernel pieces; the FFT needs several spikes under
        # each window, or too many of its values are recomputed as direct
        # sums.
        block, pieces = self._sparse_shape()
        cost = {
            "sparse": 0.8 + density * (35.0 + 0.15 * pieces * block),
            "direct": 1.5 + 0.021 * (_DIRECT_BLOCK + k - 1),
            "fft": 8.0 + 0.0012 * self._fft_size() if density * k >= 20 else math.inf,
        }
        return min(cost, key=cost.get)

    # -- dense input: direct or FFT

    def _dense_tail(self) -> np.ndarray:
        keep = self.n_taps - 1
        tail = self._tail
        if isinstance(tail, np.ndarray):
            return tail
        rows, units, values = tail
        dense = np.zeros((keep, self.n_units))
        dense[rows + keep, units] = values
        return dense

    def _run_dense(self, x: np.ndarray, out: np.ndarray, method: str) -> None:
        """out[i - skip] = sum_k kern[k] v[i + K - 1 - k] for skip <= i < L.

        ``v`` is the carried tail (K - 1 rows) followed by ``x`` (L rows);
        rows before the delay are never output, so not computed either.
        """
        n_rows = x.shape[0]
        keep = self.n_taps - 1
        skip = n_rows - out.shape[0]
        history = self._dense_tail()
        head = min(n_rows, keep)
        if skip < head:
            # Rows whose window reaches into the carried history.
            edge = np.concatenate([history[skip:], x[:head]])
            self._valid(edge, out[: head - skip], method)
        first = max(skip, keep)
        if n_rows > first:
            self._valid(x[first - keep :], out[first - skip :], method)
        if n_rows >= keep:
            self._tail = x[n_rows - keep :].copy()
        else:
            self._tail = np.concatenate([history[n_rows:], x])
        self.rows_in += n_rows

    def _valid(self, a: np.ndarray, out: np.ndarray, method: str) -> None:
        """Valid-mode correlation of ``a`` (R, N) with the reversed kernel."""
        if self._all_zero:
            out[...] = 0.0
        elif method == "direct":
            self._valid_direct(a, out)
        else:
            self._valid_fft(a, out)

    # Toeplitz block: row i of a block of outputs against rows i..i+K-1 of
    # the input window, so that out_block = T @ window.
    def _toeplitz(self, n_out: int, width: int | None = None) -> np.ndarray:
        k = self.n_taps
        width = n_out + k - 1 if width is None else width
        idx = np.arange(width)[None, :] - np.arange(n_out)[:, None]
        inside = (idx >= 0) & (idx < k)
        rev = self.kern[::-1]
        return np.where(inside, rev[np.clip(idx, 0, k - 1)], 0.0)

    def _valid_direct(self, a: np.ndarray, out: np.ndarray) -> None:
        # Dense banded matrix products over row blocks: exact sums of the
        # same products as a direct convolution, no transposes needed.
        block = _DIRECT_BLOCK
        t_mat = self._plans.get("direct")
        if t_mat is None:
            t_mat = self._plans["direct"] = self._toeplitz(block)
        k = self.n_taps
        n_out = out.shape[0]
        for i0 in range(0, n_out, block):
            b = min(block, n_out - i0)
            window = a[i0 : i0 + b + k - 1]
            if b == block:
                np.matmul(t_mat, window, out=out[i0 : i0 + b])
            else:
                np.matmul(t_mat[:b, : b + k - 1], window, out=out[i0 : i0 + b])

    # -- spikes: the sparse method

    def _sparse_shape(self) -> tuple[int, int]:
        """Output rows per block and kernel pieces of the sparse method.

        A spike adds ``pieces * block >= block + K - 1`` products, in
        ``pieces`` rows of ``block`` values; the block size balances the
        two, measured optimum about ``3.5 sqrt(K)``, from sizes that are not
        powers of two (which make the transposing copy thrash the cache),
        and bounds the table of kernel pieces to a few MB.
        """
        k = self.n_taps
        fits = [b for b in _SPARSE_BLOCKS if (k + b) * b <= _SPARSE_TABLE_VALUES]
        block = min(fits or _SPARSE_BLOCKS[:1], key=lambda b: abs(b - 3.5 * k**0.5))
        return block, -(-(block + k - 1) // block)

    def _run_sparse(
        self,
        n_rows: int,
        rows: np.ndarray,
        units: np.ndarray,
        values: np.ndarray,
        out: np.ndarray,
    ) -> None:
        """The sparse method over the carried tail's spikes and the chunk's."""
        keep = self.n_taps - 1
        skip = n_rows - out.shape[0]
        tail = self._tail
        if isinstance(tail, np.ndarray):
            flat = np.flatnonzero(tail)
            t_rows, t_units = np.divmod(flat, self.n_units)
            tail = (t_rows - keep, t_units, tail.reshape(-1)[flat])
        t_rows, t_units, t_values = tail
        rows = np.concatenate([t_rows, rows])
        units = np.concatenate([t_units, units])
        values = np.concatenate([t_values, values])
        last = rows >= n_rows - keep
        self._tail = (rows[last] - n_rows, units[last], values[last])
        self.rows_in += n_rows
        # Output i covers the rows i + skip - (K - 1) .. i + skip of the
        # chunk, at window positions i .. i + K - 1; spikes before the first
        # output's window are not needed.
        window = rows + (keep - skip)
        if skip:
            needed = window >= 0
            window, units, values = window[needed], units[needed], values[needed]
        n_out = out.shape[0]
        n_parts = -(-n_out * self.n_units // _SPARSE_OUT_VALUES)
        if n_parts <= 1:
            self._sparse_product(window, units, values, out)
            return
        block = self._sparse_shape()[0]
        step = -(-n_out // (n_parts * block)) * block
        # Long chunks go in pieces of outputs, each with the spikes of its
        # window: the working set of a product stays in the cache.
        if not (np.diff(window) >= 0).all():
            order = np.argsort(window, kind="stable")
            window, units, values = window[order], units[order], values[order]
        for o0 in range(0, n_out, step):
            o1 = min(n_out, o0 + step)
            lo, hi = np.searchsorted(window, [o0, o1 + keep])
            self._sparse_product(
                window[lo:hi] - o0, units[lo:hi], values[lo:hi], out[o0:o1]
            )

    def _sparse_table(self) -> np.ndarray:
        """Kernel pieces: row ``p * block + j`` holds the weights, on the rows
        of an output block, of a spike ``p`` blocks and ``j`` rows after the
        block's first window position."""
        table = self._plans.get("sparse")
        if table is None:
            block, pieces = self._sparse_shape()
            table = self._toeplitz(block, pieces * block).T
            table = self._plans["sparse"] = np.ascontiguousarray(table)
        return table

    def _sparse_result(self, n_rows: int, block: int) -> np.ndarray:
        """A zeroed (n_rows, block) array for a sparse product.

        The memory is kept from chunk to chunk: a fresh array of this size
        per chunk was measured to cost more than the product itself (page
        faults), depending on the allocator's state.
        """
        buffer = self._plans.get("sparse result")
        if buffer is None or buffer.size < n_rows * block:
            buffer = self._plans["sparse result"] = np.empty(n_rows * block)
        result = buffer[: n_rows * block].reshape(n_rows, block)
        result.fill(0.0)
        return result

    def _sparse_product(
        self, window: np.ndarray, units: np.ndarray, values: np.ndarray, out: np.ndarray
    ) -> None:
        """out[i, u] = sum of kern[i + K - 1 - w] v over the spikes (w, u, v).

        ``window`` holds positions ``w >= 0``, ``w < n_out + K - 1``.  Output
        rows go in blocks of ``block``: a spike at ``w = q * block + j`` adds
        ``v`` times row ``p * block + j`` of the table to block ``q - p`` of
        its unit, for each piece ``p``.  That is one sparse (coordinate)
        matrix times the table for all blocks and units at once, with a row
        of ``block`` values per block and unit, transposed into place; each
        output sums exactly the reference's products (and products with zero
        weights), so windows without spikes give exact zeros.
        """
        n_out, n_units = out.shape
        if n_out == 0:
            return
        if window.size == 0 or self._all_zero:
            out[...] = 0.0
            return
        block, pieces = self._sparse_shape()
        table = self._sparse_table()
        n_blocks = -(-n_out // block)
        # Result rows: (block, unit) for blocks -(pieces - 1) .. the last one
        # a spike reaches; those outside 0 .. n_blocks - 1 are dropped.
        span = (n_out + self.n_taps - 2) // block + pieces
        index = np.int32 if span * n_units < 2**31 else np.int64
        q, j = np.divmod(window.astype(index, copy=False), block)
        first = (q + (pieces - 1)) * n_units + units.astype(index, copy=False)
        shifts = np.arange(pieces, dtype=index)
        result = self._sparse_result(span * n_units, block)
        # Pieces in groups, so the coordinate arrays stay bounded.
        group = max(1, _SPARSE_ENTRIES // window.size)
        for p0 in range(0, pieces, group):
            p = shifts[p0 : p0 + group, None]
            _add_coo_product(
                (first - p * n_units).reshape(-1),
                (j + (p - p0) * block).reshape(-1),
                np.broadcast_to(values, (p.shape[0], values.size)).reshape(-1),
                table[p0 * block : (p0 + p.shape[0]) * block],
                result,
            )
        blocks = result.reshape(span, n_units, block)[pieces - 1 :]
        target = out if out.flags.c_contiguous else np.empty_like(out)
        full = n_out // block
        target[: full * block].reshape(full, block, n_units)[...] = blocks[
            :full
        ].transpose(0, 2, 1)
        if full < n_blocks:
            target[full * block :] = blocks[full, :, : n_out - full * block].T
        if target is not out:
            out[...] = target

    def _fft_size(self) -> int:
        # Measured optimum: about four kernel lengths, at least 1024.
        return max(1024, 1 << math.ceil(math.log2(4 * self.n_taps)))

    def _fft_plan(self) -> tuple[int, np.ndarray, float]:
        nfft = self._fft_size()
        plan = self._plans.get("fft")
        if plan is None:
            from scipy import fft as sp_fft  # deferred: slow to import

            kern_f = sp_fft.rfft(self.kern, nfft)[:, None]
            # Bound on the FFT round-off of an output per unit of the input
            # window's 2-norm (FFT error analysis: log2(n) eps (||k||_1 +
            # sqrt(n) ||k||_2) ||x||_2; measured errors stay 100x below it),
            # scaled so that values above it are accurate to 1e-10.
            k1 = float(np.abs(self.kern).sum())
            k2 = float(np.sqrt(np.dot(self.kern, self.kern)))
            eps = np.finfo(np.float64).eps
            scale = 1e10 * math.log2(nfft) * eps * (k1 + math.sqrt(nfft) * k2)
            plan = self._plans["fft"] = (nfft, kern_f, scale)
        return plan

    def _valid_fft(self, a: np.ndarray, out: np.ndarray) -> None:
        # Overlap-save with real FFTs along time, over blocks of a few dozen
        # columns so the work stays in cache; pocketfft reads the strided
        # columns itself.  Outputs too small to be trusted to 1e-10 relative
        # after round-off (including every exact 0: windows without spikes)
        # are recomputed as direct sums, so the result keeps the precision
        # and the exact zeros of a direct convolution.
        from scipy import fft as sp_fft  # deferred: slow to import

        k = self.n_taps
        nfft, kern_f, scale = self._fft_plan()
        rev = self.kern[::-1]
        step = nfft - k + 1
        n_out, n_units = out.shape
        for c0 in range(0, n_units, _FFT_COLUMNS):
            c1 = min(n_units, c0 + _FFT_COLUMNS)
            for i0 in range(0, n_out, step):
                b = min(step, n_out - i0)
                seg = a[i0 : i0 + b + k - 1, c0:c1]
                spec = sp_fft.rfft(seg, nfft, axis=0)
                spec *= kern_f
                y = sp_fft.irfft(spec, nfft, axis=0)[k - 1 : k - 1 + b]
                trusted = scale * np.sqrt(np.einsum("ij,ij->j", seg, seg))
                risky = np.abs(y) < trusted
                n_risky = np.count_nonzero(risky)
                if n_risky * 16 > risky.size:
                    # BLAS needs the column block contiguous.
                    self._valid_direct(np.ascontiguousarray(seg), y)
                elif n_risky:
                    rows, cols = np.nonzero(risky)
                    windows = np.lib.stride_tricks.sliding_window_view(seg, k, axis=0)
                    y[rows, cols] = windows[rows, cols] @ rev
                out[i0 : i0 + b, c0:c1] = y


class KernelFilter:
    """Streaming kernel rate estimator for many units at once.

    Feed consecutive (L, N) chunks of spikes to :meth:`process`; each call
    returns the rows of rates that are final, lagging the input by
    :attr:`delay` rows.  :meth:`finish` returns the remaining rows, so the
    total output has as many rows as the input.  The concatenated output is
    the same as :func:`rates_kernel` on the whole array (to rounding error)
    whatever the chunk sizes.

    Parameters
    ----------
    kind : {"gauss", "expon", "alpha", "expogauss"}
        Kernel shape (case-insensitive).  ``expogauss`` is ``expon`` followed
        by ``gauss`` with ``tau / 4``, applied to the first output truncated to
        the recording, as in the reference.
    tau : float
        Time constant of the kernel in seconds (> 0).  ``gauss`` uses a
        standard deviation of ``tau / 2``.
    dt : float
        Time step of the grid in seconds (> 0).
    n_units : int
        Number of columns N of every chunk.
    normalize : bool, optional
        Scale each sampled kernel so that its discrete mass is exactly 1
        (then ``sum(rates) * dt`` equals the number of spikes away from the
        borders).  The default keeps the reference's continuous normalisation.
    causal : bool, optional
        Do not shift ``expon`` and ``alpha`` by their delay, so a spike only
        affects the rate at and after its time step.  Not defined for kernels
        with a Gaussian part (``ParameterError``).
    border_correction : bool, optional
        Divide each rate by the fraction of the kernel's mass that falls
        inside the recording, so rates near its start and end are not biased
        low by the spikes the recording cannot show.  Rows whose kernel lies
        wholly inside the recording are left exactly as they are.
    method : {"auto", "sparse", "direct", "fft"}, optional
        Convolution algorithm.  ``sparse`` adds the kernel at each spike
        (cost grows with the number of spikes), ``direct`` multiplies blocks
        by a banded Toeplitz matrix, ``fft`` uses overlap-save real FFTs and
        recomputes as direct sums the values its round-off could spoil
        (every exact 0 among them); ``auto`` (default) picks the cheapest per
        chunk from the spike density and the kernel length.  All agree with
        a direct convolution to 1e-10 relative; ``sparse`` and ``direct`` sum
        exactly the reference's products.

    Attributes
    ----------
    delay : int
        Lag in rows between input and output.
    dt, tau : float
        As given, in seconds.
    """

    def __init__(
        self,
        kind: str,
        tau: float,
        dt: float,
        n_units: int,
        *,
        normalize: bool = False,
        causal: bool = False,
        border_correction: bool = False,
        method: str = "auto",
    ) -> None:
        self.kind = _check_kind(kind)
        self.tau = _check_tau(tau)
        self.dt = _positive_seconds("dt", dt)
        if isinstance(n_units, bool) or int(n_units) != n_units or n_units < 0:
            raise ParameterError("n_units", f"must be an integer >= 0, got {n_units!r}")
        self.n_units = int(n_units)
        if method not in KERNEL_METHODS:
            raise ParameterError(
                "method", f"unknown method {method!r}; expected one of {KERNEL_METHODS}"
            )
        if causal and self.kind in ("gauss", "expogauss"):
            raise ParameterError(
                "causal",
                f"a causal {self.kind!r} kernel is not defined; use expon or alpha",
            )
        self.normalize = bool(normalize)
        self.causal = bool(causal)
        self.method = method
        tau_steps = self.tau / self.dt
        if self.kind == "expogauss":
            specs = [("expon", tau_steps), ("gauss", tau_steps / 4)]
        else:
            specs = [(self.kind, tau_steps)]
        self._stages = []
        for stage_kind, stage_tau in specs:
            kern, delay = _sampled_kernel(
                stage_kind, stage_tau, normalize=self.normalize, causal=self.causal
            )
            self._stages.append(_FirStage(kern, delay, self.n_units, method))
        self.delay = sum(stage.delay for stage in self._stages)
        self._finished = False
        self.border_correction = bool(border_correction)
        self._mass = None
        if self.border_correction:
            # The same filter run on ones gives, row by row, the kernel mass
            # that falls inside the recording (it follows the chunks, so the
            # end of the recording is known when finish() emits its rows).
            self._mass = KernelFilter(
                self.kind,
                self.tau,
                self.dt,
                1,
                normalize=self.normalize,
                causal=self.causal,
                method="direct",
            )
            self._full_mass = math.prod(float(st.kern.sum()) for st in self._stages)

    @property
    def kernels(self) -> list[np.ndarray]:
        """The sampled kernel of each stage (weights per step, in 1/steps)."""
        return [stage.kern.copy() for stage in self._stages]

    def rows_ready(self, n_rows: int) -> int:
        """Rows :meth:`process` returns for a chunk of ``n_rows`` rows now."""
        ready = n_rows
        for stage in self._stages:
            # Later stages see what the earlier ones emit.
            ready = stage.rows_ready(ready)
        return ready

    def process(self, chunk, out: np.ndarray | None = None) -> np.ndarray:
        """Filter the next rows of spikes.

        Parameters
        ----------
        chunk : (L, N) array_like
            The next L time steps of spikes (any real dtype; computed in
            float64).  L may be 0 or smaller than the kernel.
        out : (L', N) float64 ndarray, optional
            Where to write the result (C-contiguous, L' =
            :meth:`rows_ready`).

        Returns
        -------
        (L', N) ndarray
            Rates in Hz of the rows that are now final.
        """
        if self._finished:
            raise RuntimeError("process() called after finish()")
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[1] != self.n_units:
            raise ValueError(
                f"chunk must have shape (L, {self.n_units}) (time steps x units), "
                f"got {x.shape}"
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(f"chunk must hold real numbers, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        first, *later = self._stages
        n_rows = x.shape[0]
        if not later:
            return self._correct(first.run(x, out, validate=True), n_rows)
        x = first.run(x, validate=True)
        for stage in later[:-1]:
            x = stage.run(x)
        return self._correct(later[-1].run(x, out), n_rows)

    def process_spikes(
        self, n_rows: int, rows, units, values, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Filter the next rows of spikes, given as their non-zero entries.

        The same as :meth:`process` on the (``n_rows``, N) chunk that is zero
        except for ``chunk[rows, units] = values``, without building that
        chunk when the spikes are sparse.

        Parameters
        ----------
        n_rows : int
            The number L of time steps of the chunk (>= 0).
        rows, units : (S,) array_like of int
            Time step within the chunk (``0 <= rows < L``) and unit
            (``0 <= units < N``) of each entry.  Entries of one cell are added
            up, as a dense chunk would hold their sum; the work is least when
            the entries are ordered by unit then row, or by row then unit.
        values : (S,) array_like or float
            The value of each entry (``1 / dt`` per spike for rates in Hz).
        out : (L', N) float64 ndarray, optional
            As for :meth:`process`.

        Returns
        -------
        (L', N) ndarray
            Rates in Hz of the rows that are now final.
        """
        if self._finished:
            raise RuntimeError("process_spikes() called after finish()")
        if isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 0:
            raise ValueError(f"n_rows must be an integer >= 0, got {n_rows!r}")
        n_rows = int(n_rows)
        rows, units, values = _spike_entries(n_rows, self.n_units, rows, units, values)
        first, *later = self._stages
        if not later:
            return self._correct(
                first.run_spikes(n_rows, rows, units, values, out), n_rows
            )
        x = first.run_spikes(n_rows, rows, units, values)
        for stage in later[:-1]:
            x = stage.run(x)
        return self._correct(later[-1].run(x, out), n_rows)

    def finish(self) -> np.ndarray:
        """Return the remaining rows (N columns) after the last chunk.

        The total of rows returned by :meth:`process` and :meth:`finish`
        equals the total of rows fed.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        parts = []
        for i, stage in enumerate(self._stages):
            tail = stage.flush()
            for later in self._stages[i + 1 :]:
                tail = later.run(tail)
            parts.append(tail)
        rest = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self._mass is not None:
            self._scale(rest, self._mass.finish()[:, 0])
        return rest

    def _correct(self, out: np.ndarray, n_rows: int) -> np.ndarray:
        """Apply the border correction to rows just computed from n_rows."""
        if self._mass is not None:
            self._scale(out, self._mass.process(np.ones((n_rows, 1)))[:, 0])
        return out

    def _scale(self, out: np.ndarray, mass: np.ndarray) -> None:
        # Rows whose kernel lies inside the recording get the full mass, up
        # to the rounding of its sum: leave them untouched.  A row with no
        # mass inside (a zero tap only) has rate 0 whatever the scale.
        full = self._full_mass
        clipped = (np.abs(mass - full) > 1e-12 * abs(full)) & (mass != 0)
        if clipped.any():
            out[clipped] *= (full / mass[clipped])[:, None]


def rates_kernel(
    t,
    spikes,
    kind: str = "gauss",
    tau: float = 0.04,
    *,
    normalize: bool = False,
    causal: bool = False,
    border_correction: bool = False,
    chunk_steps: int | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Estimate firing rates by convolving spikes with a kernel.

    Parameters
    ----------
    t : (M,) array_like
        Uniform time grid in seconds (``dt = t[1] - t[0]``).
    spikes : (M, N) array_like
        Spikes, one row per time step; a spike has the value ``1 / dt`` for
        rates in Hz.  A 1-D array is one unit (the result is then (M, 1)).
    kind : {"gauss", "expon", "alpha", "expogauss"}, optional
        Kernel shape, see :class:`KernelFilter`.
    tau : float, optional
        Kernel time constant in seconds (default 0.04).
    normalize, causal, border_correction, method
        See :class:`KernelFilter`.
    chunk_steps : int, optional
        Time steps converted and filtered per chunk (default: about 32 MB of
        float64).  The result does not depend on it.

    Returns
    -------
    rates : (M, N) ndarray of float64
        Rates in Hz.  With the defaults this is the reference's
        ``rates_kernel``: kernels sampled as continuous functions, output
        centred on the spike by the kernel's delay, no border correction.

    Raises
    ------
    ValueError
        For a non-uniform or too short ``t``, disagreeing shapes, NaN or
        infinite values; ``ParameterError`` for a bad ``kind``, ``tau``,
        ``chunk_steps`` or ``causal`` with a Gaussian kernel.
    """
    kind = _check_kind(kind)
    tau = _check_tau(tau)
    dt = validate_grid(t)
    spikes = _spikes_matrix(spikes, np.asarray(t).size)
    n_steps, n_units = spikes.shape
    if chunk_steps is None:
        chunk_steps = max(1024, _CHUNK_BYTES // (8 * max(n_units, 1)))
    elif (
        isinstance(chunk_steps, bool)
        or int(chunk_steps) != chunk_steps
        or chunk_steps < 1
    ):
        raise ParameterError(
            "chunk_steps", f"must be an integer >= 1, got {chunk_steps!r}"
        )
    chunk_steps = int(chunk_steps)
    filt = KernelFilter(
        kind,
        tau,
        dt,
        n_units,
        normalize=normalize,
        causal=causal,
        border_correction=border_correction,
        method=method,
    )
    rates = np.empty((n_steps, n_units))
    row = 0
    for k0 in range(0, n_steps, chunk_steps):
        n_ready = filt.rows_ready(min(chunk_steps, n_steps - k0))
        filt.process(spikes[k0 : k0 + chunk_steps], out=rates[row : row + n_ready])
        row += n_ready
    rates[row:] = filt.finish()
    return rates


# ---------------------------------------------------------------- ISI rates


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
    def _from_sorted(cls, times, counts, t_first, t_last, midpoint, interp) -> IsiRates:
        """Build from unit-major spike times, ascending and distinct per unit."""
        self = cls.__new__(cls)
        self._setup(times, counts, float(t_first), float(t_last), midpoint, interp)
        return self

    def _setup(self, times, counts, t_first, t_last, midpoint, interp) -> None:
        self.interp = _check_interp(interp)
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
        if self.interp in ("zero", "linear"):
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
        transposed = np.empty((self.n_units, t_chunk.size))
        for u, f in enumerate(self._unit_interpolants()):
            transposed[u] = f(t_chunk)
        out[...] = transposed.T


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


def _spike_rows_by_unit(spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time-step indices of the non-zero entries, grouped by unit (column).

    Returns the row indices (ascending within each unit, units in order) and
    the count per unit.  Raises ValueError on NaN or infinite values.
    """
    n_units = spikes.shape[1]
    spikes = np.ascontiguousarray(spikes)
    flat = _flat_nonzero(spikes)
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


def rates_isi(t, spikes, midpoint: bool = False, interp: str = "zero") -> np.ndarray:
    """Estimate firing rates from inter-spike intervals.

    Parameters
    ----------
    t : (M,) array_like
        Uniform time grid in seconds.
    spikes : (M, N) array_like
        Spikes, one row per time step; any non-zero value is a spike (the
        value itself is ignored).  A 1-D array is one unit.
    midpoint : bool, optional
        Place each ``1 / ISI`` point at the middle of its interval instead of
        its start.
    interp : str, optional
        Interpolation between the points, one of :data:`ISI_INTERP_KINDS`
        (default ``"zero"``).

    Returns
    -------
    rates : (M, N) ndarray of float64
        Rates in Hz, as the reference's ``rates_isi`` (see :class:`IsiRates`
        for the cases where the reference raises).

    Raises
    ------
    ValueError
        For a non-uniform or too short ``t``, disagreeing shapes, NaN or
        infinite values; ``ParameterError`` for an unknown ``interp``.
    """
    interp = _check_interp(interp)
    validate_grid(t)
    t = np.asarray(t, dtype=np.float64)
    spikes = _spikes_matrix(spikes, t.size)
    n_steps, n_units = spikes.shape
    rows, counts = _spike_rows_by_unit(spikes)
    estimator = IsiRates._from_sorted(t[rows], counts, t[0], t[-1], midpoint, interp)
    rates = np.empty((n_steps, n_units))
    piece = min(4096, max(64, _ISI_PIECE // max(n_units, 1) // 64 * 64))
    for k0 in range(0, n_steps, piece):
        estimator.evaluate(t[k0 : k0 + piece], out=rates[k0 : k0 + piece])
    return rates
