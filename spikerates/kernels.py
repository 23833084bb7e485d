"""Kernel rates: the kernels, sampled as the reference samples them, and
:class:`KernelFilter`, the streaming kernel rate estimator.

The kernels are continuous functions of time with unit area, sampled on the
grid's integer steps: ``expon`` and ``alpha`` on ``[0, 5 tau)``, ``gauss``
with ``std = tau / 2`` on ``[-4 std, 4 std)``, and ``expogauss`` (``expon``
followed by ``gauss`` with ``tau / 4``).  The filtering itself is the FIR
engine's (:mod:`spikerates.fir`).
"""

from __future__ import annotations

import math

import numpy as np

from spikerates.errors import ParameterError, ResourceLimitError
from spikerates.fir import FIR_METHODS, FirStage, spike_entries
from spikerates.names import KERNEL_KINDS
from spikerates.params import Integer, positive_seconds

__all__ = [
    "KERNEL_KINDS",
    "KERNEL_METHODS",
    "ExactKernel",
    "MAX_KERNEL_TAPS",
    "KernelFilter",
    "check_kernel_size",
    "check_kind",
    "composite_kernel",
    "kernel_delay",
    "kernel_margins",
    "kernel_stages",
    "kernel_support",
    "kernel_values",
    "sampled_kernel",
    "truncated_mass",
]

#: Convolution algorithms of :class:`KernelFilter` (see its ``method``).
KERNEL_METHODS = FIR_METHODS

_N_UNITS = Integer("n_units", low=0)


def check_kind(kind) -> str:
    """The kernel name in lower case (``ParameterError`` if unknown)."""
    name = str(kind).lower()
    if name not in KERNEL_KINDS:
        raise ParameterError(
            "kind",
            f"unknown kernel {kind!r}; expected one of {', '.join(KERNEL_KINDS)}",
        )
    return name


def kernel_stages(kind: str, tau_steps: float) -> list[tuple[str, float]]:
    """The single kernels applied in turn for ``kind``: ``(name, tau in steps)``."""
    if kind == "expogauss":
        return [("expon", tau_steps), ("gauss", tau_steps / 4)]
    return [(kind, tau_steps)]


def sampled_kernel(
    kind: str, tau_steps: float, *, normalize: bool, causal: bool
) -> tuple[np.ndarray, int]:
    """The reference's kernel sampled on its integer grid, and its delay.

    ``kind`` is one of ``expon``, ``alpha``, ``gauss`` (a single stage, see
    :func:`kernel_stages`) and ``tau_steps`` its time constant in steps.
    Returns the weights (1/steps, float64) and the delay in steps (0 when
    ``causal``).

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


#: Longest sampled kernel, in taps (each stage): longer ones are refused
#: before anything is allocated.
MAX_KERNEL_TAPS = 1 << 24


def check_kernel_size(kind: str, tau: float, dt: float) -> None:
    """Raise ResourceLimitError when ``tau / dt`` needs more than
    :data:`MAX_KERNEL_TAPS` taps for one stage of ``kind``."""
    for stage_kind, stage_tau in kernel_stages(kind, tau / dt):
        first, end = kernel_support(stage_kind, stage_tau)
        taps = math.ceil(end - first)
        if not taps <= MAX_KERNEL_TAPS:
            raise ResourceLimitError(
                f"a {kind} kernel with tau = {tau:g} s on a grid of dt = {dt:g} s "
                f"needs {taps:.3g} taps, above the limit of {MAX_KERNEL_TAPS}; "
                "use a shorter tau or a coarser dt"
            )


def kernel_support(kind: str, tau_steps: float) -> tuple[float, float]:
    """``[first, end)``: where a single kernel is defined, in steps.

    The sampled kernel's taps sit at ``first, first + 1, ...`` below ``end``.
    """
    if kind in ("expon", "alpha"):
        return 0.0, 5.0 * tau_steps
    std = tau_steps / 2.0
    return -4.0 * std, 4.0 * std


def kernel_values(kind: str, x: np.ndarray, tau_steps: float) -> np.ndarray:
    """A single kernel (unit area, 1/steps) at positions ``x`` in steps.

    Zero outside :func:`kernel_support`.
    """
    x = np.asarray(x, dtype=np.float64)
    first, end = kernel_support(kind, tau_steps)
    if kind == "expon":
        values = np.exp(-x / tau_steps) / tau_steps
    elif kind == "alpha":
        values = x * np.exp(-x / tau_steps) / tau_steps**2
    else:
        std = tau_steps / 2.0
        values = np.exp(-0.5 * (x / std) ** 2) / math.sqrt(2 * math.pi * std**2)
    return np.where((x >= first) & (x < end), values, 0.0)


def truncated_mass(kind: str) -> float:
    """The area of a single kernel over its support (< 1: the tails are cut)."""
    if kind == "expon":
        return 1.0 - math.exp(-5.0)
    if kind == "alpha":
        return 1.0 - 6.0 * math.exp(-5.0)
    return math.erf(4.0 / math.sqrt(2.0))


def kernel_delay(kind: str, tau_steps: float, causal: bool) -> int:
    """Delay in steps that centres a single kernel's output on the spike."""
    if causal:
        return 0
    return int(np.round(tau_steps if kind in ("expon", "alpha") else 2 * tau_steps))


