"""Benchmark: streamed rates over long recordings, memory and throughput.

Runs ``spikerates rates kernel`` (gauss, tau = 0.04 s; or, with ``--method
isi``, ``spikerates rates isi`` with zero-order interpolation) in a child
process on seeded Poisson events (100 units at about 10 Hz) of 5, 15 and 30
minutes at dt = 1 ms, writing HDF5, and prints per length the wall time, the
child's peak resident memory and the output size. In the same run it times
merely writing an array of the output's size to a chunked HDF5 dataset with
h5py (also in a child process) and prints the ratios of wall time and of CPU
time (user + system). Each
measurement runs ``--repeat`` times, alternating, after ``sync``; the best
wall time is kept, since the machine may be shared.

Goals: peak memory flat across lengths and below 400 MB at 30 minutes;
wall time within 2x of the plain write.

Usage::

    python tests/benchmarks/bench_streaming.py [--minutes 5 15 30] [--units 100]
        [--rate 10] [--dt 0.001] [--workdir bench_out] [--repeat 2] [--api]
        [--method kernel|isi]

``--api`` calls :func:`spikerates.pipeline.estimate_rates` from a small child
script instead of the command line (same reader and writer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np

# Runs one command as its only child and reports wall time and the child's
# peak RSS; a fresh wrapper per run keeps RUSAGE_CHILDREN to that run alone.
MEASURE = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    t0 = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": proc.returncode, "wall": wall, "peak_kb": usage.ru_maxrss,
                      "cpu": usage.ru_utime + usage.ru_stime,
                      "stderr": proc.stderr[-2000:]}))
    """
)

# The plain reference: write an (M, N) float64 array to a chunked HDF5
# dataset block by block, plus its time column, with h5py alone.
PLAIN_WRITE = textwrap.dedent(
    """
    import sys
    import h5py, numpy as np
    path, n_steps, n_units, dt, block = sys.argv[1], *map(float, sys.argv[2:6])
    n_steps, n_units, block = int(n_steps), int(n_units), int(block)
    rows = max(1, (1 << 20) // (8 * n_units))
    values = np.linspace(0.0, 50.0, block * n_units).reshape(block, n_units)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("t", shape=(n_steps,), dtype="f8",
                             chunks=(min(n_steps, rows * n_units),))
        rates = f.create_dataset("rates", shape=(n_steps, n_units), dtype="f8",
                                 chunks=(min(n_steps, rows), n_units))
        for k0 in range(0, n_steps, block):
            k1 = min(k0 + block, n_steps)
            t[k0:k1] = dt * np.arange(k0 + 1, k1 + 1)
            rates[k0:k1] = values[: k1 - k0]
    """
)

# The library path without the command line, for when the CLI is missing.
API_RUN = textwrap.dedent(
    """
    import functools, sys
    import numpy as np
    from spikerates.io import open_matrix_writer, read_spikes
    from spikerates.pipeline import estimate_rates
    src, out = sys.argv[1], sys.argv[2]
    dt, t_stop, method = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    trains = read_spikes(src)

    def factory(n_rows, unit_ids, attrs):
        return open_matrix_writer(out, "hdf5", n_rows=n_rows, unit_ids=unit_ids,
                                  dtype=np.float64, attrs=attrs)

    estimate_rates(trains, factory, method=method, kind="gauss", tau=0.04,
                   normalize=False, causal=False, midpoint=False, interp="zero",
                   dt=dt, t_start=0.0, t_stop=t_stop)
    """
)


def make_events(path: Path, minutes: float, n_units: int, rate: float, seed: int):
    """Write seeded Poisson spike times in the NWB Units layout (HDF5)."""
    rng = np.random.default_rng(seed)
    duration = 60.0 * minutes
    counts = rng.poisson(rate * duration, n_units)
    times = [np.sort(rng.uniform(0.0, duration, c)) for c in counts]
    with h5py.File(path, "w") as f:
        units = f.create_group("units")
        units.create_dataset("spike_times", data=np.concatenate(times))
        units.create_dataset("spike_times_index", data=np.cumsum(counts))
        units.create_dataset("id", data=np.arange(n_units))
    return int(counts.sum()), duration


def measure(cmd: list[str]) -> dict:
    """Run ``cmd`` under the measuring wrapper in a fresh process.

    Dirty pages of earlier runs are flushed first, so that no run pays for
    the write-back of another.
    """
    os.sync()
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result['stderr']}")
    return result


_CLI_MAIN = "from spikerates.cli import main; main()"


