"""Shared fixtures: small spike data sets and files in every input format."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pytest

from spikerates.spiketrains import SpikeTrains

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:
    # The same examples on every run, so the suite's verdict does not depend
    # on the draw; ``--hypothesis-profile=explore`` draws new ones.
    from hypothesis import HealthCheck

    # No deadline and no speed health check: a loaded machine must not turn
    # a slow example into a failure.
    _steady = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("default", derandomize=True, database=None, **_steady)
    settings.register_profile("explore", derandomize=False, **_steady)
    settings.load_profile("default")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(12345)


@pytest.fixture
def sample_trains() -> SpikeTrains:
    """Five units with ids out of order, an empty unit, a one-spike unit,
    negative times, times on bin edges of dt = 1 ms, and labels."""
    return SpikeTrains(
        [
            np.array([0.5, 0.001, 0.25, -0.002]),
            np.array([]),
            np.array([0.003]),
            np.array([0.1 + 0.2, 0.3, 0.0]),
            np.linspace(0.0015, 0.9995, 40),
        ],
        unit_ids=np.array([7, 3, 11, 0, 42]),
        labels=np.array(["good", "mua", "good", "noise", "good"]),
    )


def write_phy_folder(
    folder: os.PathLike | str,
    samples: np.ndarray,
    clusters: np.ndarray,
    *,
    sample_rate: float | None = 30000.0,
    group: dict[int, str] | None = None,
    ks_label: dict[int, str] | None = None,
    params_extra: str = "",
) -> str:
    """Write a Phy/Kilosort folder as those tools do and return its path."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "spike_times.npy"), samples)
    np.save(os.path.join(folder, "spike_clusters.npy"), clusters)
    lines = [
        "dat_path = 'recording.dat'",
        "n_channels_dat = 385",
        "dtype = 'int16'",
        "offset = 0",
    ]
    if sample_rate is not None:
        lines.append(f"sample_rate = {sample_rate!r}")
    lines.append("hp_filtered = True")
    with open(os.path.join(folder, "params.py"), "w") as fh:
        fh.write("\n".join(lines) + "\n" + params_extra)
    for name, column, labels in (
        ("cluster_group.tsv", "group", group),
        ("cluster_KSLabel.tsv", "KSLabel", ks_label),
    ):
        if labels is not None:
            with open(os.path.join(folder, name), "w") as fh:
                fh.write(f"cluster_id\t{column}\n")
                for cid, label in labels.items():
                    fh.write(f"{cid}\t{label}\n")
    return folder


@pytest.fixture
def phy_writer():
    """:func:`write_phy_folder`, for tests that build their own Phy folders."""
    return write_phy_folder


@dataclass
class PhyFolder:
    """A Phy folder on disk and what reading it must give."""

    path: str
    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    labels: np.ndarray
    sample_rate: float = 30000.0
    extra: dict = field(default_factory=dict)


@pytest.fixture(params=["int64 (n,)", "uint64 (n,1)"])
def phy_folder(request, tmp_path, rng) -> PhyFolder:
    """A Kilosort-style folder: spike_times as int64 (n,) or uint64 (n, 1),
    clusters 0, 2, 5, 9 (in random order), labels from cluster_group.tsv over
    cluster_KSLabel.tsv."""
    rate = 30000.0
    ids = np.array([0, 2, 5, 9])
    n = 300
    clusters = rng.choice(ids, size=n)
    samples = np.sort(rng.integers(0, int(rate) * 20, size=n))
    if request.param == "uint64 (n,1)":
        stored = samples.astype(np.uint64).reshape(-1, 1)
        stored_clusters = clusters.astype(np.uint32)
    else:
        stored = samples.astype(np.int64)
        stored_clusters = clusters.astype(np.int32)
    path = write_phy_folder(
        tmp_path / "kilosort",
        stored,
        stored_clusters,
        sample_rate=rate,
        group={2: "good", 5: "noise"},
        ks_label={0: "mua", 2: "mua", 5: "good", 9: "good"},
    )
    times = samples / rate
    expected = [np.sort(times[clusters == c]) for c in ids]
    labels = np.array(["mua", "good", "noise", "good"])
    return PhyFolder(path, ids, expected, labels, rate)