def composite_kernel(
    kind: str, tau_steps: float, *, normalize: bool = False, causal: bool = False
) -> tuple[np.ndarray, int]:
    """All stages of ``kind`` as one sampled kernel (weights per step) and its
    delay: output row ``m`` is ``sum_k kern[k] x[m + delay - k]``, away from
    the recording's ends."""
    kern, delay = np.ones(1), 0
    for stage_kind, stage_tau in kernel_stages(kind, tau_steps):
        taps, lag = sampled_kernel(
            stage_kind, stage_tau, normalize=normalize, causal=causal
        )
        kern, delay = np.convolve(kern, taps), delay + lag
    return kern, delay


def kernel_margins(
    kind: str, tau_steps: float, *, causal: bool = False, stages: slice = slice(None)
) -> tuple[int, int]:
    """Rows of input before and after an output row that reach it.

    Output row ``m`` depends on input rows ``m - before .. m + after``, for
    the chosen stages of ``kind``.
    """
    before = after = 0
    for stage_kind, stage_tau in kernel_stages(kind, tau_steps)[stages]:
        taps, lag = sampled_kernel(
            stage_kind, stage_tau, normalize=False, causal=causal
        )
        before += max(0, taps.size - 1 - lag)
        after += lag
    return before, after


class ExactKernel:
    """A single kernel evaluated at each spike's exact offset from grid times.

    The rate at grid time ``t_m`` is ``sum_s K(t_m - s)`` over the spikes,
    with ``K`` the continuous kernel of ``kind`` (scaled to unit area over
    its support, in Hz per spike), delayed as the sampled kernel is, so that
    spikes on grid times give the sampled kernel's shape.

    Parameters
    ----------
    kind : {"gauss", "expon", "alpha"}
    tau_steps : float
        Time constant in steps of the grid.
    dt : float
        Grid step in seconds.
    n_units : int
    causal : bool
        No delay (``expon`` and ``alpha`` only).
    """

    # Bound on the (spike, row) weights computed at once.
    _ENTRIES = 1 << 20

    def __init__(
        self, kind: str, tau_steps: float, dt: float, n_units: int, causal: bool
    ) -> None:
        self.kind = kind
        self.tau_steps = float(tau_steps)
        self.dt = float(dt)
        self.n_units = int(n_units)
        self.first, self.end = kernel_support(kind, self.tau_steps)
        self.delay = kernel_delay(kind, self.tau_steps, causal)
        self.span = self.end - self.first
        self.width = int(math.ceil(self.span)) + 1
        self.scale = 1.0 / (self.dt * truncated_mass(kind))

    def reach(self, k0: int, k1: int) -> tuple[float, float]:
        """Fractional rows ``(lo, hi)``: every spike that reaches output rows
        ``k0 .. k1 - 1`` lies strictly inside (with a row to spare on each
        side, so rounding at the support's ends decides nothing here)."""
        return k0 + self.delay - self.span - 1, k1 + self.delay + 1

    def rows(
        self, k0: int, k1: int, spike_rows: np.ndarray, units: np.ndarray
    ) -> np.ndarray:
        """Rates in Hz at output rows ``k0 .. k1 - 1``.

        Parameters
        ----------
        k0, k1 : int
            Output rows (grid time ``t_m`` is at row ``m``).
        spike_rows : (S,) ndarray of float64
            Each spike's position in rows: ``(s - t_0) / dt`` with ``t_0``
            the time of row 0.
        units : (S,) ndarray of int
            Each spike's unit.

        Returns
        -------
        (k1 - k0, N) ndarray of float64
        """
        n_rows, n_units = k1 - k0, self.n_units
        acc = np.zeros(n_rows * n_units)
        if spike_rows.size == 0 or n_rows == 0:
            return acc.reshape(n_rows, n_units)
        # The first row whose position in the kernel is at or after its start.
        m_first = np.ceil(spike_rows - self.delay).astype(np.int64)
        offsets = np.arange(self.width)
        step = max(1, self._ENTRIES // self.width)
        for i0 in range(0, spike_rows.size, step):
            j = spike_rows[i0 : i0 + step, None]
            m = m_first[i0 : i0 + step, None] + offsets
            # Position of row m in the kernel, in steps.
            x = (m - j) + (self.delay + self.first)
            keep = (m >= k0) & (m < k1) & (x >= self.first) & (x < self.end)
            weights = kernel_values(self.kind, x[keep], self.tau_steps)
            index = (m - k0) * n_units + units[i0 : i0 + step, None]
            acc += np.bincount(index[keep], weights, minlength=acc.size)
        acc *= self.scale
        return acc.reshape(n_rows, n_units)


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
    **engine_options
        Passed to each :class:`spikerates.fir.FirStage` (bounds of the
        sparse products, ``compiled``).

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
        **engine_options,
    ) -> None:
        self.kind = check_kind(kind)
        self.tau = positive_seconds("tau", tau)
        self.dt = positive_seconds("dt", dt)
        self.n_units = _N_UNITS(n_units)
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
        check_kernel_size(self.kind, self.tau, self.dt)
        tau_steps = self.tau / self.dt
        self._stages = []
        for stage_kind, stage_tau in kernel_stages(self.kind, tau_steps):
            kern, delay = sampled_kernel(
                stage_kind, stage_tau, normalize=self.normalize, causal=self.causal
            )
            self._stages.append(
                FirStage(kern, delay, self.n_units, method, **engine_options)
            )
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
        rows, units, values = spike_entries(n_rows, self.n_units, rows, units, values)
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
