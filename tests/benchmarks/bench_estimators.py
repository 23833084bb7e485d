"""Speed of the rate estimators against plain per-neuron references.

Prints, measured in one run, the speed-up (best of two runs each) of

- ``rates_kernel`` (every kind, tau = 0.04 s) on 1000 units x 100 000 steps,
- ``rates_isi`` (``zero`` and ``linear``) on 500 units x 100 000 steps,

over straightforward per-neuron loops written below (one ``np.convolve`` per
neuron as the reference's ``lowpass_filter`` does; one ``interp1d`` per neuron
as the reference's ``_rates_isi_events`` does), on seeded ~10 Hz Poisson
spikes at dt = 1 ms, and checks that the results agree.

Usage::

    python tests/benchmarks/bench_estimators.py [N_STEPS [N_UNITS_KERNEL [N_UNITS_ISI]]]

Smaller sizes give a quick run, e.g. ``... 20000 200 100``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import scipy.interpolate

from spikerates.estimators import KERNEL_KINDS, rates_isi, rates_kernel

DT = 0.001
RATE_HZ = 10.0
TAU = 0.04


# ------------------------------------------------ plain per-neuron references


def plain_kernel(kind: str, tau_steps: float) -> tuple[np.ndarray, int]:
    """Kernel and delay sampled like the reference's lowpass_filter."""
    if kind == "expon":
        k = np.arange(0, 5 * tau_steps)
        return np.exp(-k / tau_steps) / tau_steps, int(np.round(tau_steps))
    if kind == "alpha":
        k = np.arange(0, 5 * tau_steps)
        a = 1.0 / tau_steps
        return a**2 * k * np.exp(-a * k), int(np.round(tau_steps))
    std = tau_steps / 2.0
    k = np.arange(-4 * std, 4 * std)
    kern = np.exp(-0.5 * (k / std) ** 2) / np.sqrt(2 * np.pi * std**2)
    return kern, int(np.round(4 * std))


def plain_lowpass(x: np.ndarray, kind: str, tau_steps: float) -> np.ndarray:
    """One np.convolve per neuron; x is (N, M), time last."""
    kern, delay = plain_kernel(kind, tau_steps)
    n_steps = x.shape[-1]
    return np.array(
        [np.convolve(kern, row, mode="full")[delay : n_steps + delay] for row in x]
    )


def plain_rates_kernel(t, spikes, kind, tau):
    tau_steps = tau / (t[1] - t[0])
    x = spikes.T
    if kind == "expogauss":
        rates = plain_lowpass(x, "expon", tau_steps)
        rates = plain_lowpass(rates, "gauss", tau_steps / 4)
    else:
        rates = plain_lowpass(x, kind, tau_steps)
    return rates.T


def plain_rates_isi(t, spikes, interp):
    """One interp1d per neuron, points as in the reference (no midpoints)."""
    rates = np.zeros(spikes.shape)
    for i in range(spikes.shape[1]):
        events = t[spikes[:, i] != 0]
        if len(events) == 0:
            continue
        rt = np.zeros(len(events) + 2)
        rt[1:-1] = events
        rt[0], rt[-1] = t[0], t[-1]
        r = np.zeros_like(rt)
        r[1 : len(events)] = 1.0 / np.diff(events)
        f = scipy.interpolate.interp1d(rt, r, kind=interp, copy=False)
        rates[:, i] = f(t)
    return rates


# ------------------------------------------------------------------ harness


def poisson_spikes(
    n_steps: int, n_units: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = DT * np.arange(1, n_steps + 1)
    spikes = (rng.random((n_steps, n_units)) < RATE_HZ * DT) / DT
    # The reference's rates_isi fails on spikes at the first or last step.
    spikes[[0, -1]] = 0
    return t, spikes


def timed(fn, *args, repeats: int = 2, **kwargs):
    """Best wall time of a few runs (the first pays for touching new memory)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None  # free the previous result's memory for reuse
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, result


def agreement(ours: np.ndarray, ref: np.ndarray) -> str:
    zero = ref == 0
    rel = np.abs(ours - ref)[~zero] / np.abs(ref[~zero])
    max_rel = float(rel.max()) if rel.size else 0.0
    max_zero = float(np.abs(ours[zero]).max()) if zero.any() else 0.0
    ok = max_rel <= 1e-9 and max_zero <= 1e-12
    return f"{'ok' if ok else 'MISMATCH'} (rel {max_rel:.1e}, at zeros {max_zero:.1e})"


def main(argv: list[str]) -> int:
    n_steps = int(argv[1]) if len(argv) > 1 else 100_000
    n_kernel = int(argv[2]) if len(argv) > 2 else 1000
    n_isi = int(argv[3]) if len(argv) > 3 else 500
    failures = 0

    t, spikes = poisson_spikes(n_steps, n_kernel, seed=0)
    print(
        f"rates_kernel, tau = {TAU} s, {n_kernel} units x {n_steps} steps, "
        f"{spikes.astype(bool).sum()} spikes"
    )
    for kind in KERNEL_KINDS:
        t_ref, ref = timed(plain_rates_kernel, t, spikes, kind, TAU)
        t_ours, ours = timed(rates_kernel, t, spikes, kind, TAU)
        status = agreement(ours, ref)
        failures += status.startswith("MISMATCH")
        print(
            f"  {kind:10s} plain {t_ref:7.2f} s  spikerates {t_ours:6.2f} s  "
            f"speed-up {t_ref / t_ours:5.1f}x  {status}"
        )
        del ref, ours

    t, spikes = poisson_spikes(n_steps, n_isi, seed=1)
    print(
        f"rates_isi, {n_isi} units x {n_steps} steps, "
        f"{spikes.astype(bool).sum()} spikes"
    )
    for interp in ("zero", "linear"):
        t_ref, ref = timed(plain_rates_isi, t, spikes, interp)
        t_ours, ours = timed(rates_isi, t, spikes, interp=interp)
        status = agreement(ours, ref)
        failures += status.startswith("MISMATCH")
        print(
            f"  {interp:10s} plain {t_ref:7.2f} s  spikerates {t_ours:6.2f} s  "
            f"speed-up {t_ref / t_ours:5.1f}x  {status}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
