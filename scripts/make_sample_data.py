"""Regenerate sample_data/: one small simulated recording in every format.

20 LIF neurons (random encoders, max rates 20-60 Hz) driven by a seeded
5 Hz band-limited input for 2 s at dt = 1 ms, written as

- dense: ``recording_dense.npz``, ``recording_dense.h5``, ``recording_dense.csv``
  (``t``, ``spikes`` of value 1/dt per spike);
- events: ``recording_events.npz``, ``recording.nwb`` (an NWB file written
  with pynwb: the Units table with the Phy labels in its ``quality``
  column), ``recording_events.csv`` (``unit,time``);
- a Phy/Kilosort folder ``phy/`` (spike times in samples at 30 kHz,
  ``spike_clusters.npy``, ``params.py``, ``cluster_group.tsv``);
- ``neurons.csv`` (``gain,bias,encoder`` per neuron) and ``input.csv``
  (``t,x`` every 5 ms), for ``--neurons FILE`` and ``--input FILE``.

Run from anywhere: ``python scripts/make_sample_data.py [OUTDIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import numpy as np

from spikerates.io import write_arrays, write_dense, write_events
from spikerates.neurons import LIF
from spikerates.simulate import (
    make_input,
    make_population,
    random_initial_voltage,
    simulate,
)
from spikerates.spiketrains import DenseSpikes, dense_to_events

N_NEURONS = 20
DT = 0.001  # s
DURATION = 2.0  # s
SEED = 42
PHY_SAMPLE_RATE = 30_000.0  # Hz, a typical extracellular sampling rate
# Phy curation labels: most units good, a few multi-unit and noise clusters.
PHY_GROUPS = ["good"] * 14 + ["mua"] * 4 + ["noise"] * 2
# Session metadata of the NWB file (fixed, so the file only changes with the data).
SESSION = {
    "session_description": "spikerates sample: 20 simulated LIF neurons, 2 s",
    "session_start_time": "2024-01-01T00:00:00+00:00",
    "session_id": "sample",
    "lab": "spikerates",
}

OUT = Path(__file__).resolve().parent.parent / "sample_data"


def simulate_recording():
    """Simulate the recording: times (M,), spikes (M, N) of 1/dt, input (M,)."""
    neuron = LIF()
    population = make_population(
        neuron,
        N_NEURONS,
        max_rates=(20.0, 60.0),
        intercepts=(-0.8, 0.5),
        encoders="random",
        seed=SEED,
    )
    t, x = make_input("white:5:0.6", DT, DURATION, seed=SEED)
    t, spikes = simulate(
        neuron,
        population.gain,
        population.bias,
        x,
        dt=DT,
        encoders=population.encoders,
        initial_voltage=random_initial_voltage(N_NEURONS, SEED),
    )
    return t, spikes, x, population


def write_phy(folder: Path, trains) -> None:
    """Write a Phy/Kilosort folder: spike samples, clusters, params, labels."""
    folder.mkdir(parents=True, exist_ok=True)
    clusters = np.concatenate(
        [
            np.full(len(s), u, dtype=np.int32)
            for u, s in zip(trains.unit_ids, trains.spike_times, strict=True)
        ]
    )
    samples = np.rint(np.concatenate(trains.spike_times) * PHY_SAMPLE_RATE).astype(
        np.uint64
    )
    # Kilosort lists spikes in time order across clusters.
    order = np.argsort(samples, kind="stable")
    np.save(folder / "spike_times.npy", samples[order])
    np.save(folder / "spike_clusters.npy", clusters[order])
    (folder / "params.py").write_text(
        'dat_path = "recording.dat"\n'
        "n_channels_dat = 32\n"
        'dtype = "int16"\n'
        "offset = 0\n"
        f"sample_rate = {PHY_SAMPLE_RATE}\n"
        "hp_filtered = True\n"
    )
    rows = [f"{u}\t{g}" for u, g in zip(trains.unit_ids, PHY_GROUPS, strict=True)]
    (folder / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", nargs="?", default=str(OUT))
    out = Path(parser.parse_args().outdir)
    out.mkdir(parents=True, exist_ok=True)

    t, spikes, x, population = simulate_recording()
    unit_ids = np.arange(N_NEURONS)
    dense = DenseSpikes(
        t=t, spikes=spikes, unit_ids=unit_ids, values="amplitude", source="simulation"
    )
    trains = dense_to_events(dense)

    # float32 holds 1/dt = 1000 exactly and halves the binary files.
    for name in ("recording_dense.npz", "recording_dense.h5", "recording_dense.csv"):
        write_dense(str(out / name), t, spikes.astype(np.float32), unit_ids)
    for name in ("recording_events.npz", "recording_events.csv"):
        write_events(str(out / name), trains)
    labelled = dataclasses.replace(
        trains, labels=np.array(PHY_GROUPS), label_column="quality", info=SESSION
    )
    write_events(str(out / "recording.nwb"), labelled, attrs={"dt": DT})
    if (out / "phy").exists():
        shutil.rmtree(out / "phy")
    write_phy(out / "phy", trains)
    write_arrays(
        str(out / "neurons.csv"),
        {},
        csv_columns={
            "gain": population.gain,
            "bias": population.bias,
            "encoder": population.encoders,
        },
    )
    # Every 5th step and the last: a t,x file is resampled to the grid anyway.
    every5 = np.unique(np.r_[np.arange(0, len(t), 5), len(t) - 1])
    write_arrays(
        str(out / "input.csv"), {}, csv_columns={"t": t[every5], "x": x[every5]}
    )

    n_spikes = sum(len(s) for s in trains.spike_times)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"{out}: {N_NEURONS} neurons, {len(t)} steps of {DT} s, {n_spikes} spikes, "
        f"{total / 1e3:.0f} kB in total"
    )


if __name__ == "__main__":
    main()
