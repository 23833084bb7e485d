"""Hostile and broken input: each case runs the command line in a child
process and must end with one line on standard error, exit status 1 or 2,
no traceback, no file beyond the requested output, in bounded memory and
CPU time.

The files are built here, byte by byte where a writer would refuse to make
them (encrypted zip entries, broken ``.npy`` headers, deflate bombs).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikerates.io import safety

#: Memory allowed to a child run (peak resident set), in bytes.
MAX_RSS = 1 << 30
#: CPU time allowed to a child run, in seconds.
MAX_CPU = 10.0
#: Address-space cap of a child run: a safety net for the machine, well
#: above MAX_RSS so that the measured peak, not this cap, decides.
ADDRESS_SPACE = 6 << 30


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: str
    max_rss: int
    cpu: float
    created: set[str] = field(default_factory=set)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _limit_child() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_cli(
    args: list[str],
    cwd: Path,
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Run:
    """Run ``python -m spikerates ARGS`` in ``cwd`` with its own TMPDIR and
    measure its peak memory and CPU time (``os.wait4``)."""
    tmpdir = cwd / ".tmp"
    tmpdir.mkdir(exist_ok=True)
    before = _tree(cwd)
    child_env = dict(os.environ)
    child_env.update({"TMPDIR": str(tmpdir), "COLUMNS": "200"})
    child_env.update(env or {})
    out_path, err_path = cwd.parent / "stdout.bin", cwd.parent / "stderr.txt"
    with (
        open(out_path, "wb") as out,
        open(err_path, "wb") as err,
        open(stdin or os.devnull, "rb") as inp,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "spikerates", *args],
            cwd=cwd,
            stdin=inp,
            stdout=out,
            stderr=err,
            env=child_env,
            preexec_fn=_limit_child,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    created = _tree(cwd) - before
    return Run(
        proc.returncode,
        out_path.read_bytes(),
        err_path.read_text(errors="replace"),
        usage.ru_maxrss * 1024,
        usage.ru_utime + usage.ru_stime,
        created,
    )


def assert_refused(run: Run, *fragments: str, outputs: tuple[str, ...] = ()) -> None:
    """One error line, exit 1 or 2, no traceback, nothing left behind,
    bounded memory and CPU; the line holds each of ``fragments``."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode in (1, 2), (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith("spikerates: error:"), lines
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    # Nothing new anywhere: not the requested output, not a temporary file.
    assert run.created == set(), run.created
    for name in outputs:
        assert name not in run.created
    assert run.max_rss < MAX_RSS, run.max_rss
    assert run.cpu < MAX_CPU, run.cpu


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The child's working folder (inputs are written into it first)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


# ----------------------------------------------------------------------------
# Builders


def _dense_h5(path: Path, n: int = 600) -> h5py.File:
    f = h5py.File(path, "w")
    f["t"] = np.arange(1, n + 1) * 1e-3
    return f


def write_secret(folder: Path, n: int = 600) -> Path:
    secret = folder / "secret.bin"
    secret.write_bytes((b"SECRET-" * n)[:n])
    return secret


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def broken_npy_header() -> bytes:
    """A version 1.0 header whose dictionary never closes its bracket (numpy's
    tokenizer fallback raised tokenize.TokenError on it)."""
    text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,"
    pad = 64 - (10 + len(text) + 1) % 64
    header = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def write_zip(path: Path, members: dict[str, bytes], **kwargs) -> None:
    with zipfile.ZipFile(path, "w", **kwargs) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def events_npz(path: Path, times: np.ndarray, index: np.ndarray) -> None:
    write_zip(
        path,
        {
            "spike_times.npy": npy_bytes(times),
            "spike_times_index.npy": npy_bytes(index),
        },
    )