@dataclass
class NwbFile:
    """An NWB file written by pynwb and what reading it must give."""

    path: str
    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    labels: np.ndarray
    t_start: float
    t_stop: float


def write_nwb(path: os.PathLike | str, units: list[dict]) -> str:
    """Write an NWB file with pynwb holding a Units table (one dict per unit:
    spike_times, id, quality, optional obs_intervals)."""
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="spikerates test session",
        identifier="spikerates-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_unit_column("quality", "curation label")
    for unit in units:
        nwb.add_unit(**unit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(os.fspath(path), "w") as io:
            io.write(nwb)
    return os.fspath(path)


@pytest.fixture
def nwb_writer():
    """:func:`write_nwb`, for tests that build their own NWB files."""
    return write_nwb


@pytest.fixture
def nwb_file(tmp_path) -> NwbFile:
    """An NWB file from pynwb: arbitrary ids, an empty unit, unsorted spike
    times, obs_intervals and a 'quality' column."""
    units = [
        {
            "spike_times": [0.5, 0.1, 0.30000000000000004, 2.0],
            "id": 1001,
            "quality": "good",
            "obs_intervals": [[0.0, 2.5]],
        },
        {
            "spike_times": [],
            "id": 7,
            "quality": "mua",
            "obs_intervals": [[0.0, 1.0], [1.5, 3.0]],
        },
        {
            "spike_times": [1.25],
            "id": -3,
            "quality": "good",
            "obs_intervals": [[0.5, 3.0]],
        },
    ]
    path = write_nwb(tmp_path / "session.nwb", units)
    return NwbFile(
        path,
        np.array([1001, 7, -3]),
        [np.sort(np.array(u["spike_times"], dtype=float)) for u in units],
        np.array(["good", "mua", "good"]),
        0.0,
        3.0,
    )


# ----------------------------------------------------------------------------
# The command line: running it and checking what it printed and wrote


def _cli_runner():
    from click.testing import CliRunner

    # click < 8.2 mixes stderr into stdout unless told not to
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


class Cli:
    """Drive ``spikerates`` in-process (click's CliRunner) and check results."""

    @staticmethod
    def run(args, *, input=None):
        """Invoke the command line; ``args`` are converted to strings."""
        from spikerates.cli import cli

        return _cli_runner().invoke(
            cli, [str(a) for a in args], input=input, catch_exceptions=False
        )

    @staticmethod
    def error_lines(result) -> list[str]:
        """The non-blank lines on standard error."""
        return [line for line in result.stderr.splitlines() if line.strip()]

    @classmethod
    def assert_one_line_error(cls, result, *fragments: str) -> str:
        """Exit 1 and exactly one 'spikerates: error:' line naming the fragments."""
        assert result.exit_code == 1, (result.exit_code, result.stderr, result.stdout)
        lines = cls.error_lines(result)
        assert len(lines) == 1, lines
        assert lines[0].startswith("spikerates: error: "), lines[0]
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        assert "Traceback" not in result.stderr
        return lines[0]

    @staticmethod
    def assert_usage_error(result, *fragments: str) -> None:
        """Exit 2, click's 'Error:' text naming the fragments, no traceback."""
        assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
        assert "Error: " in result.stderr, result.stderr
        for fragment in fragments:
            assert fragment in result.stderr, (fragment, result.stderr)
        assert "Traceback" not in result.stderr

    @staticmethod
    def entries(path) -> list[str]:
        """Sorted names in a folder (hidden temporary files included)."""
        return sorted(os.listdir(path))

    @staticmethod
    def assert_same_rates(actual, expected) -> None:
        """1e-9 relative; 1e-12 absolute (scaled by the peak) where ~0."""
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12 * scale)


@pytest.fixture(scope="session")
def cli() -> type[Cli]:
    """:class:`Cli`: run the command line and check its output."""
    return Cli