def spikerates_command(method: str) -> list[str] | None:
    """The ``spikerates rates METHOD`` command, or None if it does not run."""
    exe = shutil.which("spikerates")
    cmd = [exe] if exe else [sys.executable, "-c", _CLI_MAIN]
    try:
        probe = subprocess.run(
            [*cmd, "rates", method, "--help"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [*cmd, "rates", method] if probe.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 30])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="Hz per unit")
    parser.add_argument("--dt", type=float, default=0.001, help="bin width (s)")
    parser.add_argument("--workdir", default="bench_out")
    parser.add_argument("--api", action="store_true", help="skip the CLI")
    parser.add_argument(
        "--method", choices=["kernel", "isi"], default="kernel", help="estimator"
    )
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per length (best wall kept)"
    )
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    method = args.method
    cli = None if args.api else spikerates_command(method)
    via = f"spikerates rates {method} (CLI)" if cli else "pipeline.estimate_rates"
    print(
        f"# streamed {method} rates via {via}; {args.units} units at ~{args.rate} Hz,"
    )
    params = "gauss tau = 0.04 s" if method == "kernel" else "zero interpolation"
    print(f"# dt = {args.dt} s, {params}, float64 HDF5 output")
    floor = measure([sys.executable, "-c", "import spikerates.pipeline, h5py"])
    print(
        f"# python + imports alone: peak RSS {floor['peak_kb'] / 1024:.0f} MB, "
        f"{floor['wall']:.2f} s"
    )

    header = (
        f"{'minutes':>7} {'steps':>9} {'spikes':>9} {'out MB':>7} | "
        f"{'wall s':>6} {'cpu s':>6} {'peak MB':>7} | "
        f"{'wall s':>6} {'cpu s':>6} {'peak MB':>7} | {'wall x':>6} {'cpu x':>6}"
    )
    print(f"{'':35} | {'rates ' + method:^21} | {'plain h5py write':^21} | ratios")
    print(header)
    print("-" * len(header))
    for minutes in args.minutes:
        events = workdir / f"poisson_{minutes:g}min.nwb"
        out = workdir / f"rates_{minutes:g}min.h5"
        plain = workdir / f"plain_{minutes:g}min.h5"
        n_spikes, duration = make_events(
            events, minutes, args.units, args.rate, seed=int(minutes)
        )
        n_steps = int(round(duration / args.dt))
        plain_cmd = [
            sys.executable,
            "-c",
            PLAIN_WRITE,
            str(plain),
            str(n_steps),
            str(args.units),
            str(args.dt),
            "60000",
        ]
        if cli:
            cmd = [*cli, str(events), "-o", str(out), "--dt", str(args.dt)]
            cmd += ["--t-start", "0", "--t-stop", str(duration)]
        else:
            cmd = [sys.executable, "-c", API_RUN, str(events), str(out)]
            cmd += [str(args.dt), str(duration), method]
        # Alternate the two runs and keep the best wall time of each: the
        # machine is shared, and the minimum is the least disturbed run.
        runs, refs = [], []
        for _ in range(args.repeat):
            out.unlink(missing_ok=True)
            plain.unlink(missing_ok=True)
            runs.append(measure(cmd))
            with h5py.File(out, "r") as f:
                shape = f["rates"].shape
            if shape != (n_steps, args.units):
                raise SystemExit(
                    f"{out}: rates have shape {shape}, expected "
                    f"({n_steps}, {args.units})"
                )
            refs.append(measure(plain_cmd))
        run = min(runs, key=lambda r: r["wall"])
        ref = min(refs, key=lambda r: r["wall"])
        peak_mb = max(r["peak_kb"] for r in runs) / 1024
        size_mb = os.path.getsize(out) / 1e6
        print(
            f"{minutes:>7g} {n_steps:>9d} {n_spikes:>9d} {size_mb:>7.0f} | "
            f"{run['wall']:>6.2f} {run['cpu']:>6.2f} {peak_mb:>7.0f} | "
            f"{ref['wall']:>6.2f} {ref['cpu']:>6.2f} {ref['peak_kb'] / 1024:>7.0f} | "
            f"{run['wall'] / ref['wall']:>6.2f} {run['cpu'] / ref['cpu']:>6.2f}",
            flush=True,
        )
        if not args.keep:
            for p in (events, out, plain):
                p.unlink(missing_ok=True)
    print(
        "# wall x, cpu x = rate estimation / plain write of the same array "
        "(best of --repeat runs; cpu = user + system time of the child)"
    )


if __name__ == "__main__":
    main()
