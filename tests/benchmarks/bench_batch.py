"""Benchmark: a batch of files through the local pool and through Dask.

Writes ``--files`` NPZ event files (seeded Poisson spikes, ``--units`` units
at about ``--rate`` Hz over ``--minutes`` minutes each) and runs
``spikerates rates kernel DIR/*.npz -o OUT/`` over them with

- ``--engine local --jobs 1`` (the plain reference: one file after the
  other in one process),
- ``--engine local --jobs 2`` (a process pool),
- ``--engine dask --jobs 2`` (a LocalCluster of two worker processes on
  127.0.0.1, started and stopped by the command),

each ``--repeat`` times, alternating, keeping the best wall time (the
machine may be shared). It prints files per second, the speed-up of each
engine over the reference, and the Dask path's overhead per file: the wall
time of the Dask run minus the local pool's, divided by the number of
files; the LocalCluster start-up and shutdown (measured with a run over two
tiny files, against the local pool on the same two files) is shown apart.
The outputs of all engines are compared array by array.

Usage::

    python tests/benchmarks/bench_batch.py [--files 20] [--minutes 5]
        [--units 100] [--rate 10] [--dt 0.01] [--workdir bench_batch_out]
        [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, n_files: int, minutes: float, n_units: int, rate: float):
    from spikerates import io
    from spikerates.spiketrains import SpikeTrains

    folder.mkdir(parents=True, exist_ok=True)
    duration = 60.0 * minutes
    paths = []
    for index in range(n_files):
        path = folder / f"session{index:03d}.npz"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(1000 + index)
        trains = SpikeTrains(
            [
                np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
                for _ in range(n_units)
            ],
            unit_ids=np.arange(n_units),
            t_stop=duration,
        )
        io.write_events(path, trains)
    return paths


def run(inputs: Path, out: Path, engine: str, jobs: int, dt: float) -> dict:
    if out.exists():
        shutil.rmtree(out)
    log = out.with_suffix(".jsonl")
    if log.exists():
        log.unlink()
    command = [
        sys.executable,
        "-m",
        "spikerates",
        "-q",
        "rates",
        "kernel",
        str(inputs / "*.npz"),
        "-o",
        str(out) + "/",
        "--to",
        "npz",
        "--dt",
        str(dt),
        "--dtype",
        "float32",
        "--engine",
        engine,
        "--jobs",
        str(jobs),
        "--log",
        str(log),
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return {
        "wall": wall,
        "task_seconds": sum(e["seconds"] for e in entries),
        "ok": sum(e["status"] == "ok" for e in entries),
    }


def same_outputs(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.npz"))
    if names != sorted(p.name for p in b.glob("*.npz")):
        return False
    for name in names:
        with np.load(a / name) as left, np.load(b / name) as right:
            if sorted(left.files) != sorted(right.files):
                return False
            for key in left.files:
                if not np.array_equal(left[key], right[key]):
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--dt", type=float, default=0.01)
    parser.add_argument("--workdir", type=Path, default=Path("bench_batch_out"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    work = args.workdir
    inputs = work / "inputs"
    make_inputs(inputs, args.files, args.minutes, args.units, args.rate)
    tiny = work / "tiny"
    make_inputs(tiny, 2, 0.05, 2, 5.0)
    if hasattr(os, "sync"):
        os.sync()

    configs = [("local", 1), ("local", 2), ("dask", 2)]
    best: dict[tuple[str, int], dict] = {}
    startup: dict[str, float] = {}
    for _ in range(args.repeat):
        for engine, jobs in configs:
            result = run(inputs, work / f"out-{engine}-{jobs}", engine, jobs, args.dt)
            if result["ok"] != args.files:
                raise SystemExit(f"{engine} --jobs {jobs}: {result['ok']} files ok")
            key = (engine, jobs)
            if key not in best or result["wall"] < best[key]["wall"]:
                best[key] = result
        for engine in ("local", "dask"):
            result = run(tiny, work / f"tiny-{engine}", engine, 2, args.dt)
            startup[engine] = min(startup.get(engine, np.inf), result["wall"])

    reference = best[("local", 1)]["wall"]
    print(
        f"{args.files} files of {args.minutes:g} min x {args.units} units at "
        f"{args.rate:g} Hz, rates kernel at dt = {args.dt:g} s (float32 npz), "
        f"best of {args.repeat}"
    )
    print(f"{'engine':<18}{'wall s':>9}{'files/s':>9}{'vs jobs 1':>11}")
    for engine, jobs in configs:
        wall = best[(engine, jobs)]["wall"]
        print(
            f"{engine + ' --jobs ' + str(jobs):<18}{wall:9.2f}"
            f"{args.files / wall:9.2f}{reference / wall:10.2f}x"
        )
    local2, dask2 = best[("local", 2)]["wall"], best[("dask", 2)]["wall"]
    cluster = startup["dask"] - startup["local"]
    print(
        f"dask - local (jobs 2): {dask2 - local2:+.2f} s in all, "
        f"{(dask2 - local2) / args.files * 1000:+.0f} ms per file"
    )
    print(
        f"  of which LocalCluster start + stop: {cluster:.2f} s "
        f"(two tiny files: dask {startup['dask']:.2f} s, "
        f"local {startup['local']:.2f} s)"
    )
    print(
        f"  per-file overhead without it: "
        f"{(dask2 - local2 - cluster) / args.files * 1000:+.0f} ms"
    )
    per_task = {key: value["task_seconds"] / args.files for key, value in best.items()}
    print(
        "mean task time on a worker: "
        + ", ".join(f"{e} --jobs {j}: {per_task[(e, j)]:.3f} s" for e, j in configs)
    )
    same = all(
        same_outputs(work / "out-local-1", work / f"out-{e}-{j}") for e, j in configs
    )
    print(f"outputs identical across engines: {same}")


if __name__ == "__main__":
    main()
