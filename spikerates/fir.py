"""The FIR engine: a streaming convolution along time for many units at once.

:class:`FirStage` filters ``y = (kern * x)[delay:]`` along axis 0 of a
stream of (L, N) chunks, carrying the last ``K - 1`` input rows across
chunk edges.  Three algorithms compute the same sums:

- ``sparse`` adds the kernel at each spike (a sparse matrix times a table of
  kernel pieces; cost grows with the spikes),
- ``direct`` multiplies blocks of rows by a banded Toeplitz matrix,
- ``fft`` uses overlap-save real FFTs and recomputes as direct sums the
  values its round-off could spoil;
- ``recursive``, for the truncated exponential and alpha kernels only, runs
  the filter as a linear recurrence along time whose input also subtracts
  the spike leaving the kernel's support (cost independent of the kernel
  length; see :class:`Recursion`);

``auto`` picks the cheapest per chunk from a cost model of the spike density
and the kernel length.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from spikerates import threads
from spikerates._sparse_kernels import add_coo_product

__all__ = [
    "FIR_METHODS",
    "Recursion",
    "SPARSE_ENTRIES",
    "SPARSE_OUT_VALUES",
    "FirStage",
    "check_finite",
    "flat_nonzero",
    "sampled_density",
    "spike_entries",
]

#: Convolution algorithms of :class:`FirStage` (see its ``method``).
FIR_METHODS = ("auto", "sparse", "direct", "fft", "recursive")

# Rows of output per block of the direct method, by kernel length: a block
# of B rows costs B + K - 1 products per value, and blocks below these sizes
# make BLAS slower than the products they save (measured 1.2-1.7x faster
# than 64 rows for K = 20 to 200).
_DIRECT_BLOCK_SHORT = 16
_DIRECT_BLOCK = 32
_DIRECT_SHORT_TAPS = 64
# Output rows per block of the sparse method: multiples of 8 that are not
# powers of two (see FirStage._sparse_shape).
_SPARSE_BLOCKS = (8, 24, 40, 56, 72, 88, 104, 120, 136)
# Bound on the values of the sparse method's table of kernel pieces.
_SPARSE_TABLE_VALUES = 1 << 19
#: Default bound on the (spike, piece) entries of one sparse product (16
#: bytes each).
SPARSE_ENTRIES = 1 << 20
#: Default bound on the output values of one sparse product: its result (4
#: MB, plus the pieces' overlap) stays within this machine's share of the
#: L3 cache. Re-measured at 1000 units and 10-50 Hz (fastest of 7 runs):
#: 1.2-1.5x faster than twice as many, and half as many costs more calls.
SPARSE_OUT_VALUES = 1 << 19
_FFT_COLUMNS = 32
# Size of the L2 cache assumed by the cost model (one core's share).
_L2_BYTES = 1 << 20
# Work split over threads: at least this many columns per thread, and this
# many output values in all (smaller work runs faster on one thread).
_MIN_THREAD_COLUMNS = 32
_MIN_THREAD_VALUES = 1 << 16


def check_finite(x: np.ndarray, name: str = "spikes") -> None:
    """Raise ValueError if the float array ``x`` holds NaN or infinite values."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    # One cheap reduction first; only a non-finite sum needs the full check
    # (finite values can overflow the sum).
    if not np.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")


def flat_nonzero(a: np.ndarray, rows_per_block: int = 4096) -> np.ndarray:
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


def sampled_density(a: np.ndarray, rows: int = 256) -> float:
    """Fraction of non-zero entries of a 2-D array, from about ``rows`` rows.

    Rows are taken at a regular stride, so the estimate costs a small part
    of a full scan; arrays of at most ``rows`` rows are counted whole.
    """
    if a.size == 0:
        return 0.0
    step = max(1, a.shape[0] // rows)
    sample = a[::step]
    return np.count_nonzero(sample) / sample.size


def _runs(count: int, n_threads: int, most: int | None = None) -> list[tuple[int, int]]:
    """``count`` items in consecutive runs ``(start, stop)`` for ``n_threads``.

    A few runs per thread (at most ``most``), taken in turn, so that a thread
    the system holds back does not hold the others up; one run for one
    thread.
    """
    pieces = 1 if n_threads <= 1 else min(4 * n_threads, count, most or count)
    edges = np.linspace(0, count, max(pieces, 1) + 1).astype(int).tolist()
    return list(zip(edges[:-1], edges[1:], strict=True))


#: No spikes: (rows, units, values) of an empty chunk.
NO_SPIKES = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0))