def raw_zip(path: Path, entries: list[tuple[str, int, bytes, int, int]]) -> None:
    """Write a zip archive by hand: entries of (name, method, stored bytes,
    declared uncompressed size, crc), so that sizes need not be true."""

    def u16(v: int) -> bytes:
        return v.to_bytes(2, "little")

    def u32(v: int) -> bytes:
        return v.to_bytes(4, "little")

    body, central = b"", b""
    for name, method, data, size, crc in entries:
        raw = name.encode()
        common = u16(0) + u16(method) + u32(0) + u32(crc) + u32(len(data))
        common += u32(size) + u16(len(raw))
        local = b"PK\x03\x04" + u16(20) + common + u16(0) + raw
        central += b"PK\x01\x02" + u16(20) + u16(20) + common
        central += u16(0) * 3 + u16(0) + u32(0) + u32(len(body)) + raw
        body += local + data
    end = b"PK\x05\x06" + u16(0) * 2 + u16(len(entries)) * 2
    end += u32(len(central)) + u32(len(body)) + u16(0)
    path.write_bytes(body + central + end)


def deflate_bomb(path: Path, n_bytes: int) -> None:
    """An NPZ whose member ``spikes.npy`` declares ``n_bytes`` of float64
    zeros, compressed about a thousandfold, beside a small valid ``t.npy``.
    The compressed stream repeats one full-flush block, so building it reads
    no gigabytes; its CRC is not computed (a reader must refuse before it
    gets that far)."""
    n_values = n_bytes // 8
    header = npy_header((n_values, 1))
    block = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)]
    first = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert again == first
    payload = n_values * 8
    parts.append(first * (payload // block))
    parts.append(comp.compress(bytes(payload % block)) + comp.flush())
    t = npy_bytes(np.arange(1, 4) * 1e-3)
    raw_zip(
        path,
        [
            ("t.npy", 0, t, len(t), zlib.crc32(t)),
            ("spikes.npy", 8, b"".join(parts), len(header) + payload, 0),
        ],
    )


def encrypted_npz(path: Path) -> None:
    """A valid archive with the 'encrypted' flag set on its spike_times entry."""
    events_npz(path, np.array([0.1, 0.2]), np.array([2]))
    raw = bytearray(path.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (pos := raw.find(signature, start)) >= 0:
            raw[pos + flag_at] |= 0x01
            start = pos + 4
    path.write_bytes(bytes(raw))


def phy_folder(folder: Path, samples: np.ndarray, params: str | None = None) -> Path:
    folder.mkdir()
    np.save(folder / "spike_times.npy", samples)
    np.save(folder / "spike_clusters.npy", np.zeros(len(samples), dtype=np.int32))
    (folder / "params.py").write_text(params or "sample_rate = 30000.0\n")
    return folder


# ----------------------------------------------------------------------------
# External data (HDF5 external storage, external links, virtual datasets)


def _external_storage(work: Path, relative: bool) -> str:
    write_secret(work)
    target = "../work/secret.bin" if relative else str(work / "secret.bin")
    with _dense_h5(work / "leak.h5") as f:
        f.create_dataset(
            "spikes", shape=(600, 1), dtype="u1", external=[(target, 0, 600)]
        )
    return "leak.h5"


def _external_link(work: Path) -> str:
    with h5py.File(work / "other.h5", "w") as f:
        f["data"] = np.ones((600, 1))
    with _dense_h5(work / "leak.h5") as f:
        f["spikes"] = h5py.ExternalLink("other.h5", "/data")
    return "leak.h5"


def _external_group(work: Path) -> str:
    with h5py.File(work / "other.h5", "w") as f:
        units = f.create_group("units")
        units["spike_times"] = np.array([0.1, 0.2])
        units["spike_times_index"] = np.array([2])
    with h5py.File(work / "leak.h5", "w") as f:
        f["units"] = h5py.ExternalLink("other.h5", "/units")
    return "leak.h5"


def _virtual(work: Path) -> str:
    with h5py.File(work / "other.h5", "w") as f:
        f["data"] = np.ones((600, 1))
    layout = h5py.VirtualLayout(shape=(600, 1), dtype="f8")
    layout[:] = h5py.VirtualSource("other.h5", "data", shape=(600, 1))
    with _dense_h5(work / "leak.h5") as f:
        f.create_virtual_dataset("spikes", layout)
    return "leak.h5"


def _external_units(work: Path) -> str:
    secret = write_secret(work, 64)
    with h5py.File(work / "leak.h5", "w") as f:
        units = f.create_group("units")
        units.create_dataset(
            "spike_times", shape=(8,), dtype="<f8", external=[(str(secret), 0, 64)]
        )
        units["spike_times_index"] = np.array([8])
    return "leak.h5"


EXTERNAL = {
    "external storage, absolute": lambda w: _external_storage(w, False),
    "external storage, relative": lambda w: _external_storage(w, True),
    "external link to a dataset": _external_link,
    "external link to a group": _external_group,
    "virtual dataset": _virtual,
    "external storage in a Units table": _external_units,
}


@pytest.mark.parametrize("case", EXTERNAL)
def test_external_data_is_refused_by_default(work: Path, case: str) -> None:
    name = EXTERNAL[case](work)
    run = run_cli(["events", name, "-o", "leak.npz"], work)
    assert_refused(run, "--allow-external-data", outputs=("leak.npz",))


ANALYSES = {
    "info": ["info"],
    "metrics": ["metrics"],
    "psth": ["psth", "--events", "events.csv", "--window", "-0.1:0.1", "--dt", "0.01"],
}


@pytest.mark.parametrize("command", ANALYSES)
@pytest.mark.parametrize("case", EXTERNAL)
def test_analyses_refuse_external_data_by_default(
    work: Path, case: str, command: str
) -> None:
    name = EXTERNAL[case](work)
    (work / "events.csv").write_text("time\n0.15\n")
    args = ANALYSES[command]
    run = run_cli([args[0], name, *args[1:], "-o", "out.csv"], work)
    assert_refused(run, "--allow-external-data", outputs=("out.csv",))


@pytest.mark.parametrize("command", ANALYSES)
def test_analyses_read_external_data_with_the_flag(work: Path, command: str) -> None:
    name = _external_link(work)
    (work / "events.csv").write_text("time\n0.15\n")
    args = ANALYSES[command]
    run = run_cli(
        [args[0], name, *args[1:], "--allow-external-data", "-o", "out.csv"], work
    )
    assert run.returncode == 0, run.stderr
    assert (work / "out.csv").stat().st_size > 0


@pytest.mark.parametrize("case", EXTERNAL)
def test_external_data_is_refused_by_the_library(work: Path, case: str) -> None:
    from spikerates import io
    from spikerates.errors import SpikeDataError

    name = EXTERNAL[case](work)
    with pytest.raises(SpikeDataError, match="allow-external-data"):
        io.read_spikes(work / name)


def test_external_data_is_read_with_the_flag(work: Path) -> None:
    name = _external_storage(work, relative=False)
    run = run_cli(
        ["events", name, "--allow-external-data", "--values", "counts", "-o", "x.npz"],
        work,
    )
    assert run.returncode == 0, run.stderr
    with np.load(work / "x.npz") as npz:
        expected = int(sum((b"SECRET-" * 600)[:600]))
        assert npz["spike_times"].size == expected


def test_external_link_is_followed_with_the_flag(tmp_path: Path) -> None:
    """In the process, through click: refused, then read with the flag."""
    from click.testing import CliRunner

    from spikerates.cli import cli

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.eye(4, dtype=np.int64)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["t"] = np.arange(1, 5) * 1e-3
        f["spikes"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    out = tmp_path / "out.npz"
    args = ["events", str(tmp_path / "in.h5"), "-o", str(out)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1
    assert "/spikes" in refused.output and "--allow-external-data" in refused.output
    assert not out.exists()
    result = CliRunner().invoke(cli, [*args, "--allow-external-data"])
    assert result.exit_code == 0, result.output
    with np.load(out) as npz:
        times = npz["spike_times"]
    assert times.tolist() == pytest.approx([0.001, 0.002, 0.003, 0.004])


def test_external_link_is_not_opened(work: Path) -> None:
    """The refused link's target is never opened: it need not even exist."""
    with _dense_h5(work / "leak.h5") as f:
        f["spikes"] = h5py.ExternalLink("/nonexistent/elsewhere.h5", "/data")
    run = run_cli(["events", "leak.h5"], work)
    assert_refused(run, "external link")


# ----------------------------------------------------------------------------
# Runaway sizes and times


def test_phy_spike_time_of_uint64_max(work: Path) -> None:
    phy_folder(work / "phy", np.array([1, 2**64 - 1], dtype=np.uint64))
    assert_refused(run_cli(["events", "phy", "-o", "out.csv"], work), "spike_times")


@pytest.mark.parametrize("value", ["1e300", "9223372036854775807", "-1e300"])
def test_csv_spike_time_beyond_any_recording(work: Path, value: str) -> None:
    (work / "far.csv").write_text(f"unit,time\n0,0.5\n0,{value}\n")
    assert_refused(run_cli(["events", "far.csv", "-o", "far.h5"], work), "time")


def test_npz_spike_times_of_int64_max(work: Path) -> None:
    events_npz(
        work / "far.npz",
        np.array([1, np.iinfo(np.int64).max], dtype=np.int64),
        np.array([2]),
    )
    assert_refused(run_cli(["events", "far.npz", "-o", "x.csv"], work), "time")


def test_rates_on_spike_time_of_1e300(work: Path) -> None:
    (work / "far.csv").write_text("unit,time\n0,1e300\n")
    run = run_cli(["rates", "kernel", "far.csv", "-o", "far.h5"], work)
    assert_refused(run, "time", outputs=("far.h5",))


# ----------------------------------------------------------------------------
# Memory and CPU blow-ups


def test_dev_zero_as_input(work: Path) -> None:
    assert_refused(run_cli(["events", "/dev/zero"], work))


def test_dev_zero_on_standard_input(work: Path) -> None:
    assert_refused(run_cli(["events", "-"], work, stdin="/dev/zero"))


def test_npz_deflating_a_thousandfold(work: Path) -> None:
    deflate_bomb(work / "bomb.npz", int(2.4e9))
    assert (work / "bomb.npz").stat().st_size < 3_000_000
    run = run_cli(["events", "bomb.npz", "--dataset", "spikes"], work)
    assert_refused(run, "spikes")


def test_npz_ratio_below_the_size_limit(work: Path) -> None:
    """1.5 GB from 1.5 MB: under MAX_ARRAY_BYTES, over the ratio."""
    deflate_bomb(work / "bomb.npz", int(1.5e9))
    run = run_cli(["events", "bomb.npz", "--dataset", "spikes"], work)
    assert_refused(run, "ratio")


@pytest.mark.slow
def test_hdf5_declaring_a_huge_unwritten_matrix(work: Path) -> None:
    with _dense_h5(work / "huge.h5", 2000) as f:
        f.create_dataset("spikes", shape=(2000, 10**7), dtype="f8", chunks=(64, 4096))
    assert (work / "huge.h5").stat().st_size < 100_000
    for command in (["events"], ["rates", "kernel"]):
        run = run_cli([*command, "huge.h5", "-o", "out.h5"], work)
        assert_refused(run, "/spikes", outputs=("out.h5",))


def test_hdf5_declaring_huge_unwritten_spike_times(work: Path) -> None:
    with h5py.File(work / "huge.h5", "w") as f:
        units = f.create_group("units")
        units.create_dataset("spike_times", shape=(10**12,), dtype="f8")
        units["spike_times_index"] = np.array([10**12])
    assert_refused(run_cli(["events", "huge.h5"], work), "/units/spike_times")


@pytest.mark.parametrize("command", [["events"], ["rates", "kernel"]])
def test_hdf5_declaring_unwritten_spike_times_under_the_array_limit(
    work: Path, command: list[str]
) -> None:
    """256 MB of spike times never written, in a 3 kB file: within the
    array limit, but the estimators' copies of it would take gigabytes."""
    with h5py.File(work / "unwritten.h5", "w") as f:
        units = f.create_group("units")
        units.create_dataset("spike_times", shape=(32_000_000,), dtype="f8")
        units["spike_times_index"] = np.array([16_000_000, 32_000_000])
    assert (work / "unwritten.h5").stat().st_size < 10_000
    run = run_cli([*command, "unwritten.h5", "-o", "out.h5"], work)
    assert_refused(run, "/units/spike_times", "stores", outputs=("out.h5",))


def test_hdf5_with_too_many_objects(work: Path) -> None:
    with _dense_h5(work / "many.h5", 10) as f:
        f["spikes"] = np.zeros((10, 1))
        for i in range(300):
            f.create_group(f"g{i}")
    run = run_cli(
        ["events", "many.h5"], work, env={"SPIKERATES_MAX_HDF5_OBJECTS": "200"}
    )
    assert_refused(run, "objects", "SPIKERATES_MAX_HDF5_OBJECTS")


def test_hdf5_nested_too_deep(work: Path) -> None:
    with _dense_h5(work / "deep.h5", 10) as f:
        f["spikes"] = np.zeros((10, 1))
        group = f
        for _ in range(safety.MAX_HDF5_DEPTH + 5):
            group = group.create_group("g")
    assert_refused(run_cli(["events", "deep.h5"], work), "deep")


def test_hdf5_hard_link_cycle_ends(work: Path) -> None:
    with _dense_h5(work / "cycle.h5", 10) as f:
        f["spikes"] = np.zeros((10, 1), dtype=np.int64)
        loop = f.create_group("loop")
        loop["again"] = loop
        loop["root"] = f["/"]
    run = run_cli(["events", "cycle.h5", "-o", "out.csv"], work)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("where", ["npz", "phy"])
def test_npy_header_declaring_1e12_values(work: Path, where: str) -> None:
    header = npy_header((10**12,))
    if where == "npz":
        write_zip(
            work / "x.npz",
            {"spike_times.npy": header, "spike_times_index.npy": npy_bytes(np.ones(1))},
        )
        run = run_cli(["events", "x.npz"], work)
    else:
        phy_folder(work / "phy", np.array([1, 2]))
        (work / "phy" / "spike_times.npy").write_bytes(header)
        run = run_cli(["events", "phy"], work)
    assert_refused(run, "spike_times")


@pytest.mark.slow
def test_csv_header_of_ten_million_commas(work: Path) -> None:
    (work / "wide.csv").write_bytes(b"t" + b"," * 10_000_000 + b"\n0.001\n")
    assert_refused(run_cli(["events", "wide.csv"], work), "header")


@pytest.mark.slow
def test_csv_header_with_too_many_columns(work: Path) -> None:
    header = "t," + ",".join(str(i) for i in range(safety.MAX_COLUMNS + 1))
    (work / "wide.csv").write_text(header + "\n")
    assert_refused(run_cli(["events", "wide.csv"], work), "columns")


@pytest.mark.slow
def test_csv_data_line_longer_than_the_limit(work: Path) -> None:
    (work / "long.csv").write_bytes(b"unit,time\n0," + b"1" * (17 << 20) + b"\n")
    assert_refused(run_cli(["events", "long.csv"], work), "line")


# ----------------------------------------------------------------------------
# Formerly uncaught exceptions


def test_nwb_t_start_attribute_that_is_an_array(work: Path) -> None:
    with h5py.File(work / "bad.nwb", "w") as f:
        units = f.create_group("units")
        units["spike_times"] = np.array([0.1, 0.2])
        units["spike_times_index"] = np.array([2])
        units["id"] = np.array([0])
        units.attrs["t_start"] = np.array([0.0, 1.0])
    assert_refused(run_cli(["events", "bad.nwb"], work), "t_start")


def test_npz_entry_flagged_encrypted(work: Path) -> None:
    encrypted_npz(work / "enc.npz")
    assert_refused(run_cli(["events", "enc.npz"], work), "encrypted")


def test_broken_npy_header_in_npz(work: Path) -> None:
    write_zip(
        work / "x.npz",
        {
            "spike_times.npy": broken_npy_header(),
            "spike_times_index.npy": npy_bytes(np.array([3])),
        },
    )
    assert_refused(run_cli(["events", "x.npz"], work), "header")


def test_broken_npy_header_in_phy(work: Path) -> None:
    phy_folder(work / "phy", np.array([1, 2, 3]))
    (work / "phy" / "spike_times.npy").write_bytes(broken_npy_header())
    assert_refused(run_cli(["events", "phy"], work), "header")


def test_csv_header_field_over_128_kib(work: Path) -> None:
    (work / "x.csv").write_text("unit," + "x" * (200 << 10) + "\n0,1\n")
    assert_refused(run_cli(["events", "x.csv"], work))


def test_csv_quoted_header_field_over_128_kib(work: Path) -> None:
    (work / "x.csv").write_text('t,"' + "7" * (200 << 10) + '"\n0.001,1\n')
    run = run_cli(["events", "x.csv", "-o", "out.npz"], work)
    assert "Traceback" not in run.stderr
    assert run.returncode in (0, 1), run.stderr


PARAMS = {
    "200k terms": "sample_rate = " + "+".join(["1"] * 200_000) + "\n",
    "400-digit integer": "sample_rate = " + "9" * 400 + "\n",
    "1e-300": "sample_rate = 1e-300\n",
    "1e300": "sample_rate = 1e300\n",
    "deep brackets": "sample_rate = " + "[" * 100_000 + "1" + "]" * 100_000 + "\n",
    "a call": "sample_rate = __import__('os').system('touch pwned')\n",
    "unterminated": "sample_rate = '''30000\n",
    "binary": "sample_rate = \x00\x01\n",
}


#: Cases that tokenize hundreds of kilobytes (seconds on a loaded machine).
BIG_PARAMS = {"200k terms", "deep brackets"}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow) if c in BIG_PARAMS else c for c in PARAMS],
)
def test_params_py_is_never_executed_or_recursed(work: Path, case: str) -> None:
    phy_folder(work / "phy", np.array([1, 2, 3]), PARAMS[case])
    run = run_cli(["events", "phy", "-o", "out.csv"], work)
    assert_refused(run, "params.py", outputs=("out.csv",))
    assert not (work / "pwned").exists()


def test_dense_csv_unit_id_beyond_int64(work: Path) -> None:
    (work / "x.csv").write_text("t,0,99999999999999999999\n0.001,1,0\n0.002,0,1\n")
    run = run_cli(["events", "x.csv", "-o", "out.csv"], work)
    assert run.returncode == 0, run.stderr
    assert "99999999999999999999" in (work / "out.csv").read_text()


def _corrupt(path: Path, seed: int) -> None:
    raw = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, 2048, size=64):
        raw[pos] = rng.integers(0, 256)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("seed", range(6))
def test_simulate_with_corrupt_neurons_file(work: Path, seed: int) -> None:
    with h5py.File(work / "corrupt.h5", "w") as f:
        f["gain"] = np.linspace(1, 2, 5)
        f["bias"] = np.linspace(0, 1, 5)
    _corrupt(work / "corrupt.h5", seed)
    run = run_cli(
        ["simulate", "--neurons", "corrupt.h5", "--duration", "0.1", "-o", "s.npz"],
        work,
    )
    if run.returncode == 0:
        # The damage missed everything read; the run is then a normal one.
        assert "Traceback" not in run.stderr
        return
    assert_refused(run, "corrupt.h5", outputs=("s.npz",))


# ----------------------------------------------------------------------------
# Clearer messages


def test_index_of_uint64_max(work: Path) -> None:
    events_npz(
        work / "x.npz",
        np.array([0.1, 0.2]),
        np.array([2**64 - 1], dtype=np.uint64),
    )
    run = run_cli(["events", "x.npz"], work)
    assert_refused(run, "18446744073709551615")
    assert "-1" not in run.stderr


def test_quality_column_of_the_wrong_length(work: Path) -> None:
    with h5py.File(work / "q.nwb", "w") as f:
        units = f.create_group("units")
        units["spike_times"] = np.array([0.1, 0.2, 0.3])
        units["spike_times_index"] = np.array([1, 3])
        units["id"] = np.array([0, 1])
        units.create_dataset(
            "quality", data=np.array(["good"], dtype=object), dtype=h5py.string_dtype()
        )
    run = run_cli(["events", "q.nwb", "-o", "out.csv"], work)
    if run.returncode == 0:
        assert "quality" in run.stderr, "a wrong-length column is never silent"
    else:
        assert_refused(run, "quality", outputs=("out.csv",))


def test_missing_file_is_not_reported_as_permission_denied(work: Path) -> None:
    run = run_cli(["events", "nothere.csv"], work)
    assert_refused(run, "no such file")


def test_unreadable_file_is_permission_denied(work: Path, monkeypatch) -> None:
    """In the process (a test run as root can read any file): the file's
    folder cannot be searched, so stat() fails with EACCES."""
    from click.testing import CliRunner

    from spikerates.cli import cli

    target = str(work / "locked" / "x.csv")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    result = CliRunner().invoke(cli, ["events", target])
    assert result.exit_code == 1, result.output
    assert "permission denied" in result.output.lower()
    assert "no such file" not in result.output.lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_permission_denied_for_real(work: Path) -> None:
    locked = work / "locked"
    locked.mkdir()
    (locked / "x.csv").write_text("unit,time\n0,1\n")
    locked.chmod(0)
    try:
        run = run_cli(["events", "locked/x.csv"], work)
    finally:
        locked.chmod(0o755)
    assert_refused(run, "permission denied")


# ----------------------------------------------------------------------------
# Inputs the coverage-guided fuzzers found (tests/fuzz/findings/<target>/)

FINDINGS = Path(__file__).parent / "fuzz" / "findings"
SUFFIXES = {"npz": [".npz"], "hdf5": [".h5", ".nwb"], "csv": [".csv", ".tsv"]}


def _findings() -> list[Path]:
    return sorted(p for p in FINDINGS.glob("*/*") if p.is_file())


@pytest.mark.parametrize(
    "finding", _findings(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_fuzz_findings_are_fixed(tmp_path: Path, finding: Path) -> None:
    """Each saved finding now reads to data or to one of spikerates' errors."""
    from spikerates import io
    from spikerates.errors import SpikeratesError

    target = finding.parent.name
    data = finding.read_bytes()
    if target == "phy":
        folder = tmp_path / "phy"
        folder.mkdir()
        names = ("spike_times.npy", "spike_clusters.npy", "params.py")
        names += ("cluster_group.tsv", "cluster_KSLabel.tsv")
        for name, part in zip(names, data.split(b"\n--8<--\n"), strict=False):
            (folder / name).write_bytes(part)
        paths = [folder]
    elif target == "params":
        (tmp_path / "params.py").write_bytes(data)
        try:
            safety.parse_params(str(tmp_path / "params.py"))
        except SpikeratesError:
            pass
        return
    else:
        suffixes = SUFFIXES[target]
        paths = []
        for suffix in suffixes:
            path = tmp_path / f"input{suffix}"
            path.write_bytes(data)
            paths.append(path)
    for path in paths:
        for read in (io.read_spikes, io.read_table):
            if read is io.read_table and path.is_dir():
                continue
            try:
                result = read(path)
            except SpikeratesError:
                continue
            close = getattr(result, "close", None)
            if close is not None:
                close()
