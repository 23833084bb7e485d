"""Benchmark: writing rates as CSV against NPZ (and HDF5, NWB).

Streams the same (M, N) float64 matrix of rates, as the rates commands do,
through :func:`spikerates.io.open_matrix_writer` in blocks of one minute,
once per format, and prints per format the best wall time of ``--repeat``
runs and the best CPU time (steadier on a shared machine), each with its
ratio to NPZ measured in the same run, and the output size. CSV prints the
values with 17 significant digits (read back exactly) and the times as the
grid's decimals.

Goal: CSV within 3x of NPZ for the whole rates command (estimation
included); writing alone is bound to be far slower than NPZ's raw copy.

Usage::

    python tests/benchmarks/bench_io.py [--minutes 10] [--units 300]
        [--dt 0.01] [--repeat 2] [--formats npz csv h5 nwb]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--dt", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=["npz", "csv", "h5", "nwb"])
    args = parser.parse_args()
    n_rows = int(round(args.minutes * 60 / args.dt))
    rng = np.random.default_rng(0)
    # Kernel rates look like smooth positive noise with full float64 digits.
    rates = rng.gamma(2.0, 5.0, size=(n_rows, args.units))
    block = max(1, int(round(60 / args.dt)))
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for fmt in args.formats:
                path = os.path.join(tmp, f"rates.{fmt}")
                wall, cpu = write(path, rates, args.dt, block)
                best[fmt] = min(best.get(fmt, wall), wall)
                best_cpu[fmt] = min(best_cpu.get(fmt, cpu), cpu)
                sizes[fmt] = os.path.getsize(path)
                os.unlink(path)
    print(
        f"{n_rows} rows x {args.units} units ({rates.nbytes / 1e6:.0f} MB of "
        f"float64), best of {args.repeat}"
    )
    reference = best.get("npz")
    for fmt in args.formats:
        ratio = f"{best[fmt] / reference:6.2f}x npz" if reference else ""
        cpu_ratio = f"{best_cpu[fmt] / best_cpu['npz']:6.2f}x" if reference else ""
        print(
            f"{fmt:>4}: {best[fmt]:8.2f} s wall {ratio}  {best_cpu[fmt]:8.2f} s cpu "
            f"{cpu_ratio}  {sizes[fmt] / 1e6:8.1f} MB"
        )


if __name__ == "__main__":
    main()
