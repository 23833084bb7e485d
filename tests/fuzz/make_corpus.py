"""Build the seed corpus of the fuzz targets from ``sample_data/``.

    python tests/fuzz/make_corpus.py [--out tests/fuzz/corpus]

Writes one folder per target (``hdf5``, ``npz``, ``csv``, ``phy``,
``params``) holding the sample files that fit the target's ``-max_len``,
smaller cuts of the sample recording in each layout (written by spikerates
itself), and a few structurally odd seeds (external links, empty units,
string ids, Fortran-ordered arrays) so that the fuzzer starts near the
branches that matter.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from _target import SEPARATOR  # noqa: E402

from spikerates import io as spike_io  # noqa: E402
from spikerates.spiketrains import SpikeTrains  # noqa: E402

SAMPLE = os.path.join(ROOT, "sample_data")
#: Largest seed per target (the -max_len given in tests/fuzz/README.md).
MAX_LEN = {"hdf5": 200_000, "npz": 200_000, "csv": 4096, "phy": 20_000}


def _keep(folder: str, name: str, data: bytes, target: str) -> None:
    if len(data) <= MAX_LEN.get(target, 1 << 30):
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)


def _small_trains() -> SpikeTrains:
    trains = spike_io.read_spikes(os.path.join(SAMPLE, "recording_events.npz"))
    return SpikeTrains(
        [t[:5] for t in trains.spike_times[:4]] + [np.array([])],
        unit_ids=np.array([3, 1, 4, 15, 9]),
        labels=np.array(["good", "mua", "good", "noise", "good"]),
    )


def _written(target: str, write) -> bytes:
    """Bytes of a file written by spikerates (write(path) -> None)."""
    path = os.path.join(ROOT, f".corpus-tmp{os.path.splitext(target)[1]}")
    try:
        write(path)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def hdf5_seeds(folder: str) -> None:
    for name in ("recording.nwb", "recording_dense.h5"):
        with open(os.path.join(SAMPLE, name), "rb") as fh:
            _keep(folder, name, fh.read(), "hdf5")
    trains = _small_trains()
    t = np.arange(1, 41) * 1e-3
    spikes = np.zeros((40, 3), dtype=np.int64)
    spikes[[3, 10, 30], [0, 1, 2]] = 1
    seeds = {
        "events.h5": lambda p: spike_io.write_events(p, trains, "hdf5"),
        "dense.h5": lambda p: spike_io.write_dense(p, t, spikes, None, "hdf5"),
        "table.h5": lambda p: spike_io.write_arrays(
            p, {"gain": np.ones(3), "bias": np.zeros(3)}, "hdf5"
        ),
    }
    for name, write in seeds.items():
        _keep(folder, name, _written(".h5", write), "hdf5")

    def odd(path: str) -> None:
        with h5py.File(path, "w") as f:
            units = f.create_group("units")
            units["spike_times"] = np.array([0.5, 0.1, 0.2])
            units["spike_times_index"] = np.array([1, 3], dtype=np.uint32)
            units["id"] = np.array([b"a", b"b"])
            units["quality"] = np.array([b"good", b"mua"])
            units["obs_intervals"] = np.array([[0.0, 1.0], [0.0, 2.0]])
            units["obs_intervals_index"] = np.array([1, 2])
            units.attrs["t_start"] = 0.0
            f["elsewhere"] = h5py.ExternalLink("other.h5", "/x")
            f["alias"] = h5py.SoftLink("/units")

    _keep(folder, "odd.nwb", _written(".h5", odd), "hdf5")


def npz_seeds(folder: str) -> None:
    for name in ("recording_events.npz", "recording_dense.npz"):
        with open(os.path.join(SAMPLE, name), "rb") as fh:
            _keep(folder, name, fh.read(), "npz")
    trains = _small_trains()
    t = np.arange(1, 41) * 1e-3
    spikes = np.zeros((40, 3))
    spikes[[3, 10, 30], [0, 1, 2]] = 1000.0
    seeds = {
        "events.npz": lambda p: spike_io.write_events(p, trains, "npz"),
        "dense.npz": lambda p: spike_io.write_dense(p, t, spikes, None, "npz"),
        "table.npz": lambda p: spike_io.write_arrays(
            p, {"gain": np.ones(3), "bias": np.zeros(3)}, "npz"
        ),
    }
    for name, write in seeds.items():
        _keep(folder, name, _written(".npz", write), "npz")
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        spike_times=np.asfortranarray(np.array([[0.1], [0.2], [0.3]])),
        spike_times_index=np.array([1, 3], dtype=np.uint16),
        unit_ids=np.array(["x", "y"]),
    )
    _keep(folder, "compressed.npz", buf.getvalue(), "npz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("spike_clusters.npy", b"\x93NUMPY\x01\x00")
        zf.writestr("notes.txt", b"not an array")
    _keep(folder, "odd.npz", buf.getvalue(), "npz")


def csv_seeds(folder: str) -> None:
    for name in ("recording_events.csv", "input.csv", "neurons.csv"):
        with open(os.path.join(SAMPLE, name), "rb") as fh:
            _keep(folder, name, fh.read(), "csv")
    with open(os.path.join(SAMPLE, "recording_dense.csv"), "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    _keep(folder, "dense_head.csv", b"".join(lines[:200]), "csv")
    trains = _small_trains()
    _keep(
        folder,
        "events.tsv",
        _written(".tsv", lambda p: spike_io.write_events(p, trains, "tsv")),
        "csv",
    )
    extra = {
        "ms.csv": b"# comment\nneuron_id,time_ms\n1,15.5\n2,\n1,3\n",
        "index.csv": b",unit,time\n0,a,0.1\n1,b,0.2\n",
        "quoted.csv": b'"unit","time"\n"x y",1e-3\n',
        "dense_t.csv": b"t,0,99999999999999999999\n0.001,1,0\n0.002,0,1\n",
        "tabs.tsv": b"cluster\tspike_times\n3\t0.25\n",
    }
    for name, data in extra.items():
        _keep(folder, name, data, "csv")


def phy_seeds(folder: str) -> None:
    phy = os.path.join(SAMPLE, "phy")
    parts = []
    for name in ("spike_times.npy", "spike_clusters.npy", "params.py"):
        with open(os.path.join(phy, name), "rb") as fh:
            parts.append(fh.read())
    with open(os.path.join(phy, "cluster_group.tsv"), "rb") as fh:
        group = fh.read()
    _keep(folder, "sample", SEPARATOR.join([*parts, group]), "phy")
    small = [
        _npy(np.array([30, 300, 3000], dtype=np.uint64).reshape(-1, 1)),
        _npy(np.array([2, 0, 2], dtype=np.int32)),
        b"sample_rate = 30000.\ndtype = 'int16'\n",
        b"cluster_id\tgroup\n0\tgood\n",
        b"cluster_id\tKSLabel\n2\tmua\n",
    ]
    _keep(folder, "small", SEPARATOR.join(small), "phy")
    _keep(folder, "no_labels", SEPARATOR.join(small[:3]), "phy")


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def params_seeds(folder: str) -> None:
    with open(os.path.join(SAMPLE, "phy", "params.py"), "rb") as fh:
        _keep(folder, "sample.py", fh.read(), "params")
    extra = {
        "nested.py": b"a = [1, (2, 3), {'k': [-4.5e3, None]}, ()]\nb = c = 0x1F\n",
        "strings.py": b"dat_path = r'C:\\data' 'x.bin'\nd = b'raw'\n# note\n",
        "blocks.py": b"if True:\n    sample_rate = 1\nsample_rate = 2.5\n",
        "tuple.py": b"pair = 1, 2\none = (1,)\nunit = (1)\n",
        "calls.py": b"import os\nx = os.getcwd()\nsample_rate = 3e4\n",
    }
    for name, data in extra.items():
        _keep(folder, name, data, "params")


BUILDERS = {
    "hdf5": hdf5_seeds,
    "npz": npz_seeds,
    "csv": csv_seeds,
    "phy": phy_seeds,
    "params": params_seeds,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = parser.parse_args(argv)
    for target, build in BUILDERS.items():
        folder = os.path.join(args.out, target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        build(folder)
        print(f"{folder}: {len(os.listdir(folder))} seeds")


if __name__ == "__main__":
    main()
