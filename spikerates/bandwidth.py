"""Optimal fixed bandwidth of a Gaussian rate kernel (Shimazaki & Shinomoto 2010).

For spikes ``x_1..x_N`` observed over ``[a, b]`` and a Gaussian kernel
``k_w`` of standard deviation ``w``, the estimate of the mean integrated
squared error of the kernel rate ``λ_w(t) = sum_i k_w(t - x_i)`` over the
window, up to a constant, is

    C(w) = integral_a^b λ_w(t)^2 dt - 2 sum_{i != j} k_w(x_i - x_j).

The integral is ``sum_{i,j} psi_w(x_i - x_j)`` (``psi_w = k_w * k_w``, the
Gaussian of standard deviation ``sqrt(2) w``) less the part of ``λ_w^2``
that lies outside the window. Leaving that part in (integrating over the
whole line) penalises wide kernels for the rate they spread beyond the
ends, which on short trains shifts the optimum by tens of percent.

Both pair sums are computed from the power spectrum of the binned spike
train: with ``X`` the discrete Fourier transform of the spike counts on
bins of ``dt`` (zero-padded so that no lag wraps around),
``sum_{i,j} g(x_i - x_j) ~ sum_f |X(f)|^2 G(f) / (P dt)`` with ``G`` the
Fourier transform of ``g``. One FFT of the train gives these sums for every
bandwidth. The part outside the window comes from the spikes within six
widths of either end, binned on a 32nd of the width (see
:class:`_Edges`), one small FFT per width.

The bandwidths tried are derived from the data, not from a fixed number of
evaluation points: log-spaced from two bins to the length of the recording,
24 per decade, then refined by a golden-section search around the best
one. The bins start coarse (a 65536th of the recording, or ``dt`` if that
is coarser) and are made 16 times finer, down to ``dt``, while the optimum
is within 16 bins (each finer pass tries only the widths below 64 coarse
bins, which the coarser pass could not resolve; widths above
:data:`WIDE_BINS` bins are evaluated on bins :data:`WIDE_FACTOR` times
coarser), so that binning never shifts the optimum by more than a fraction
of a percent and the chosen bandwidth does not depend on the recording's
length (a fixed 1000-point evaluation grid does: its bins, and with them
the smallest bandwidth it can choose, grow with the recording).

The kernel of :func:`spikerates.estimators.rates_kernel` with
``kind="gauss"`` has standard deviation ``tau / 2``: use ``tau = 2 * sigma``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from spikerates.errors import ParameterError, ResourceLimitError

__all__ = [
    "BandwidthResult",
    "bandwidth_cost",
    "optimal_bandwidth",
    "optimal_bandwidths",
]

#: Bandwidths tried per decade on the first, log-spaced pass.
PER_DECADE = 24

#: Largest bandwidth tried, as a fraction of the recording length.
MAX_FRACTION = 1.0

#: Bins of the coarsest pass per recording.
COARSE_BINS = 1 << 16

#: The optimum must span at least this many bins to be accepted.
MIN_BINS_PER_WIDTH = 16

#: Widths above this many bins are evaluated on bins WIDE_FACTOR times coarser.
WIDE_BINS = 4096

#: Coarsening of the bins for the widest widths.
WIDE_FACTOR = 16

#: Largest number of bins of one FFT.
MAX_BINS = 1 << 24

# Gaussian transforms below exp(-40) add nothing at float64 precision.
_CUTOFF = np.sqrt(2 * 40.0)

# Width of the frequency bands of a pair sum, in units of 1 / (2 pi sigma).
_BAND = 0.01

# Edge terms: bins per kernel width, and the reach in widths of a spike's
# kernel (``exp(-R**2)`` of the squared rate is neglected beyond it).
_EDGE_BINS = 32
_EDGE_REACH = 6


@dataclass(frozen=True)
class BandwidthResult:
    """The chosen bandwidth and the cost curve behind it.

    Attributes
    ----------
    sigma : float
        Optimal standard deviation of the Gaussian kernel, seconds (NaN when
        there are fewer than two spikes or no time to spread them over).
    widths : ndarray, shape (K,)
        Bandwidths evaluated, seconds, ascending.
    cost : ndarray, shape (K,)
        ``C(w)`` at ``widths`` (spikes squared per second; only differences
        matter). Each width's cost comes from the pass that evaluated it; a
        width evaluated by two passes appears twice.
    dt : float
        Bin width of the pass that chose ``sigma``, seconds.
    n_spikes : int
        Spikes in the recording window.
    """

    sigma: float
    widths: np.ndarray
    cost: np.ndarray
    dt: float
    n_spikes: int


class _Spectrum:
    """Power spectrum of a binned spike train, for cost evaluations."""

    def __init__(self, counts: np.ndarray, dt: float, pad_bins: int) -> None:
        from scipy import fft  # deferred: slow to import

        n = counts.size
        size = fft.next_fast_len(n + pad_bins, real=True)
        spec = fft.rfft(counts.astype(np.float64), size)
        power = spec.real**2 + spec.imag**2
        # rfft keeps one side: the other side's terms count twice.
        power[1:] *= 2.0
        if size % 2 == 0:
            power[-1] /= 2.0
        self.power = power / (size * dt)
        self.freq = np.arange(power.size) / (size * dt)
        self.df = 1.0 / (size * dt)
        self.n_spikes = float(counts.sum())
        # Prefix sums of the power and its first moment, for band sums.
        self._p0 = np.concatenate([[0.0], np.cumsum(self.power)])
        self._p1 = np.concatenate([[0.0], np.cumsum(self.power * self.freq)])

    def pair_sum(self, sigma: float) -> float:
        """``sum_{i,j} g(x_i - x_j)`` for a Gaussian ``g`` of sd ``sigma``.

        The transform of ``g`` is smooth on the scale ``1 / (2 pi sigma)``:
        over frequency bands a hundredth of that wide, the power is summed
        and the transform taken at the band's power-weighted mean frequency
        (a relative error of about 1e-6 per band).
        """
        scale = 2 * np.pi * sigma
        m = int(np.searchsorted(self.freq, _CUTOFF / scale))
        band = _BAND / scale
        if band < 4 * self.df or m < 4096:
            arg = scale * self.freq[:m]
            return float(self.power[:m] @ np.exp(-0.5 * arg * arg))
        edges = np.searchsorted(self.freq, np.arange(0.0, _CUTOFF / scale, band))
        edges = np.unique(np.append(edges, m))
        mass = np.diff(self._p0[edges])
        moment = np.diff(self._p1[edges])
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.where(mass > 0, moment / mass, 0.0)
        arg = scale * centre
        return float(mass @ np.exp(-0.5 * arg * arg))

    def cost(self, w: float, edges: _Edges) -> float:
        """Shimazaki & Shinomoto's cost ``C(w)`` over the window whose ends
        ``edges`` describes."""
        diag = 2.0 * self.n_spikes / (np.sqrt(2 * np.pi) * w)
        inside = self.pair_sum(np.sqrt(2.0) * w) - edges.outside(w)
        return inside - 2.0 * self.pair_sum(w) + diag


class _Edges:
    """The squared kernel estimate integrated outside the window.

    ``λ(t) = sum_i k_w(t - x_i)`` outside ``[t_start, t_stop]`` comes from
    the spikes within :data:`_EDGE_REACH` widths of either end. For each
    width they are binned on ``w / _EDGE_BINS`` from that end (so the
    resolution follows the width and the bins start exactly at the edge),
    smoothed with one small FFT, and ``λ^2`` is summed over the bins outside
    (midpoint rule). Each spike is shared linearly between its two nearest
    bin centres, which keeps its position on average, so the relative error
    of the result is about 1e-4 whatever the width; beyond the reach, the
    neglected terms are below ``exp(-36)``.
    """

    def __init__(self, times: np.ndarray, t_start: float, t_stop: float) -> None:
        # Distances of the spikes from each end, ascending, and their prefix
        # sums (small near the end, so differences of them stay exact).
        self.dist = [times - t_start, (t_stop - times)[::-1]]
        self.sums = [np.concatenate([[0.0], np.cumsum(d)]) for d in self.dist]
        n = _EDGE_REACH * _EDGE_BINS
        # Outside bins, spike bins and the reach of the last spike's kernel,
        # so that no tail wraps into the outside bins.
        self.n_bins = n
        self.size = 3 * n
        self._centres = np.arange(n + 1) + 0.5
        self._lower = np.concatenate([[-0.5], self._centres[:-1]])
        self._cut = np.zeros(n + 2, dtype=np.int64)
        freq = np.arange(self.size // 2 + 1) / self.size
        self.gain = np.exp(-0.5 * (2 * np.pi * freq * _EDGE_BINS) ** 2)

    def outside(self, w: float) -> float:
        """``integral of λ^2`` outside the window, spikes squared per second."""
        from scipy import fft  # deferred: slow to import

        h = w / _EDGE_BINS
        # Bin centres (k + 1/2) h, k = 0..n: the spikes between centres k - 1
        # and k go to those two bins in proportion to their distances (the
        # ones nearer the end than the first centre, to it and the centre
        # at -h/2, outside).
        centres = self._centres * h
        counts = np.zeros((2, self.size))
        n = self.n_bins
        for row, (dist, sums) in enumerate(zip(self.dist, self.sums, strict=True)):
            if not dist.size or dist[0] >= centres[-1]:
                continue
            cut = self._cut
            cut[1:] = np.searchsorted(dist, centres)
            number = np.diff(cut).astype(np.float64)
            # Interval k lies between centres k - 1 and k (index 0: -h/2..h/2).
            upper = (np.diff(sums[cut]) - self._lower * h * number) / h
            counts[row, : n + 1] += upper
            counts[row, :n] += (number - upper)[1:]
            counts[row, -1] += number[0] - upper[0]
        if not counts.any():
            return 0.0
        smooth = fft.irfft(fft.rfft(counts, self.size) * self.gain, self.size) / h
        out = smooth[:, self.size - self.n_bins :]
        return float(h * np.sum(out * out))


def _binned(times: np.ndarray, t_start: float, dt: float, n_bins: int) -> np.ndarray:
    k = np.floor((times - t_start) / dt).astype(np.int64)
    np.clip(k, 0, n_bins - 1, out=k)
    return np.bincount(k, minlength=n_bins).astype(np.float64)


def _pooled(spike_times: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(spike_times, np.ndarray) and spike_times.ndim == 1:
        return spike_times.astype(np.float64)
    parts = [np.asarray(t, dtype=np.float64).ravel() for t in spike_times]
    return np.concatenate(parts) if parts else np.zeros(0)


def _golden(f, lo: float, hi: float, n_iter: int = 40) -> tuple[float, list]:
    """Minimum of ``f`` over ``log w`` in ``[lo, hi]`` by golden section."""
    phi = (np.sqrt(5.0) - 1) / 2
    a, b = np.log(lo), np.log(hi)
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = f(np.exp(c)), f(np.exp(d))
    seen = [(np.exp(c), fc), (np.exp(d), fd)]
    for _ in range(n_iter):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = f(np.exp(c))
            seen.append((np.exp(c), fc))
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = f(np.exp(d))
            seen.append((np.exp(d), fd))
    best = min(seen, key=lambda p: p[1])
    return float(best[0]), seen


def _level_cost(
    counts: np.ndarray, dt: float, top: float, edges: _Edges
) -> Callable[[float], float]:
    """The cost of widths up to ``top`` on bins of ``dt``.

    The padding that keeps a width's pair sums from wrapping round grows
    with the width: widths above :data:`WIDE_BINS` bins are evaluated on
    bins :data:`WIDE_FACTOR` times coarser (still more than 256 per width,
    where binning moves the cost by about 1e-5 of itself), so that the
    widest ones do not make the FFT of the fine bins several times longer
    than the recording.
    """
    split = WIDE_BINS * dt
    fine_top = min(top, split)
    fine = _Spectrum(counts, dt, int(np.ceil(5 * np.sqrt(2) * fine_top / dt)))
    if top <= split:
        return lambda w: fine.cost(w, edges)
    n = -(-counts.size // WIDE_FACTOR) * WIDE_FACTOR
    merged = np.zeros(n)
    merged[: counts.size] = counts
    merged = merged.reshape(-1, WIDE_FACTOR).sum(axis=1)
    wide_dt = dt * WIDE_FACTOR
    wide = _Spectrum(merged, wide_dt, int(np.ceil(5 * np.sqrt(2) * top / wide_dt)))
    return lambda w: (wide if w > split else fine).cost(w, edges)


def bandwidth_cost(
    spike_times: np.ndarray | Sequence[np.ndarray],
    widths: np.ndarray,
    t_start: float,
    t_stop: float,
    dt: float,
) -> np.ndarray:
    """Shimazaki & Shinomoto's cost at given bandwidths, on bins of ``dt``.

    Parameters
    ----------
    spike_times : ndarray, shape (n,), or list of ndarray
        Spike times in seconds (a list is superimposed).
    widths : ndarray, shape (K,)
        Kernel standard deviations in seconds, > 0.
    t_start, t_stop : float
        Recording window in seconds; spikes outside it are left out.
    dt : float
        Bin width in seconds.

    Returns
    -------
    ndarray, shape (K,)
    """
    times = _pooled(spike_times)
    times = times[(times >= t_start) & (times <= t_stop)]
    n_bins = max(1, int(np.ceil((t_stop - t_start) / dt - 1e-9)))
    widths = np.asarray(widths, dtype=np.float64)
    pad = int(np.ceil(5 * np.sqrt(2) * widths.max() / dt)) if widths.size else 0
    spectrum = _Spectrum(_binned(times, t_start, dt, n_bins), dt, pad)
    edges = _Edges(np.sort(times), t_start, t_stop)
    return np.array([spectrum.cost(w, edges) for w in widths])


def optimal_bandwidth(
    spike_times: np.ndarray | Sequence[np.ndarray],
    t_start: float | None = None,
    t_stop: float | None = None,
    *,
    dt: float = 1e-3,
    max_width: float | None = None,
) -> BandwidthResult:
    """Optimal fixed Gaussian bandwidth of one train (or several superimposed).

    Parameters
    ----------
    spike_times : ndarray, shape (n,), or list of ndarray
        Spike times in seconds. A list of trains is superimposed into one
        (the pooled bandwidth of several units, or of trials aligned to an
        event).
    t_start, t_stop : float, optional
        Recording window in seconds; default the first and last spike.
    dt : float
        Finest bin width in seconds (the resolution of the rate grid); the
        smallest bandwidth tried is about two bins of it.
    max_width : float, optional
        Largest bandwidth tried, seconds; default the length of the window.

    Returns
    -------
    BandwidthResult

    Raises
    ------
    ParameterError
        On a non-positive ``dt`` or ``max_width``, or a window that ends
        before it starts.
    ResourceLimitError
        When the window needs more than :data:`MAX_BINS` bins of ``dt``.
    """
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ParameterError(
            "dt", f"must be a finite number of seconds > 0, got {dt:g}"
        )
    times = np.sort(_pooled(spike_times))
    if t_start is None:
        t_start = float(times[0]) if times.size else 0.0
    if t_stop is None:
        t_stop = float(times[-1]) if times.size else t_start
    t_start, t_stop = float(t_start), float(t_stop)
    if not t_stop >= t_start:
        raise ParameterError(
            "t_stop", f"must not be before t_start ({t_start:g} s), got {t_stop:g}"
        )
    times = times[(times >= t_start) & (times <= t_stop)]
    duration = t_stop - t_start
    empty = np.zeros(0)
    if times.size < 2 or duration <= 0:
        return BandwidthResult(np.nan, empty, empty, dt, int(times.size))
    w_max = MAX_FRACTION * duration if max_width is None else float(max_width)
    if not (np.isfinite(w_max) and w_max > 0):
        raise ParameterError(
            "max_width", f"must be a number of seconds > 0, got {w_max:g}"
        )
    if duration / dt > MAX_BINS:
        raise ResourceLimitError(
            f"choosing a bandwidth over {duration:g} s at dt = {dt:g} s needs "
            f"{duration / dt:.3g} bins, more than the limit of {MAX_BINS}; "
            "give a coarser dt"
        )
    edges = _Edges(times, t_start, t_stop)
    level_dt = max(dt, duration / COARSE_BINS)
    low, top = 2.0 * level_dt, max(w_max, 4.0 * level_dt)
    widths: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    while True:
        n_bins = max(1, int(np.ceil(duration / level_dt - 1e-9)))
        cost_of = _level_cost(
            _binned(times, t_start, level_dt, n_bins), level_dt, top, edges
        )
        n_widths = max(3, int(np.ceil(PER_DECADE * np.log10(top / low))) + 1)
        grid = np.geomspace(low, top, n_widths)

        cost = np.array([cost_of(w) for w in grid])
        j = int(np.argmin(cost))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        best, seen = _golden(cost_of, lo, hi, n_iter=30)
        if cost[j] < cost_of(best):
            best = float(grid[j])
        widths += [grid, np.array([w for w, _ in seen])]
        costs += [cost, np.array([c for _, c in seen])]
        if best >= MIN_BINS_PER_WIDTH * level_dt or level_dt <= dt:
            break
        # Finer bins, for the widths the coarse pass could not resolve (and
        # a margin above them: the optimum of this pass is among them).
        top = min(top, 4.0 * MIN_BINS_PER_WIDTH * level_dt)
        level_dt = max(dt, level_dt / 16.0)
        low = 2.0 * level_dt
    all_widths, all_costs = np.concatenate(widths), np.concatenate(costs)
    order = np.argsort(all_widths, kind="stable")
    return BandwidthResult(
        best, all_widths[order], all_costs[order], level_dt, int(times.size)
    )


def optimal_bandwidths(
    spike_times: Sequence[np.ndarray],
    t_start: float | None = None,
    t_stop: float | None = None,
    *,
    dt: float = 1e-3,
    pool: bool = False,
    max_width: float | None = None,
) -> np.ndarray:
    """Optimal Gaussian standard deviation of every unit, or one for all.

    Parameters
    ----------
    spike_times : list of ndarray
        N arrays of spike times in seconds.
    t_start, t_stop : float, optional
        Recording window in seconds, common to all units; default the first
        and last spike over all units.
    dt, max_width : float
        As in :func:`optimal_bandwidth`.
    pool : bool
        Choose one bandwidth for the superimposed trains of all units.

    Returns
    -------
    ndarray, shape (N,)
        Standard deviations in seconds (all equal with ``pool``); NaN for a
        unit with fewer than two spikes in the window.
    """
    firsts = [t.min() for t in spike_times if np.size(t)]
    lasts = [t.max() for t in spike_times if np.size(t)]
    if t_start is None:
        t_start = min(firsts) if firsts else 0.0
    if t_stop is None:
        t_stop = max(lasts) if lasts else t_start
    n = len(spike_times)
    if pool:
        sigma = optimal_bandwidth(
            spike_times, t_start, t_stop, dt=dt, max_width=max_width
        ).sigma
        return np.full(n, sigma)
    return np.array(
        [
            optimal_bandwidth(t, t_start, t_stop, dt=dt, max_width=max_width).sigma
            for t in spike_times
        ],
        dtype=np.float64,
    ).reshape(n)
