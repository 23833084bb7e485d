"""Speed of the spikerates engine against nengo's own simulator.

Run as ``python tests/benchmarks/bench_simulate.py [--sizes 2000x5 10000x10]
[--dt 0.001] [--repeats 3]`` (a size is NEURONS x SECONDS). Every side
simulates the same population (gain, bias, encoders and initial voltages
taken from the built nengo model) driven by the same input, with spikes
recorded at every step; nengo's build is not timed, its run is (reset, run,
read the probe). Each side is timed with the protocol of ``protocol.py``:
the median of three calls including the first, best-of beside it, all in
one run. Printed per size:

- ``nengo.Simulator`` with ``nengo.LIF``: the reference;
- a plain NumPy loop of the same LIF step written out as nengo writes it
  (one expression per line, no preallocated scratch arrays);
- ``spikerates.simulate`` with ``LIF`` and with ``FastLIF``;

the speed-up ratios, and whether the LIF spike trains are identical to
nengo's. The engine is single-threaded (elementwise NumPy), so the thread
count does not enter.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from protocol import load_average, measure, ratio


def plain_numpy_lif(gain, bias, encoders, x, dt, voltage0, tau_rc=0.02, tau_ref=0.002):
    """The LIF step as a plain NumPy loop: nengo's arithmetic, written out."""
    n = gain.size
    voltage = voltage0.copy()
    refractory_time = np.zeros(n)
    spikes = np.zeros((x.size, n))
    scaled_gain = gain * encoders
    for k in range(x.size):
        J = scaled_gain * x[k] + bias
        refractory_time -= dt
        delta_t = np.clip(dt - refractory_time, 0, dt)
        voltage -= (J - voltage) * np.expm1(-delta_t / tau_rc)
        spiked = voltage > 1
        spikes[k] = spiked / dt
        t_spike = dt + tau_rc * np.log1p(-(voltage[spiked] - 1) / (J[spiked] - 1))
        voltage[voltage < 0] = 0
        voltage[spiked] = 0
        refractory_time[spiked] = tau_ref + t_spike
    return spikes


def bench_size(n_neurons: int, duration: float, dt: float, repeats: int) -> bool:
    import nengo

    from spikerates.neurons import LIF, FastLIF
    from spikerates.simulate import simulate

    n_steps = round(duration / dt)

    def signal(t):
        return np.sin(2 * np.pi * t)

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(signal)
        ens = nengo.Ensemble(n_neurons, 1, neuron_type=nengo.LIF())
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

        t_nengo, nengo_spikes = measure(run_nengo, repeats)

    x = signal(dt * np.arange(1, n_steps + 1))

    def engine(model):
        return lambda: simulate(
            model, gain, bias, x, dt=dt, encoders=encoders, initial_voltage=voltage0
        )[1]

    t_lif, lif_spikes = measure(engine(LIF()), repeats)
    same = np.array_equal(lif_spikes, nengo_spikes)
    del lif_spikes
    t_fast, _ = measure(engine(FastLIF()), repeats)
    t_plain, plain_spikes = measure(
        lambda: plain_numpy_lif(gain, bias, encoders, x, dt, voltage0), repeats
    )
    plain_same = np.array_equal(plain_spikes, nengo_spikes)
    del plain_spikes, nengo_spikes

    print(
        f"{n_neurons} neurons x {duration:g} s ({n_steps} steps of "
        f"{dt * 1e3:g} ms), median of {repeats} calls incl. the first"
    )
    print(f"  nengo.Simulator, nengo.LIF   {t_nengo}")
    print(f"  plain NumPy LIF loop         {t_plain}")
    print(f"  spikerates simulate, LIF     {t_lif}")
    print(f"  spikerates simulate, FastLIF {t_fast}")
    print(f"  LIF over nengo.Simulator      {ratio(t_nengo, t_lif)}")
    print(f"  FastLIF over nengo.Simulator  {ratio(t_nengo, t_fast)}")
    print(f"  LIF over the plain NumPy loop {ratio(t_plain, t_lif)}")
    print(f"  plain loop over nengo         {ratio(t_nengo, t_plain)}")
    print(f"  LIF spike trains identical to nengo's: {same} (plain loop: {plain_same})")
    print(f"  {load_average()}")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["2000x5", "10000x10"], help="NEURONSxSECONDS"
    )
    parser.add_argument("--dt", type=float, default=0.001, help="seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    print(load_average())
    identical = True
    for size in args.sizes:
        n, seconds = size.lower().split("x")
        identical &= bench_size(int(n), float(seconds), args.dt, args.repeats)
    print("goal: LIF and FastLIF at least 4x nengo.Simulator, spike trains identical")
    raise SystemExit(0 if identical else 1)


if __name__ == "__main__":
    main()