class SpikeFiles:
    """Spike and result files written and read with numpy, h5py and csv only,
    independent of ``spikerates.io``."""

    @staticmethod
    def write_dense(path, t, spikes, *, unit_ids=None) -> str:
        """A dense file (NPZ, HDF5 or CSV by extension): t (M,), spikes (M, N)."""
        import csv

        import h5py

        path = str(path)
        if path.endswith(".npz"):
            arrays = {"t": t, "spikes": spikes}
            if unit_ids is not None:
                arrays["unit_ids"] = np.asarray(unit_ids)
            np.savez(path, **arrays)
        elif path.endswith((".h5", ".hdf5")):
            with h5py.File(path, "w") as f:
                f["t"] = t
                f["spikes"] = spikes
                if unit_ids is not None:
                    f["unit_ids"] = np.asarray(unit_ids)
        elif path.endswith(".csv"):
            ids = range(spikes.shape[1]) if unit_ids is None else unit_ids
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["t", *[str(u) for u in ids]])
                for k in range(len(t)):
                    writer.writerow(
                        [repr(float(t[k]))] + [repr(float(v)) for v in spikes[k]]
                    )
        else:
            raise AssertionError(path)
        return path

    @staticmethod
    def write_events_npz(path, spike_times, unit_ids) -> str:
        """An events NPZ: spike_times, spike_times_index, unit_ids."""
        flat = np.concatenate(spike_times) if spike_times else np.empty(0)
        index = np.cumsum([len(s) for s in spike_times])
        np.savez(path, spike_times=flat, spike_times_index=index, unit_ids=unit_ids)
        return str(path)

    @staticmethod
    def load(path) -> dict:
        """Every array of an NPZ file, or every root dataset of an HDF5 file."""
        import h5py

        path = str(path)
        if path.endswith(".npz"):
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}

    @classmethod
    def read_rates(cls, path):
        """(t, rates, unit ids as str) from an NPZ, HDF5 or CSV rates file."""
        import h5py

        path = str(path)
        if path.endswith(".npz"):
            with np.load(path) as z:
                return z["t"], z["rates"], [str(u) for u in z["unit_ids"]]
        if path.endswith((".h5", ".hdf5")):
            with h5py.File(path, "r") as f:
                ids = [
                    u.decode() if isinstance(u, bytes) else str(u)
                    for u in f["unit_ids"]
                ]
                return f["t"][()], f["rates"][()], ids
        with open(path) as f:
            return cls.parse_matrix_csv(f.read())

    @staticmethod
    def parse_matrix_csv(text: str):
        """(t, values, column names) of a ``t,<unit>,...`` table."""
        lines = text.strip().splitlines()
        header = lines[0].split(",")
        assert header[0] == "t", header
        values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
        return values[:, 0], values[:, 1:], header[1:]

    @classmethod
    def read_events(cls, path):
        """(list of spike-time arrays, unit ids as str) from an events file."""
        import h5py

        path = str(path)
        if path.endswith(".npz"):
            with np.load(path) as z:
                flat, index = z["spike_times"], z["spike_times_index"]
                ids = z["unit_ids"]
        elif path.endswith((".h5", ".nwb")):
            with h5py.File(path, "r") as f:
                flat = f["units/spike_times"][()]
                index = f["units/spike_times_index"][()]
                ids = f["units/id"][()]
        else:
            with open(path) as f:
                return cls.parse_events_csv(f.read())
        bounds = np.r_[0, index].astype(int)
        trains = [flat[bounds[i] : bounds[i + 1]] for i in range(len(index))]
        return trains, [str(u) for u in ids]

    @staticmethod
    def parse_events_csv(text: str, unit_order=None):
        """(spike-time arrays, unit ids) of a ``unit,time`` table."""
        import csv
        import io

        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["unit", "time"], rows[0]
        by_unit: dict[str, list[float]] = {}
        for unit, time in rows[1:]:
            by_unit.setdefault(unit, []).append(float(time))
        ids = list(by_unit) if unit_order is None else list(unit_order)
        return [np.array(by_unit.get(u, [])) for u in ids], ids

    @staticmethod
    def times_of(t, spikes) -> list[np.ndarray]:
        """Per column, the times of the non-zero rows of a dense matrix."""
        return [t[spikes[:, j] != 0] for j in range(spikes.shape[1])]


@pytest.fixture(scope="session")
def files() -> type[SpikeFiles]:
    """:class:`SpikeFiles`: write inputs and read outputs without spikerates.io."""
    return SpikeFiles


#: The dense test recording: steps of DENSE_DT seconds, units.
DENSE_DT, DENSE_STEPS, DENSE_UNITS = 0.001, 600, 4


