"""Speed of the spikerates engine against nengo's own simulator.

Run as ``python tests/benchmarks/bench_simulate.py [--neurons 2000]
[--duration 5] [--repeats 3]``. Both sides simulate the same population
(gain, bias, encoders and initial voltages taken from the built nengo
model) driven by the same input, with spikes recorded at every step; only
the run is timed (not nengo's build), best of ``--repeats``. It prints the
times, the speed-up ratios, and whether the LIF spike trains are identical.
A per-step loop over ``nengo.LIF.step`` is timed as well, for reference.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def best_time(run, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--dt", type=float, default=0.001, help="seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import nengo

    from spikerates.neurons import LIF, FastLIF
    from spikerates.simulate import simulate

    dt, n_steps = args.dt, round(args.duration / args.dt)

    def signal(t):
        return np.sin(2 * np.pi * t)

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(signal)
        ens = nengo.Ensemble(args.neurons, 1, neuron_type=nengo.LIF())
        nengo.Connection(stim, ens, synapse=None)
        probe = nengo.Probe(ens.neurons)

    with nengo.Simulator(net, dt=dt, progress_bar=False) as sim:
        built = sim.data[ens]
        gain, bias = built.gain, built.bias
        encoders = built.encoders[:, 0]
        voltage0 = sim.signals[sim.model.sig[ens.neurons]["voltage"]].copy()

        def run_nengo():
            sim.reset()
            sim.run_steps(n_steps)
            return sim.data[probe]

        # one untimed run each, so that neither side pays first-touch costs
        run_nengo()
        t_nengo, nengo_spikes = best_time(run_nengo, args.repeats)

    x = signal(dt * np.arange(1, n_steps + 1))

    def run_engine(model):
        return lambda: simulate(
            model, gain, bias, x, dt=dt, encoders=encoders, initial_voltage=voltage0
        )[1]

    run_engine(LIF())()
    t_lif, lif_spikes = best_time(run_engine(LIF()), args.repeats)
    t_fast, _ = best_time(run_engine(FastLIF()), args.repeats)

    def run_step_loop():
        model = nengo.LIF()
        voltage, refractory = voltage0.copy(), np.zeros(args.neurons)
        spikes = np.zeros((n_steps, args.neurons))
        for k in range(n_steps):
            model.step(
                dt, gain * encoders * x[k] + bias, spikes[k], voltage, refractory
            )
        return spikes

    t_loop, _ = best_time(run_step_loop, 1)

    print(
        f"{args.neurons} LIF neurons, {n_steps} steps of {dt * 1e3:g} ms, "
        f"best of {args.repeats}"
    )
    print(f"  nengo.Simulator.run          {t_nengo:8.3f} s")
    print(f"  nengo LIF.step loop          {t_loop:8.3f} s")
    print(f"  spikerates simulate, LIF     {t_lif:8.3f} s")
    print(f"  spikerates simulate, FastLIF {t_fast:8.3f} s")
    print(f"speed-up of LIF over nengo.Simulator:      {t_nengo / t_lif:5.2f}x")
    print(f"speed-up of FastLIF over nengo.Simulator:  {t_nengo / t_fast:5.2f}x")
    print(f"speed-up of LIF over the LIF.step loop:    {t_loop / t_lif:5.2f}x")
    same = np.array_equal(lif_spikes, nengo_spikes)
    print(f"LIF spike trains identical to nengo's: {same}")
    print("goal: LIF at least 2x faster than nengo.Simulator")


if __name__ == "__main__":
    main()
