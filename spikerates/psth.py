"""Peri-stimulus time histograms: rates aligned to event times.

For every event time ``e`` and unit, the spikes around ``e`` give one trial
rate on the grid ``t[k] = low + (k + 1) * dt`` (seconds relative to the
event, ``k = 0..M-1``, ``M = (high - low) / dt``):

* **binned** (``kind=None``): spike counts in ``(t[k] - dt, t[k]]`` (the
  binning rule of the data model) divided by ``dt``, in Hz;
* **kernel** (``kind`` and ``tau``): the kernel rate of
  :func:`spikerates.estimators.rates_kernel` at those grid times, computed
  from the trial's spikes binned on ``dt`` with a margin that covers the
  kernel's reach, then cropped, so spikes outside the window that the kernel
  reaches are used (as the rate commands do). ``tau="auto"`` chooses the
  Gaussian bandwidth of each unit from its superimposed trials (Shimazaki &
  Shinomoto 2010, :mod:`spikerates.bandwidth`).

Trials are grouped by a label per event (one PSTH per condition). Per unit
and group the result holds the mean rate over trials, its standard error
(sample standard deviation over ``sqrt(n)``) and a percentile bootstrap
confidence band over trials.

A trial is left out for a unit when its window ``[e + low, e + high]`` is
not inside the recording (``t_start..t_stop`` when the data states them,
else the first to the last spike of all units) or not inside one of the
unit's observation intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerates.errors import ParameterError
from spikerates.names import KERNEL_KINDS
from spikerates.spiketrains import SpikeTrains, bin_index

__all__ = ["PSTH", "compute_psth", "read_psth", "trial_windows_valid"]

# Bootstrap means computed at once: about 2**22 values (32 MB) per block.
_BOOT_BLOCK = 1 << 22

# Below this fraction of non-zero trial rates the bootstrap uses a sparse
# product.
_SPARSE_FRACTION = 0.2


@dataclass
class PSTH:
    """Trial-averaged rates of every unit, per group of trials.

    Attributes
    ----------
    t : ndarray, shape (M,)
        Grid times relative to the event, seconds.
    unit_ids : ndarray, shape (N,)
    groups : ndarray, shape (G,)
        Group labels (text); ``["all"]`` without grouping.
    mean, sem, ci_low, ci_high : ndarray, shape (G, M, N)
        Mean rate over trials, its standard error and the bootstrap band, Hz
        (NaN where a unit has no trial in a group; ``sem`` needs two trials).
    n_trials : ndarray of int64, shape (G, N)
        Trials used per group and unit.
    n_dropped : ndarray of int64, shape (G, N)
        Trials left out because their window leaves the recording or the
        unit's observation intervals.
    tau : ndarray, shape (N,) or None
        Kernel time constant used per unit, seconds (None when binned).
    trials : ndarray, shape (K, M, N) or None
        Per-trial rates in Hz, NaN for trials left out (when asked for).
    event_times : ndarray, shape (K,)
        The event times, seconds.
    event_groups : ndarray, shape (K,)
        The group of each event.
    attrs : dict
        Parameters: window, dt, kind, ci, n_bootstrap, seed.
    """

    t: np.ndarray
    unit_ids: np.ndarray
    groups: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_trials: np.ndarray
    n_dropped: np.ndarray
    tau: np.ndarray | None
    trials: np.ndarray | None
    event_times: np.ndarray
    event_groups: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


def _recording_window(trains: SpikeTrains) -> tuple[float, float]:
    firsts = [t[0] for t in trains.spike_times if t.size]
    lasts = [t[-1] for t in trains.spike_times if t.size]
    lo = trains.t_start if trains.t_start is not None else min(firsts, default=0.0)
    hi = trains.t_stop if trains.t_stop is not None else max(lasts, default=lo)
    return float(lo), float(hi)


def trial_windows_valid(
    trains: SpikeTrains, events: np.ndarray, low: float, high: float
) -> np.ndarray:
    """Which trial windows ``[e + low, e + high]`` each unit fully observes.

    Parameters
    ----------
    trains : SpikeTrains
    events : ndarray, shape (K,)
        Event times in seconds.
    low, high : float
        Window relative to the event, seconds.

    Returns
    -------
    ndarray of bool, shape (K, N)
    """
    events = np.asarray(events, dtype=np.float64).reshape(-1)
    rec_lo, rec_hi = _recording_window(trains)
    # A relative tolerance keeps a window that ends exactly on the recording's
    # end despite rounding of e + high.
    tol = 1e-9 * max(1.0, abs(rec_lo), abs(rec_hi))
    starts, stops = events + low, events + high
    inside = (starts >= rec_lo - tol) & (stops <= rec_hi + tol)
    valid = np.repeat(inside[:, None], trains.n_units, axis=1)
    if trains.obs_intervals is not None:
        for u, iv in enumerate(trains.obs_intervals):
            if iv.shape[0] == 0:
                valid[:, u] = False
                continue
            j = np.searchsorted(iv[:, 0], starts + tol, side="right") - 1
            ok = j >= 0
            jj = np.maximum(j, 0)
            ok &= stops <= iv[jj, 1] + tol
            valid[:, u] &= ok
    return valid


def _grid_steps(low: float, high: float, dt: float) -> int:
    steps = (high - low) / dt
    n = int(round(steps))
    if n < 1 or abs(steps - n) > 1e-6 * max(1.0, steps):
        raise ParameterError(
            "window",
            f"its length {high - low:g} s must be a whole number (>= 1) of "
            f"dt = {dt:g} s bins",
        )
    return n


def _trial_counts(
    times: np.ndarray, events: np.ndarray, start: float, dt: float, n_steps: int
) -> np.ndarray:
    """Spike counts of one unit per trial on the grid ``start + (k+1) dt``
    relative to each event, shape (K, n_steps), int64."""
    lo = np.searchsorted(times, events + start - dt, side="left")
    hi = np.searchsorted(times, events + start + (n_steps + 1) * dt, side="right")
    lengths = hi - lo
    total = int(lengths.sum())
    n_events = events.size
    if total == 0:
        return np.zeros((n_events, n_steps), dtype=np.int64)
    trial = np.repeat(np.arange(n_events), lengths)
    first = np.cumsum(lengths) - lengths
    index = np.arange(total) - np.repeat(first, lengths) + np.repeat(lo, lengths)
    rel = times[index] - events[trial]
    k = bin_index(rel, start, dt)
    keep = (k >= 0) & (k < n_steps)
    flat = trial[keep] * n_steps + k[keep].astype(np.int64)
    return np.bincount(flat, minlength=n_events * n_steps).reshape(n_events, n_steps)


def _kernel_margin(kind: str, tau: float, dt: float) -> int:
    """Steps beyond the window that the kernel reaches (with room to spare):
    ``expon``/``alpha`` span 5 tau, ``gauss`` +-2 tau, ``expogauss`` under
    6 tau."""
    return int(np.ceil(8.0 * tau / dt)) + 2


def _bootstrap_band(
    rates: np.ndarray, ci: float, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap band of the mean over the first axis.

    ``rates`` has shape (n, M); trials are drawn with replacement, ``n`` per
    resample, ``n_boot`` resamples, as multiplicities so each resample mean
    is one row of a matrix product.
    """
    n, m = rates.shape
    draws = rng.integers(0, n, size=(n_boot, n))
    # Multiplicity of trial j in resample b, laid out (n, n_boot).
    flat = (draws * n_boot + np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n, n_boot)
    weights_t = counts.astype(np.float64)
    alpha = (1.0 - ci) / 2.0
    lows, highs = np.empty(m), np.empty(m)
    block = max(1, _BOOT_BLOCK // max(n_boot, 1))
    # Binned rates are mostly zeros: a sparse product does a fraction of the
    # work, with the same sums.
    sparse = np.count_nonzero(rates) < _SPARSE_FRACTION * rates.size
    if sparse:
        from scipy import sparse as sp  # deferred: slow to import

        by_time = sp.csr_matrix(rates.T)
    for c0 in range(0, m, block):
        if sparse:
            means = np.asarray(by_time[c0 : c0 + block] @ weights_t).T / n
        else:
            means = weights_t.T @ rates[:, c0 : c0 + block] / n
        q = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
        lows[c0 : c0 + block], highs[c0 : c0 + block] = q
    return lows, highs


def _choose_tau(
    trains: SpikeTrains,
    events: np.ndarray,
    valid: np.ndarray,
    low: float,
    high: float,
    dt: float,
    pool: bool,
) -> np.ndarray:
    """Gaussian ``tau`` per unit (twice the optimal standard deviation, at
    least ``2 dt``) from the superimposed trials of each unit (of all units
    with ``pool``)."""
    from spikerates.bandwidth import optimal_bandwidth

    offsets = []
    n_steps = _grid_steps(low, high, dt)
    for u, times in enumerate(trains.spike_times):
        ev = events[valid[:, u]]
        lo = np.searchsorted(times, ev + low, side="left")
        hi = np.searchsorted(times, ev + high, side="right")
        parts = [times[a:b] - e for a, b, e in zip(lo, hi, ev, strict=True)]
        offsets.append(np.concatenate(parts) if parts else np.zeros(0))
    span = n_steps * dt
    # The superimposed offsets are exact times: search at a resolution of the
    # window's own (2**16 bins), not of the output grid.
    search_dt = span / 65536

    def sigma_of(x: np.ndarray | list) -> float:
        return optimal_bandwidth(x, low, low + span, dt=search_dt).sigma

    pooled = sigma_of(offsets)
    if pool:
        sigma = np.full(trains.n_units, pooled)
    else:
        sigma = np.array([sigma_of(x) for x in offsets], dtype=np.float64)
        # Units too sparse for a bandwidth of their own take the pooled one.
        sigma = np.where(np.isfinite(sigma), sigma, pooled)
    if trains.n_units and not np.all(np.isfinite(sigma)):
        raise ParameterError(
            "tau", "auto needs at least two spikes inside the trial windows"
        )
    # A kernel narrower than one bin of the output grid would alias: tau is at
    # least 2 dt (a standard deviation of one bin).
    return np.maximum(2.0 * sigma.reshape(trains.n_units), 2.0 * dt)


def compute_psth(
    trains: SpikeTrains,
    events: Sequence[float] | np.ndarray,
    window: tuple[float, float],
    *,
    dt: float = 0.01,
    kind: str | None = None,
    tau: float | str | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    ci: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    keep_trials: bool = False,
    pool_tau: bool = False,
) -> PSTH:
    """Align every unit's spikes to event times and average over trials.

    Parameters
    ----------
    trains : SpikeTrains
    events : array_like, shape (K,)
        Event times in seconds.
    window : (float, float)
        ``(low, high)`` in seconds relative to each event, ``low < high``;
        ``high - low`` must be a whole number of ``dt``.
    dt : float
        Bin width (grid step) in seconds.
    kind : {"gauss", "expon", "alpha", "expogauss"} or None
        Kernel, or None for a binned PSTH.
    tau : float or "auto"
        Kernel time constant in seconds (needed with ``kind``); ``"auto"``
        (``gauss`` only) chooses it per unit, see the module notes.
    groups : array_like, shape (K,), optional
        A condition label per event; one PSTH per distinct label, in sorted
        order.
    ci : float
        Confidence level of the bootstrap band, in (0, 1).
    n_bootstrap : int
        Bootstrap resamples of the trials (>= 1).
    seed : int
        Seed of the resampling. Each (group, unit) draws from its own
        stream, so a unit's band does not depend on which other units are
        present.
    keep_trials : bool
        Also return the per-trial rates (K, M, N).
    pool_tau : bool
        With ``tau="auto"``, one bandwidth for all units superimposed.

    Returns
    -------
    PSTH
    """
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ParameterError(
            "dt", f"must be a finite number of seconds > 0, got {dt:g}"
        )
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ParameterError(
            "window", f"expected (low, high) seconds, got {window!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ParameterError("window", f"needs finite low < high, got {low:g}:{high:g}")
    n_steps = _grid_steps(low, high, dt)
    if not 0 < ci < 1:
        raise ParameterError("ci", f"must be between 0 and 1, got {ci:g}")
    if (
        isinstance(n_bootstrap, bool)
        or int(n_bootstrap) != n_bootstrap
        or n_bootstrap < 1
    ):
        raise ParameterError(
            "n_bootstrap", f"must be an integer >= 1, got {n_bootstrap!r}"
        )
    n_bootstrap = int(n_bootstrap)
    events = np.asarray(events, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(events)):
        raise ParameterError("events", "event times must be finite numbers")
    if groups is None:
        event_groups = np.full(events.size, "all", dtype=object).astype(str)
    else:
        event_groups = np.asarray(groups).reshape(-1)
        if event_groups.size != events.size:
            raise ParameterError(
                "groups",
                f"{event_groups.size} labels for {events.size} events; expected one "
                "per event",
            )
        event_groups = np.array([str(g) for g in event_groups], dtype=str)
    group_names = np.unique(event_groups) if events.size else np.array(["all"])

    if kind is None:
        if tau is not None:
            raise ParameterError(
                "tau", "needs a kernel kind; without one the PSTH is binned"
            )
    else:
        kind = str(kind).lower()
        if kind not in KERNEL_KINDS:
            raise ParameterError(
                "kind", f"must be one of {', '.join(KERNEL_KINDS)}, got {kind!r}"
            )
        if tau is None:
            raise ParameterError(
                "tau", f"the {kind} kernel needs tau (seconds or auto)"
            )
        if isinstance(tau, str):
            if tau.lower() != "auto":
                raise ParameterError("tau", f"must be seconds > 0 or auto, got {tau!r}")
            if kind != "gauss":
                raise ParameterError("tau", "auto is defined for the gauss kernel only")
        else:
            tau = float(tau)
            if not (np.isfinite(tau) and tau > 0):
                raise ParameterError(
                    "tau", f"must be a number of seconds > 0, got {tau:g}"
                )

    n_units = trains.n_units
    valid = trial_windows_valid(trains, events, low, low + n_steps * dt)
    taus: np.ndarray | None = None
    if kind is not None:
        if isinstance(tau, str):
            taus = _choose_tau(trains, events, valid, low, high, dt, pool_tau)
        else:
            taus = np.full(n_units, float(tau))

    n_groups = len(group_names)
    shape = (n_groups, n_steps, n_units)
    mean = np.full(shape, np.nan)
    sem = np.full(shape, np.nan)
    ci_low = np.full(shape, np.nan)
    ci_high = np.full(shape, np.nan)
    n_trials = np.zeros((n_groups, n_units), dtype=np.int64)
    n_dropped = np.zeros((n_groups, n_units), dtype=np.int64)
    trials = np.full((events.size, n_steps, n_units), np.nan) if keep_trials else None
    member = [event_groups == g for g in group_names]
    for u, times in enumerate(trains.spike_times):
        rates = _unit_trial_rates(times, events, low, dt, n_steps, kind, taus, u)
        if trials is not None:
            trials[:, :, u] = np.where(valid[:, u, None], rates, np.nan)
        for g, in_group in enumerate(member):
            use = in_group & valid[:, u]
            n = int(use.sum())
            n_trials[g, u] = n
            n_dropped[g, u] = int(in_group.sum()) - n
            if n == 0:
                continue
            r = rates[use]
            mean[g, :, u] = r.mean(axis=0)
            if n >= 2:
                sem[g, :, u] = r.std(axis=0, ddof=1) / np.sqrt(n)
            rng = np.random.default_rng([int(seed), g, u])
            ci_low[g, :, u], ci_high[g, :, u] = _bootstrap_band(r, ci, n_bootstrap, rng)
    attrs = {
        "window_low": low,
        "window_high": low + n_steps * dt,
        "dt": dt,
        "kind": kind if kind is not None else "binned",
        "ci": float(ci),
        "n_bootstrap": n_bootstrap,
        "seed": int(seed),
    }
    if taus is not None:
        if not isinstance(tau, str):
            attrs["tau_choice"] = "fixed"
        else:
            attrs["tau_choice"] = "auto-pooled" if pool_tau else "auto"
    return PSTH(
        t=low + (np.arange(n_steps) + 1) * dt,
        unit_ids=trains.unit_ids.copy(),
        groups=group_names,
        mean=mean,
        sem=sem,
        ci_low=ci_low,
        ci_high=ci_high,
        n_trials=n_trials,
        n_dropped=n_dropped,
        tau=taus,
        trials=trials,
        event_times=events,
        event_groups=event_groups,
        attrs=attrs,
    )


def _unit_trial_rates(
    times: np.ndarray,
    events: np.ndarray,
    low: float,
    dt: float,
    n_steps: int,
    kind: str | None,
    taus: np.ndarray | None,
    unit: int,
) -> np.ndarray:
    """Rates of one unit per trial on the window grid, shape (K, M), Hz."""
    if kind is None:
        return _trial_counts(times, events, low, dt, n_steps) / dt
    from spikerates.estimators import rates_kernel

    tau = float(taus[unit])
    margin = _kernel_margin(kind, tau, dt)
    counts = _trial_counts(times, events, low - margin * dt, dt, n_steps + 2 * margin)
    if events.size == 0:
        return np.zeros((0, n_steps))
    # Only the grid's step matters to the kernel; (k + 1) * dt gives the step
    # as the rate commands compute it from a grid that starts at 0.
    grid = (np.arange(n_steps + 2 * margin) + 1) * dt
    rates = rates_kernel(grid, counts.T / dt, kind=kind, tau=tau)
    return np.ascontiguousarray(rates[margin : margin + n_steps].T)


#: Parameters of a PSTH kept in its output's attributes.
_PARAMETERS = (
    "window_low",
    "window_high",
    "dt",
    "kind",
    "ci",
    "n_bootstrap",
    "seed",
    "tau_choice",
)

#: Arrays of every PSTH output.
_ARRAYS = (
    "t",
    "unit_ids",
    "groups",
    "mean",
    "sem",
    "ci_low",
    "ci_high",
    "n_trials",
    "n_dropped",
    "event_times",
    "event_groups",
)


def _text(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "SO":
        return np.array(
            [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]
        ).reshape(values.shape)
    return values


def read_psth(path: str) -> PSTH:
    """Read a PSTH written by ``spikerates psth`` (NPZ, HDF5 or NWB).

    Parameters
    ----------
    path : str

    Returns
    -------
    PSTH
        ``trials`` is None when the file has no per-trial rates; in an NWB
        file they are the TimeSeries ``/processing/spikerates/trials``
        (time, trial, unit), returned as (trial, time, unit).

    Raises
    ------
    SpikeDataError
        When the file lacks one of the PSTH's arrays.
    """
    import json

    from spikerates.errors import SpikeDataError

    arrays: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    with open(path, "rb") as fh:
        is_hdf5 = fh.read(8).startswith(b"\x89HDF")
    if is_hdf5:
        import h5py  # deferred: slow to import

        with h5py.File(path, "r") as f:
            for key in (*_ARRAYS, "tau", "trials"):
                if isinstance(f.get(key), h5py.Dataset):
                    arrays[key] = f[key][()]
            series = f.get("processing/spikerates/trials/data")
            if "trials" not in arrays and isinstance(series, h5py.Dataset):
                arrays["trials"] = np.moveaxis(series[()], 1, 0)
            attrs = {k: f.attrs[k] for k in _PARAMETERS if k in f.attrs}
    else:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in (*_ARRAYS, "tau", "trials") if k in z.files}
            if "attrs" in z.files:
                stored = json.loads(str(z["attrs"]))
                attrs = {k: stored[k] for k in _PARAMETERS if k in stored}
    missing = [k for k in _ARRAYS if k not in arrays]
    if missing:
        raise SpikeDataError(
            f"is not a PSTH output: no {', '.join(missing)}", path=path
        )
    for key in ("groups", "event_groups"):
        arrays[key] = _text(arrays[key])
    plain = {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()
    }
    return PSTH(
        t=arrays["t"],
        unit_ids=arrays["unit_ids"],
        groups=arrays["groups"],
        mean=arrays["mean"],
        sem=arrays["sem"],
        ci_low=arrays["ci_low"],
        ci_high=arrays["ci_high"],
        n_trials=arrays["n_trials"],
        n_dropped=arrays["n_dropped"],
        tau=arrays.get("tau"),
        trials=arrays.get("trials"),
        event_times=arrays["event_times"],
        event_groups=arrays["event_groups"],
        attrs=plain,
    )