def spike_entries(
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


# Steps per block of the recursive method: a block of outputs is a matrix
# product of B + d taps per value, and blocks are chained one at a time.
_RECURSIVE_BLOCK = 16
# Output values per group of the recursive method: the group restarts the
# recurrence from a direct sum, and its working set stays in the L2 cache.
_RECURSIVE_GROUP_VALUES = 1 << 17
# Bound on the round-off of the recursive method relative to the smallest
# non-zero output it may produce (the contract is 1e-9).
_RECURSIVE_TOLERANCE = 2.5e-10


class Recursion:
    """A sampled kernel that is a truncated exponential (or alpha) function.

    The FIR output ``y[i] = sum_{k<K} kern[k] a[i + K - 1 - k]`` of a kernel
    ``kern[k] = c r**k`` (``expon``) or ``c k r**k`` (``alpha``) obeys a
    linear recurrence of order d = 1 (or 2) whose input is the row entering
    the kernel's support and the row leaving it (``a[i + K - 1]`` and
    ``a[i - 1]``):

    - expon: ``y[i] = r y[i-1] + kern[0] a[i+K-1] - r kern[K-1] a[i-1]``;
    - alpha, with ``p[i] = sum_{k<K} c r**k a[i+K-1-k]``:
      ``y[i] = r y[i-1] + r p[i-1] - c K r**K a[i-1]`` and
      ``p[i] = r p[i-1] + c a[i+K-1] - c r**K a[i-1]``.

    Blocks of B steps are computed at once: the outputs of a block are a
    matrix product of the block's input rows (B + d taps per output), plus
    the contribution of the state carried from the previous block; only the
    states at the ends of blocks are chained one by one.

    The round-off of a stable recurrence does not grow with the length of
    the record: each step adds a few ulps of the state, and the recurrence
    damps what came before by ``r`` per step, so the error stays below
    ``C eps (B + 1/(1-r)**d) max|state|``. :meth:`FirStage` restarts it from
    a direct sum in every group of rows, checks that bound against the
    smallest non-zero output the group can hold (the smallest kernel value
    times the smallest input value, inputs being >= 0), and falls back to
    the direct sum where the bound exceeds 1e-10 of it. Outputs below half
    that smallest value are the exact zeros of windows without spikes.
    """

    def __init__(self, kind: str, r: float, c: float, kern: np.ndarray) -> None:
        self.kind = kind
        self.r = r
        self.c = c
        self.order = 1 if kind == "expon" else 2
        k = kern.size
        positive = kern[kern > 0]
        #: Smallest non-zero kernel value (a spike in the support gives at
        #: least this times its value).
        self.kern_min = float(positive.min())
        #: Steps after which the recurrence has forgotten its past (1/(1-r)
        #: per pole).
        self.memory = (1.0 / (1.0 - r)) ** self.order
        # State transition A, inputs of the entering and the leaving row
        # (b_new, b_old), output row h (the output is the state's first
        # component).
        if kind == "expon":
            a_mat = np.array([[r]])
            b_new = np.array([kern[0]])
            b_old = np.array([-r * kern[k - 1]])
        else:
            a_mat = np.array([[r, r], [0.0, r]])
            b_new = np.array([0.0, c])
            b_old = np.array([-c * k * r**k, -c * r**k])
        self._a = a_mat
        self._b_new, self._b_old = b_new, b_old
        self._blocks: dict = {}

    @classmethod
    def detect(cls, kern: np.ndarray) -> Recursion | None:
        """The recursion of ``kern`` if it is ``c r**k`` or ``c k r**k``."""
        k = kern.size
        if k < 4 or not np.all(np.isfinite(kern)):
            return None
        steps = np.arange(k)
        if kern[0] > 0 and np.all(kern > 0):
            r = float(kern[1] / kern[0])
            model = kern[0] * r**steps
            kind, c = "expon", float(kern[0])
        elif kern[0] == 0 and np.all(kern[1:] > 0):
            r = float(kern[2] / (2.0 * kern[1]))
            c = float(kern[1] / r)
            model = c * steps * r**steps
            kind = "alpha"
        else:
            return None
        if not 0.0 < r < 1.0:
            return None
        if not np.allclose(model, kern, rtol=1e-12, atol=0.0):
            return None
        return cls(kind, r, c, kern)

    def block_matrices(self, block: int) -> tuple[np.ndarray, ...]:
        """Matrices of a block of ``block`` steps (see :meth:`FirStage`).

        Returns ``(w_new, w_old, carry, a_block)``: ``w_new`` and ``w_old``
        (block + d, block) map the entering and leaving rows of a block to
        its outputs (first ``block`` rows) and to its end state (last d
        rows); ``carry`` (block, d) maps the state before the block to its
        outputs; ``a_block`` (d, d) is the transition over a whole block.
        """
        plan = self._blocks.get(block)
        if plan is None:
            d = self.order
            powers = [np.eye(d)]
            for _ in range(block):
                powers.append(self._a @ powers[-1])
            w_new = np.zeros((block + d, block))
            w_old = np.zeros((block + d, block))
            carry = np.empty((block, d))
            for j in range(block):
                carry[j] = powers[j + 1][0]
                for m in range(j + 1):
                    w_new[j, m] = powers[j - m][0] @ self._b_new
                    w_old[j, m] = powers[j - m][0] @ self._b_old
            for m in range(block):
                w_new[block:, m] = powers[block - 1 - m] @ self._b_new
                w_old[block:, m] = powers[block - 1 - m] @ self._b_old
            plan = (w_new, w_old, carry, powers[block])
            self._blocks[block] = plan
        return plan

    def initial_state(self, kern: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The state (d, N) at the first output of window ``a``, summed directly."""
        head = a[: kern.size]
        # contiguous reversed kernels: BLAS needs unit strides
        reversed_kernels = self._blocks.get("initial")
        if reversed_kernels is None:
            rows = [kern[::-1]]
            if self.kind == "alpha":
                rows.append((self.c * self.r ** np.arange(kern.size))[::-1])
            reversed_kernels = self._blocks["initial"] = np.array(rows)
        return reversed_kernels @ head


class FirStage:
    """One streaming FIR filter ``y = (kern * x)[delay:]`` along axis 0.

    Output row ``m`` is ``sum_k kern[k] x[m + delay - k]`` with ``x = 0``
    outside the rows fed, i.e. the reference's
    ``np.convolve(kern, x, "full")[delay : M + delay]`` per column.

    Input comes as dense rows (:meth:`run`) or as the spikes of a chunk
    (:meth:`run_spikes`); the last ``K - 1`` rows (``K`` taps) are carried to
    the next chunk in the form the chunk came in.
    """

    def __init__(
        self,
        kern: np.ndarray,
        delay: int,
        n_units: int,
        method: str = "auto",
        *,
        sparse_out_values: int = SPARSE_OUT_VALUES,
        sparse_entries: int = SPARSE_ENTRIES,
        compiled: bool = True,
    ):
        if method not in FIR_METHODS:
            raise ValueError(
                f"unknown method {method!r}; expected one of {FIR_METHODS}"
            )
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
        self._tail: np.ndarray | tuple[np.ndarray, ...] = NO_SPIKES
        self._plans: dict[str, object] = {}
        # Bounds of one sparse product, and whether it may use scipy's
        # compiled loop (parameters so that tests can exercise every path).
        self._sparse_out_values = int(sparse_out_values)
        self._sparse_entries = int(sparse_entries)
        self._compiled = bool(compiled)
        # The recursive method: the kernel's recurrence (None for kernels
        # that have none), the smallest positive input value seen, and
        # whether a negative one was (the method needs inputs >= 0).
        self._recursion = Recursion.detect(kern)
        self._smallest_input = math.inf
        self._largest_input = 0.0
        self._negative_input = False
        #: Output rows computed by the recursive method, and those of them
        #: recomputed as direct sums because its round-off bound was too
        #: large (for tests and diagnostics).
        self.recursive_rows = 0
        self.recursive_fallback_rows = 0

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
        method = self.method
        flat = values = None
        if method in ("auto", "recursive") and self._recursion_viable():
            # the recursive method needs the smallest positive value and no
            # negative ones; the non-zero entries also give the density
            flat = flat_nonzero(x)
            values = x.reshape(-1)[flat]
            if validate and not np.isfinite(values).all():
                raise ValueError("spikes hold NaN or infinite values")
            validate = False
            eligible = self._note_inputs(values)
            if method == "auto" or not eligible:
                method = self._choose_method(values.size / x.size)
        elif method in ("auto", "recursive"):
            # Dense input (the output of a first stage) is told by a sample
            # of its rows; otherwise the non-zero entries give the density,
            # and the sparse method's input if it is chosen (one scan of the
            # rows instead of two).
            costs = self._method_costs(sampled_density(x))
            others = min(v for m, v in costs.items() if m != "sparse")
            if costs["sparse"] > 2.0 * others:
                method = min(costs, key=costs.get)
            else:
                flat = flat_nonzero(x)
                method = self._choose_method(flat.size / x.size)
                if method == "sparse":
                    values = x.reshape(-1)[flat]
        if method == "sparse":
            if flat is None:
                flat = flat_nonzero(x)
                values = x.reshape(-1)[flat]
            # NaN and infinities are non-zero: checking the gathered values
            # is enough.
            if validate and not np.isfinite(values).all():
                raise ValueError("spikes hold NaN or infinite values")
            rows, units = np.divmod(flat, self.n_units)
            self._run_sparse(n_rows, rows, units, values, out)
        else:
            if validate:
                check_finite(x)
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
        distinct cells, finite (see :func:`spike_entries`).
        """
        out = self._output(n_rows, out)
        if n_rows == 0:
            return out
        if self.n_units == 0:
            self.rows_in += n_rows
            return out
        method = self.method
        density = values.size / (n_rows * self.n_units)
        if method == "auto":
            method = self._choose_method(density)
        if method == "recursive" and not self._note_inputs(values):
            method = self._choose_method(density)
        if method == "sparse":
            self._run_sparse(n_rows, rows, units, values, out)
        else:
            x = np.zeros((n_rows, self.n_units))
            x[rows, units] = values
            self._run_dense(x, out, method)
        return out

    def flush(self) -> np.ndarray:
        """Rows still owed after the last input (the kernel's tail)."""
        return self.run_spikes(self.delay, *NO_SPIKES)

    def _output(self, n_rows: int, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            out = np.empty((self.rows_ready(n_rows), self.n_units))
        return out

    def _note_inputs(self, values: np.ndarray) -> bool:
        """Record the chunk's non-zero input values; may it go recursive?"""
        if self._recursion is None:
            return False
        if values.size:
            low, high = float(values.min()), float(values.max())
            if low < 0:
                self._negative_input = True
            else:
                self._smallest_input = min(self._smallest_input, low)
                self._largest_input = max(self._largest_input, high)
        return self._recursion_viable()

    def _recursion_viable(self) -> bool:
        """Whether the recursive method may meet its round-off bound.

        The bound of a group uses its peak output, which spike trains keep
        far below its a priori bound (the kernel's sum times the largest
        input); beyond a factor of 100 the groups would mostly fall back to
        direct sums after the work of the recurrence.
        """
        if self._recursion is None or self._negative_input:
            return False
        if self._largest_input == 0:
            return True
        smallest = self._recursion.kern_min * self._smallest_input
        memory = _RECURSIVE_BLOCK + self._recursion.memory + 2.0
        peak_bound = float(np.abs(self.kern).sum()) * self._largest_input
        bound = 2.0 * np.finfo(np.float64).eps * memory * peak_bound
        return bound <= 100.0 * _RECURSIVE_TOLERANCE * smallest

    def _method_costs(self, density: float) -> dict[str, float]:
        """Predicted cost of each method in ns per output value."""
        k = self.n_taps
        # Costs in ns per output value measured on 2 cores (AMD EPYC,
        # OpenBLAS, pocketfft; 100 and 500 units, kernels of 50 to 800 taps,
        # 0.5% to 20% of bins holding a spike); only their ratios matter.  The
        # sparse method costs a little per output value and per spike the
        # products of its kernel pieces; the FFT needs several spikes under
        # each window, or too many of its values are recomputed as direct
        # sums.
        block, pieces = self._sparse_shape()
        # A table of kernel pieces larger than the L2 cache is streamed from
        # further away at every spike (at tau = 0.5 s measured 4 to 16 times
        # the cost per product, rising with the units), and the transposing
        # copy of the sparse product's blocks grows with the units.
        # Per spike: the index arithmetic of its entries (several passes of
        # NumPy over the spikes) and the products, whose rows of the result
        # are scattered over more memory than the cache holds (re-measured:
        # at tau = 0.04 s and 50 Hz the direct method is faster from about
        # 100 units on).
        per_product = 0.3
        if pieces * block * block * 8 > _L2_BYTES:
            per_product = 0.6 * (1.0 + self.n_units / 1000.0)
        per_value = 0.8 * (1.0 + self.n_units / 1500.0)
        cost = {
            "sparse": per_value + density * (100.0 + per_product * pieces * block),
            "direct": 1.5 + 0.021 * (self._direct_block() + k - 1),
            "fft": 8.0 + 0.0012 * self._fft_size() if density * k >= 20 else math.inf,
        }
        if self._recursion_viable() and self._recursion_expected(density):
            # two matrix products of B + d taps per value, passes for the
            # carried state and the zeros (measured about a 200-tap direct
            # product), and a few calls per block of B rows
            cost["recursive"] = 5.5 + 300.0 / max(self.n_units, 1)
        return cost

    def _recursion_expected(self, density: float) -> bool:
        """Whether the round-off bound should hold at this spike density.

        The peak output of spike trains is about the kernel's peak plus
        twice its sum times the density, times the largest value; where the
        bound at that peak fails the groups would fall back to direct sums.
        """
        if self._largest_input == 0:
            return True
        smallest = self._recursion.kern_min * self._smallest_input
        memory = _RECURSIVE_BLOCK + self._recursion.memory + 2.0
        kern = np.abs(self.kern)
        peak = self._largest_input * (kern.max() + 2.0 * density * kern.sum())
        bound = 2.0 * np.finfo(np.float64).eps * memory * peak
        return bound <= _RECURSIVE_TOLERANCE * smallest

    def _choose_method(self, density: float) -> str:
        cost = self._method_costs(density)
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
        """Valid-mode correlation of ``a`` (R, N) with the reversed kernel.

        The work goes in a few runs per thread (see :mod:`spikerates.threads`),
        each run's BLAS calls on one thread: runs of whole row blocks for
        ``direct`` and ``recursive`` (split by columns, each thread's Python
        loop over blocks would run on narrow rows and wait for the other's),
        runs of columns for ``fft``.
        """
        if self._all_zero:
            out[...] = 0.0
            return
        n_out, n_units = out.shape
        n_threads = 1
        if n_out * n_units >= _MIN_THREAD_VALUES:
            n_threads = threads.usable()
        with threads.blas_serial():
            if method == "recursive":
                self._valid_recursive(a, out, n_threads)
                return
            if method == "direct":
                self._valid_direct_rows(a, out, n_threads)
                return
            n_threads = max(1, min(n_threads, n_units // _MIN_THREAD_COLUMNS))

            def piece(cols: tuple[int, int]) -> None:
                c0, c1 = cols
                self._valid_fft(a[:, c0:c1], out[:, c0:c1])

            threads.map_threads(
                piece,
                _runs(n_units, n_threads, n_units // _MIN_THREAD_COLUMNS),
                n_threads,
            )

    # Toeplitz block: row i of a block of outputs against rows i..i+K-1 of
    # the input window, so that out_block = T @ window.
    def _toeplitz(self, n_out: int, width: int | None = None) -> np.ndarray:
        k = self.n_taps
        width = n_out + k - 1 if width is None else width
        idx = np.arange(width)[None, :] - np.arange(n_out)[:, None]
        inside = (idx >= 0) & (idx < k)
        rev = self.kern[::-1]
        return np.where(inside, rev[np.clip(idx, 0, k - 1)], 0.0)

    def _direct_block(self) -> int:
        """Output rows per block of the direct method."""
        return (
            _DIRECT_BLOCK_SHORT if self.n_taps < _DIRECT_SHORT_TAPS else _DIRECT_BLOCK
        )

    def _valid_direct_rows(
        self, a: np.ndarray, out: np.ndarray, n_threads: int
    ) -> None:
        """:meth:`_valid_direct` with runs of whole blocks of rows per thread."""
        block = self._direct_block()
        n_out, k = out.shape[0], self.n_taps

        def piece(rows: tuple[int, int]) -> None:
            r0, r1 = rows
            self._valid_direct(a[r0 : r1 + k - 1], out[r0:r1])

        runs = [
            (b0 * block, min(n_out, b1 * block))
            for b0, b1 in _runs(-(-n_out // block), n_threads)
        ]
        threads.map_threads(piece, runs, n_threads)

    def _valid_direct(self, a: np.ndarray, out: np.ndarray) -> None:
        # Dense banded matrix products over row blocks: exact sums of the
        # same products as a direct convolution, no transposes needed.
        block = self._direct_block()
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

    def _valid_recursive(
        self, a: np.ndarray, out: np.ndarray, n_threads: int = 1
    ) -> None:
        # Groups of rows, each restarted from a direct sum (so the round-off
        # of one group never reaches the next) and checked against its bound;
        # with threads, each takes runs of whole groups.
        n_out, n_units = out.shape
        if n_out == 0:
            return
        smallest = self._recursion.kern_min * self._smallest_input
        if not math.isfinite(smallest):  # no spike seen: all windows empty
            out[...] = 0.0
            return
        k = self.n_taps
        block = _RECURSIVE_BLOCK
        # groups of at least a kernel length: each starts with a direct sum
        rows = max(4 * block, k, _RECURSIVE_GROUP_VALUES // max(n_units, 1))
        rows = -(-rows // block) * block + 1
        starts = list(range(0, n_out, rows))
        peak_bound = float(np.abs(self.kern).sum()) * self._largest_input

        def run(groups: tuple[int, int]) -> tuple[int, int]:
            done = fallback = 0
            for g0 in starts[groups[0] : groups[1]]:
                g1 = min(n_out, g0 + rows)
                fell_back = self._recursive_checked(
                    a[g0 : g1 + k - 1], out[g0:g1], smallest, peak_bound
                )
                done += g1 - g0
                fallback += (g1 - g0) * fell_back
            return done, fallback

        runs = _runs(len(starts), n_threads)
        for done, fallback in threads.map_threads(run, runs, n_threads):
            self.recursive_rows += done
            self.recursive_fallback_rows += fallback

    def _recursive_checked(
        self, window: np.ndarray, group: np.ndarray, smallest: float, peak_bound: float
    ) -> bool:
        """One group by the recurrence, or by direct sums if its bound fails.

        ``smallest`` is the smallest non-zero output the group can hold,
        ``peak_bound`` a bound on its largest. Returns whether it fell back
        to direct sums.
        """
        memory = _RECURSIVE_BLOCK + self._recursion.memory + 2.0
        self._recursive_group(window, group)
        # round-off bound of the group against its smallest possible
        # non-zero output (module constants: see Recursion); the peak output
        # is at most the kernel's sum times the largest input, and is
        # measured only when that does not settle it
        scale = 2.0 * np.finfo(np.float64).eps * memory
        if scale * peak_bound > _RECURSIVE_TOLERANCE * smallest:
            peak = float(group.max())
            if scale * peak > _RECURSIVE_TOLERANCE * smallest:
                self._valid_direct(window, group)
                return True
        # windows without spikes: exact zeros
        np.copyto(group, 0.0, where=group < 0.5 * smallest)
        return False

    def _recursive_buffers(
        self, n_blocks: int, rows: int, order: int, n_units: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scratch arrays of one group, kept from group to group.

        Fresh arrays of this size (about 1 MB) come from the system at every
        call, and their page faults cost more than the products.
        """
        need = n_blocks * rows * n_units
        # one set per thread (threads take whole groups)
        key = ("recursive", threading.get_ident())
        buffers = self._plans.get(key)
        if (
            buffers is None
            or buffers[0].size < need
            or buffers[2].size < (n_blocks * order * n_units)
        ):
            buffers = (
                np.empty(need),
                np.empty(need),
                np.empty(n_blocks * order * n_units),
            )
            self._plans[key] = buffers
        local, other, before = buffers
        shape = (n_blocks, rows, n_units)
        return (
            local[:need].reshape(shape),
            other[:need].reshape(shape),
            before[: n_blocks * order * n_units].reshape(n_blocks, order, n_units),
        )

    def _recursive_group(self, a: np.ndarray, out: np.ndarray) -> None:
        """out[i] = sum_k kern[k] a[i + K - 1 - k] by the kernel's recurrence."""
        rec = self._recursion
        k = self.n_taps
        n_out, n_units = out.shape
        state = rec.initial_state(self.kern, a)  # (d, N) at output 0
        out[0] = state[0]
        done = 1
        block = _RECURSIVE_BLOCK
        while done < n_out:
            n_blocks = (n_out - done) // block
            if n_blocks == 0:
                block = n_out - done
                n_blocks = 1
            w_new, w_old, carry, a_block = rec.block_matrices(block)
            span = n_blocks * block
            # output i takes the row entering the support, a[i + K - 1], and
            # the one leaving it, a[i - 1]
            entering = a[done + k - 1 : done + k - 1 + span].reshape(
                n_blocks, block, n_units
            )
            leaving = a[done - 1 : done - 1 + span].reshape(n_blocks, block, n_units)
            local, other, before = self._recursive_buffers(
                n_blocks, block + rec.order, rec.order, n_units
            )
            np.matmul(w_new, entering, out=local)
            np.matmul(w_old, leaving, out=other)
            local += other
            # chain the states at the ends of blocks, one block at a time
            ends = local[:, block:, :]
            if rec.order == 1:
                factor = float(a_block[0, 0])
                for b in range(n_blocks):
                    before[b] = state
                    state = state * factor
                    state += ends[b]
            else:
                for b in range(n_blocks):
                    before[b] = state
                    state = a_block @ state
                    state += ends[b]
            # outputs: the block's own part plus the carried state's (a
            # broadcast product: matmul is slow for an inner size of 1 or 2)
            target = out[done : done + span].reshape(n_blocks, block, n_units)
            np.multiply(carry[:, :1], before[:, :1, :], out=target)
            for j in range(1, rec.order):
                target += carry[:, j : j + 1] * before[:, j : j + 1, :]
            target += local[:, :block, :]
            done += span

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
        n_parts = -(-n_out * self.n_units // self._sparse_out_values)
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
        group = max(1, self._sparse_entries // window.size)
        for p0 in range(0, pieces, group):
            p = shifts[p0 : p0 + group, None]
            add_coo_product(
                (first - p * n_units).reshape(-1),
                (j + (p - p0) * block).reshape(-1),
                np.broadcast_to(values, (p.shape[0], values.size)).reshape(-1),
                table[p0 * block : (p0 + p.shape[0]) * block],
                result,
                compiled=self._compiled,
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
