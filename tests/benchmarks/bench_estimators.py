"""Speed of the rate estimators against the reference itself (nengo_extras).

Prints, measured in one run with the protocol of ``protocol.py`` (median of
three calls including the first, best-of beside it, the load average):

- ``rates_kernel`` for every kind at 10 and 50 Hz Poisson spikes
  (``--units`` x ``--steps``, dt = 1 ms, tau = 0.04 s): nengo_extras'
  ``rates_kernel``, then spikerates with 1 and with 2 threads, the ratios,
  and whether the results agree (1e-9 relative, 1e-12 absolute at zeros);
- ``rates_isi`` for every interpolation kind (``--isi-units`` units);
- with ``--cost-model``: the method chooser's predicted cost per output
  value against the measured one, per method, across tau 0.005-0.5 s,
  10-3000 units and 10-50 Hz, plus Elephant's ``instantaneous_rate`` and
  ``scipy.signal.oaconvolve`` on the long kernels.

Usage::

    python tests/benchmarks/bench_estimators.py [--units 1000] [--steps 100000]
        [--isi-units 500] [--rates 10 50] [--kinds ...] [--ref-repeats 3]
        [--cost-model] [--skip-isi]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from protocol import load_average, measure, ratio

DT = 0.001
TAU = 0.04


def poisson_spikes(n_steps, n_units, rate_hz, seed=0):
    rng = np.random.default_rng(seed)
    t = DT * np.arange(1, n_steps + 1)
    spikes = (rng.random((n_steps, n_units)) < rate_hz * DT) / DT
    # the reference's rates_isi fails on spikes at the first or last step
    spikes[[0, -1]] = 0
    return t, spikes


def agreement(ours, ref) -> str:
    zero = ref == 0
    rel = np.abs(ours - ref)[~zero] / np.abs(ref[~zero])
    max_rel = float(rel.max()) if rel.size else 0.0
    max_zero = float(np.abs(ours[zero]).max()) if zero.any() else 0.0
    ok = max_rel <= 1e-9 and max_zero <= 1e-12
    return f"{'ok' if ok else 'MISMATCH'} (rel {max_rel:.0e}, zeros {max_zero:.0e})"


def with_threads(n, fn):
    from spikerates import threads

    def run():
        threads.configure(n)
        return fn()

    return run


def bench_kernels(args, reference) -> int:
    from spikerates.estimators import rates_kernel

    failures = 0
    print(
        f"rates_kernel, tau = {TAU} s, {args.units} units x {args.steps} steps; "
        f"median of {args.repeats} calls incl. the first (best-of in brackets)"
    )
    print(f"  {load_average()}")
    header = f"  {'kind':9s} {'Hz':>3s} {'reference':>22s} {'1 thread':>22s}"
    print(header + f" {'2 threads':>22s}   ratio 1 thread        ratio 2 threads")
    for rate in args.rates:
        t, spikes = poisson_spikes(args.steps, args.units, rate)
        for kind in args.kinds:
            t_ref, ref = measure(
                lambda kind=kind, t=t, x=spikes: reference.rates_kernel(
                    t, x, kind, TAU
                ),
                args.ref_repeats,
            )
            t1, ours = measure(
                with_threads(
                    1, lambda k=kind, t=t, x=spikes: rates_kernel(t, x, k, TAU)
                ),
                args.repeats,
            )
            status = agreement(ours, ref)
            del ours
            t2, ours = measure(
                with_threads(
                    2, lambda k=kind, t=t, x=spikes: rates_kernel(t, x, k, TAU)
                ),
                args.repeats,
            )
            status2 = agreement(ours, ref)
            del ours, ref
            failures += "MISMATCH" in status + status2
            print(
                f"  {kind:9s} {rate:3g} {t_ref!s:>22s} {t1!s:>22s} {t2!s:>22s}   "
                f"{ratio(t_ref, t1)}  {ratio(t_ref, t2)}  {status}"
            )
        print(f"  {load_average()}")
    return failures


def bench_isi(args, reference) -> int:
    from spikerates.estimators import ISI_INTERP_KINDS, rates_isi

    failures = 0
    t, spikes = poisson_spikes(args.steps, args.isi_units, 10.0, seed=1)
    print(f"rates_isi, {args.isi_units} units x {args.steps} steps at 10 Hz")
    for interp in ISI_INTERP_KINDS:
        t_ref, ref = measure(
            lambda interp=interp: reference.rates_isi(t, spikes, interp=interp),
            args.ref_repeats,
        )
        t1, ours = measure(
            with_threads(1, lambda interp=interp: rates_isi(t, spikes, interp=interp)),
            args.repeats,
        )
        status = agreement(ours, ref)
        failures += "MISMATCH" in status
        del ours, ref
        print(
            f"  {interp:9s} reference {t_ref}  spikerates {t1}  "
            f"{ratio(t_ref, t1)}  {status}"
        )
    print(f"  {load_average()}")
    return failures


def bench_cost_model(args) -> None:
    """Predicted against measured cost per output value, per method."""
    from spikerates import threads
    from spikerates.fir import FirStage
    from spikerates.kernels import sampled_kernel

    threads.configure(1)
    print("cost model: ns per output value, predicted (model) vs measured")
    print(f"  {load_average()}")
    n_values = 1 << 22
    for kind in ("gauss", "expon"):
        for tau in (0.005, 0.04, 0.5):
            kern, delay = sampled_kernel(kind, tau / DT, normalize=False, causal=False)
            for n_units in (10, 300, 3000):
                n_steps = max(4 * kern.size, n_values // n_units)
                for rate in (10.0, 50.0):
                    _, x = poisson_spikes(n_steps, n_units, rate, seed=2)
                    density = np.count_nonzero(x) / x.size
                    probe = FirStage(kern, delay, n_units, "auto")
                    # the inputs decide whether the recursion's bound holds
                    probe._note_inputs(x[x != 0])
                    costs = probe._method_costs(density)
                    chosen = min(costs, key=costs.get)
                    cells = []
                    measured = {}
                    for method, predicted in sorted(costs.items()):
                        if not np.isfinite(predicted) or predicted > 400:
                            continue
                        stage = FirStage(kern, delay, n_units, method)
                        start = time.perf_counter()
                        stage.run(x)
                        ns = 1e9 * (time.perf_counter() - start) / x.size
                        measured[method] = ns
                        cells.append(f"{method} {predicted:5.1f}/{ns:5.1f}")
                    best = min(measured, key=measured.get)
                    print(
                        f"  {kind:5s} tau {tau:5g} {n_units:5d} units {rate:3g} Hz: "
                        + "  ".join(cells)
                        + f"  -> chose {chosen}, fastest {best}"
                    )
    print(f"  {load_average()}")


def bench_long_kernels(args) -> None:
    """tau = 0.5 s against Elephant and scipy's oaconvolve on the same work."""
    import quantities as pq
    import scipy.signal
    from elephant import kernels as el_kernels
    from elephant.statistics import instantaneous_rate
    from neo import SpikeTrain

    from spikerates.estimators import rates_kernel
    from spikerates.kernels import sampled_kernel

    n_units, n_steps, tau = 100, args.steps, 0.5
    print(f"long kernels, tau = {tau} s, {n_units} units x {n_steps} steps")
    for rate in args.rates:
        t, spikes = poisson_spikes(n_steps, n_units, rate, seed=3)
        trains = [
            SpikeTrain(
                t[spikes[:, i] > 0] * pq.s, t_start=0 * pq.s, t_stop=t[-1] * pq.s
            )
            for i in range(n_units)
        ]
        kern, delay = sampled_kernel("gauss", tau / DT, normalize=False, causal=False)
        t_el, _ = measure(
            lambda trains=trains: instantaneous_rate(
                trains,
                sampling_period=DT * pq.s,
                kernel=el_kernels.GaussianKernel(sigma=tau / 2 * pq.s),
            ),
            args.repeats,
        )
        t_oa, _ = measure(
            lambda x=spikes, k=kern: scipy.signal.oaconvolve(x, k[:, None], axes=0),
            args.repeats,
        )
        for kind in ("gauss", "expogauss"):
            t_ours, _ = measure(
                lambda k=kind, t=t, x=spikes: rates_kernel(t, x, k, tau), args.repeats
            )
            print(
                f"  {kind:9s} {rate:3g} Hz: spikerates {t_ours}  over elephant "
                f"{ratio(t_el, t_ours)}  over oaconvolve {ratio(t_oa, t_ours)}"
            )
    print(f"  {load_average()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--isi-units", type=int, default=500)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument(
        "--kinds", nargs="+", default=["gauss", "expon", "alpha", "expogauss"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--skip-isi", action="store_true")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--cost-model", action="store_true")
    parser.add_argument("--long-kernels", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from nengo_extras import neurons as reference

    print(load_average())
    failures = 0
    if not args.skip_kernels:
        failures += bench_kernels(args, reference)
    if not args.skip_isi:
        failures += bench_isi(args, reference)
    if args.cost_model:
        bench_cost_model(args)
    if args.long_kernels:
        bench_long_kernels(args)
    print(
        "goals: kernels 10x the reference at 10 Hz and 5x at 50 Hz; isi 10x for "
        "zero and linear, 3x for the other kinds; 2 threads never slower than 1"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
