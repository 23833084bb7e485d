"""Benchmark: writing rates as CSV against NPZ (and HDF5, NWB).

Streams the same (M, N) float64 matrix, as the rates commands do, through
:func:`spikerates.io.open_matrix_writer` in blocks of one minute, once per
format and run, and prints per format the median wall time and the median
CPU time (steadier on a shared machine) of ``--repeat`` runs (the first
run included), each with its ratio to NPZ measured in the same run, and the
output size. CSV prints each value as the shortest text that reads back as
the same float64 and the times as the grid's decimals.

Data (``--data``): ``kernel`` (default), Poisson spike counts smoothed by
a Gaussian kernel of 40 ms, in Hz: non-round values, the worst case for
text; ``gamma``, independent gamma draws (no zeros at all); ``counts``,
the binned spike counts themselves (small integers).

Usage::

    python tests/benchmarks/bench_io.py [--minutes 10] [--units 300]
        [--dt 0.01] [--repeat 3] [--data kernel] [--formats npz csv h5 nwb]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import spikerates.io as sio


def write(path: str, rates: np.ndarray, dt: float, block: int) -> tuple[float, float]:
    n_rows, n_units = rates.shape
    attrs = {"estimator": "kernel", "kind": "gauss", "tau": 0.04, "dt": dt}
    attrs["t_start"] = 0.0
    t = (np.arange(n_rows) + 1) * dt
    start, cpu = time.perf_counter(), time.process_time()
    with sio.open_matrix_writer(
        path, None, n_rows=n_rows, unit_ids=np.arange(n_units), attrs=attrs
    ) as writer:
        for k0 in range(0, n_rows, block):
            writer.append(t[k0 : k0 + block], rates[k0 : k0 + block])
    return time.perf_counter() - start, time.process_time() - cpu


def make_data(kind: str, n_rows: int, n_units: int, dt: float) -> np.ndarray:
    """The (n_rows, n_units) float64 matrix of kind ``kind`` (seeded)."""
    rng = np.random.default_rng(0)
    if kind == "gamma":
        return rng.gamma(2.0, 5.0, size=(n_rows, n_units))
    # Units firing at 0.5 to 20 Hz.
    rates = rng.uniform(0.5, 20.0, size=n_units)
    counts = rng.poisson(rates * dt, size=(n_rows, n_units)).astype(np.float64)
    if kind == "counts":
        return counts
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(counts / dt, sigma=0.04 / dt, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--dt", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", choices=["kernel", "gamma", "counts"])
    parser.add_argument("--formats", nargs="+", default=["npz", "csv", "h5", "nwb"])
    args = parser.parse_args()
    kind = args.data or "kernel"
    n_rows = int(round(args.minutes * 60 / args.dt))
    rates = make_data(kind, n_rows, args.units, args.dt)
    block = max(1, int(round(60 / args.dt)))
    walls: dict[str, list[float]] = {fmt: [] for fmt in args.formats}
    cpus: dict[str, list[float]] = {fmt: [] for fmt in args.formats}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for fmt in args.formats:
                path = os.path.join(tmp, f"rates.{fmt}")
                wall, cpu = write(path, rates, args.dt, block)
                walls[fmt].append(wall)
                cpus[fmt].append(cpu)
                sizes[fmt] = os.path.getsize(path)
                os.unlink(path)
    wall = {fmt: float(np.median(v)) for fmt, v in walls.items()}
    cpu = {fmt: float(np.median(v)) for fmt, v in cpus.items()}
    print(
        f"{kind}: {n_rows} rows x {args.units} units ({rates.nbytes / 1e6:.0f} MB "
        f"of float64), median of {args.repeat}"
    )
    for fmt in args.formats:
        ratio = f"{wall[fmt] / wall['npz']:6.2f}x npz" if "npz" in wall else ""
        cpu_ratio = f"{cpu[fmt] / cpu['npz']:6.2f}x" if "npz" in cpu else ""
        print(
            f"{fmt:>4}: {wall[fmt]:8.2f} s wall {ratio}  {cpu[fmt]:8.2f} s cpu "
            f"{cpu_ratio}  {sizes[fmt] / 1e6:8.1f} MB"
        )


if __name__ == "__main__":
    main()
