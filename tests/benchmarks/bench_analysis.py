"""Benchmark: ``info``, ``metrics`` and ``--tau auto`` on a long recording.

Writes a seeded events file (NPZ, ``--units`` units of Poisson spikes at 1 to
20 Hz over ``--minutes`` minutes; 300 units x 60 min is about 11 million
spikes), then runs, each in a child process that reports its wall time and
peak resident memory:

- ``read``: reading the file alone (the plain reference every command pays);
- ``info``: ``spikerates info FILE --to tsv``;
- ``metrics``: ``spikerates metrics FILE -o metrics.tsv``;
- ``tau auto``: the optimal bandwidth of every unit
  (:func:`spikerates.bandwidth.optimal_bandwidths`, dt = 1 ms) after reading;
- ``tau auto pooled``: one bandwidth for all units superimposed.

and prints each time beside the reading time (the ratio is the cost beyond
reading). Each measurement is repeated ``--repeat`` times and the best wall
time kept, since the machine may be shared.

Usage::

    python tests/benchmarks/bench_analysis.py [--units 300] [--minutes 60]
        [--workdir bench_out] [--repeat 1] [--api]

``--api`` runs ``info`` and ``metrics`` as library calls
(:func:`spikerates.metrics.summarize`, :func:`~spikerates.metrics.compute_metrics`)
instead of the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

MEASURE = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    t0 = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": proc.returncode, "wall": wall,
                      "peak_kb": usage.ru_maxrss, "stderr": proc.stderr[-2000:]}))
    """
)

READ = "from spikerates import io; t = io.read_spikes({path!r})"

API = {
    "read": READ,
    "info": READ + "; from spikerates.metrics import summarize; summarize(t)",
    "metrics": READ + "; from spikerates.metrics import compute_metrics; "
    "compute_metrics(t)",
    "tau auto": READ + "; from spikerates.bandwidth import optimal_bandwidths; "
    "optimal_bandwidths(t.spike_times, t.t_start, t.t_stop, dt=1e-3)",
    "tau auto pooled": READ + "; from spikerates.bandwidth import optimal_bandwidths; "
    "optimal_bandwidths(t.spike_times, t.t_start, t.t_stop, dt=1e-3, pool=True)",
}


def make_file(path: Path, n_units: int, minutes: float, seed: int = 0) -> int:
    """Write the events NPZ; return its number of spikes."""
    rng = np.random.default_rng(seed)
    duration = 60.0 * minutes
    trains = [
        np.sort(rng.uniform(0, duration, rng.poisson(rate * duration)))
        for rate in rng.uniform(1.0, 20.0, n_units)
    ]
    counts = np.array([t.size for t in trains])
    np.savez(
        path,
        spike_times=np.concatenate(trains),
        spike_times_index=np.cumsum(counts),
        unit_ids=np.arange(n_units),
    )
    return int(counts.sum())


def measure(argv: list[str], repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        if result["rc"] != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{result['stderr']}")
        if best is None or result["wall"] < best["wall"]:
            best = result
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--workdir", default="bench_out")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--api", action="store_true")
    args = parser.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"events_{args.units}u_{args.minutes:g}min.npz"
    if not path.exists():
        n_spikes = make_file(path, args.units, args.minutes)
    else:
        with np.load(path) as z:
            n_spikes = int(z["spike_times"].size)
    print(
        f"{args.units} units x {args.minutes:g} min, {n_spikes} spikes, "
        f"{path.stat().st_size / 1e6:.0f} MB ({path})"
    )
    exe = [sys.executable, "-m", "spikerates"]
    runs = {"read": [sys.executable, "-c", API["read"].format(path=str(path))]}
    if args.api:
        for name in ("info", "metrics"):
            runs[name] = [sys.executable, "-c", API[name].format(path=str(path))]
    else:
        runs["info"] = [*exe, "info", str(path), "--to", "tsv"]
        runs["metrics"] = [*exe, "metrics", str(path), "-o", str(work / "m.tsv")]
    for name in ("tau auto", "tau auto pooled"):
        runs[name] = [sys.executable, "-c", API[name].format(path=str(path))]
    env_note = os.environ.get("PYTHONPATH", "")
    print(f"PYTHONPATH={env_note}" if env_note else "PYTHONPATH unset")
    reference = None
    print(f"{'run':<18}{'wall s':>9}{'beyond read s':>15}{'peak MB':>10}")
    for name, argv in runs.items():
        result = measure(argv, args.repeat)
        if reference is None:
            reference = result["wall"]
        print(
            f"{name:<18}{result['wall']:>9.2f}{result['wall'] - reference:>15.2f}"
            f"{result['peak_kb'] / 1024:>10.0f}"
        )


if __name__ == "__main__":
    main()