@pytest.fixture(scope="session")
def dense_spikes():
    """nengo-style dense spikes: t = dt*(1..M), values 1/dt, (600, 4)."""
    rng = np.random.default_rng(1234)
    t = DENSE_DT * np.arange(1, DENSE_STEPS + 1)
    spikes = (rng.random((DENSE_STEPS, DENSE_UNITS)) < 0.04) / DENSE_DT
    # The reference's ISI estimator fails on spikes in the first/last steps.
    spikes[:3] = 0.0
    spikes[-3:] = 0.0
    assert np.all(np.count_nonzero(spikes, axis=0) >= 5)
    return t, spikes


@pytest.fixture(scope="session")
def dense_files(tmp_path_factory, dense_spikes):
    """:func:`dense_spikes` as NPZ, HDF5 and CSV files, by format name."""
    t, spikes = dense_spikes
    root = tmp_path_factory.mktemp("dense")
    return {
        fmt: SpikeFiles.write_dense(root / f"spikes.{fmt}", t, spikes)
        for fmt in ("npz", "h5", "csv")
    }


@pytest.fixture(scope="session")
def events_file(tmp_path_factory):
    """Spike times in the events layout with non-grid times and an empty unit;
    units 7, 3, 11. Returns (path, spike times per unit)."""
    root = tmp_path_factory.mktemp("events")
    trains = [
        np.array([0.0105, 0.0502, 0.1, 0.2512, 0.3]),
        np.array([]),
        np.array([0.02, 0.021, 0.15, 0.29]),
    ]
    path = SpikeFiles.write_events_npz(
        root / "events.npz", trains, np.array([7, 3, 11])
    )
    return path, trains


@pytest.fixture(scope="session")
def phy_dir(tmp_path_factory):
    """A small Phy/Kilosort folder: clusters 0 (good), 2 (mua), 5 (good).
    Returns (folder, spike times by cluster)."""
    root = tmp_path_factory.mktemp("phy") / "sorting"
    root.mkdir()
    sample_rate = 30000.0
    rng = np.random.default_rng(5)
    samples = np.sort(rng.choice(np.arange(300, 30000), size=90, replace=False))
    clusters = np.resize(np.array([0, 2, 5]), 90)
    np.save(root / "spike_times.npy", samples.astype(np.uint64))
    np.save(root / "spike_clusters.npy", clusters.astype(np.int32))
    (root / "params.py").write_text(
        "dat_path = 'x.bin'\nn_channels_dat = 4\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {sample_rate}\nhp_filtered = False\n"
    )
    (root / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n0\tgood\n2\tmua\n5\tgood\n"
    )
    trains = {c: samples[clusters == c] / sample_rate for c in (0, 2, 5)}
    return str(root), trains


def _script() -> list[str]:
    """The installed console script, else the module through this interpreter."""
    import shutil
    import sys
    from pathlib import Path

    # The script beside this interpreter first: another one on PATH may
    # belong to a different environment.
    beside = Path(sys.executable).with_name("spikerates")
    found = str(beside) if beside.exists() else shutil.which("spikerates")
    if found is None:
        return [sys.executable, "-m", "spikerates"]
    return [found]


class Script:
    """The ``spikerates`` script in subprocesses: real streams and exit codes."""

    command: list[str] = _script()

    @classmethod
    def run(cls, *args, cwd=None, input=None, check=True, timeout=120):
        """Run the script with ``args``; returns the CompletedProcess (bytes)."""
        import subprocess

        result = subprocess.run(
            [*cls.command, *[str(a) for a in args]],
            cwd=cwd,
            input=input,
            capture_output=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, result.stderr.decode()
        return result

    @classmethod
    def shell(cls, command: str, cwd, timeout=120):
        """Run a bash pipeline where ``spikerates`` means the script."""
        import shlex
        import subprocess

        script = " ".join(shlex.quote(part) for part in cls.command)
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command.replace("spikerates", script)],
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def script() -> type[Script]:
    """:class:`Script`: the installed command in subprocesses."""
    return Script


@pytest.fixture(autouse=True)
def _no_thread_count_from_an_earlier_run(monkeypatch):
    """``--threads`` hands its count to worker processes through the
    environment; a run in this process must not pass it to the next test."""
    monkeypatch.delenv("SPIKERATES_THREADS", raising=False)
