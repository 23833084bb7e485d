"""Batches on the command line: engines, shards, skip-existing, log, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


def write_inputs(files, folder: Path, n: int, *, n_units: int = 5) -> list[str]:
    """``n`` events NPZ files of seeded spikes (independent of spikerates.io)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n):
        rng = np.random.default_rng(100 + index)
        times = [
            np.sort(rng.uniform(0, 2.0, rng.integers(3, 30))) for _ in range(n_units)
        ]
        path = folder / f"rec{index}.npz"
        paths.append(files.write_events_npz(path, times, np.arange(n_units)))
    return paths


def log_entries(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def by_name(entries) -> dict[str, dict]:
    return {Path(e["input"]).name: e for e in entries}


def npz_arrays(path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def assert_same_npz(a, b) -> None:
    left, right = npz_arrays(a), npz_arrays(b)
    assert sorted(left) == sorted(right)
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


# -q: the note that the window ends after the last spike is not checked here
KERNEL = ["-q", "rates", "kernel", "--t-start", "0", "--t-stop", "2", "--dt", "0.01"]


# ----------------------------------------------------------------------------
# Verdicts and the log


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_bad_input_among_good_ones(cli, files, tmp_path, jobs):
    paths = write_inputs(files, tmp_path / "in", 3)
    bad = tmp_path / "in" / "broken.npz"
    bad.write_bytes(b"not a zip file")
    log = tmp_path / "run.jsonl"
    # -q: no notes (about the window), so that the error is the only line
    args = ["-q", *KERNEL, paths[0], bad, *paths[1:], "-o", tmp_path / "out"]
    result = cli.run([*args, "--jobs", jobs, "--log", log])
    cli.assert_one_line_error(result, str(bad))
    assert cli.entries(tmp_path / "out") == ["rec0.npz", "rec1.npz", "rec2.npz"]
    entries = by_name(log_entries(log))
    assert entries["broken.npz"]["status"] == "failed"
    assert str(bad) in entries["broken.npz"]["error"]
    for name in ("rec0.npz", "rec1.npz", "rec2.npz"):
        assert entries[name]["status"] == "ok" and entries[name]["error"] is None


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_unexpected_exception_is_one_named_line(
    cli, files, tmp_path, monkeypatch, jobs
):
    """A bug hit by one input: that input's line names it, the rest are written."""
    from spikerates import io

    real = io.read_spikes

    def read_spikes(path, *args, **kwargs):
        if os.fspath(path).endswith("rec1.npz"):
            raise TypeError("something spikerates did not expect")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(io, "read_spikes", read_spikes)
    paths = write_inputs(files, tmp_path / "in", 3)
    result = cli.run(["-q", *KERNEL, *paths, "-o", tmp_path / "out", "--jobs", jobs])
    assert result.exit_code == 1
    lines = cli.error_lines(result)
    assert lines == [
        f"spikerates: internal error: {paths[1]}: TypeError: something spikerates "
        "did not expect (rerun with -v for the traceback)"
    ]
    assert cli.entries(tmp_path / "out") == ["rec0.npz", "rec2.npz"]


def test_log_fields(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 2, n_units=4)
    log = tmp_path / "run.jsonl"
    log.write_text('{"input": "from an earlier run"}\n')
    assert (
        cli.run(["events", *paths, "-o", tmp_path / "out", "--log", log]).exit_code == 0
    )
    first, *entries = log_entries(log)
    assert first == {"input": "from an earlier run"}
    assert [e["input"] for e in entries] == paths
    for entry, path in zip(entries, paths, strict=True):
        with np.load(path) as data:
            n_spikes = data["spike_times"].size
        assert entry["output"] == str(tmp_path / "out" / Path(path).name)
        assert entry["status"] == "ok" and entry["error"] is None
        assert entry["units"] == 4 and entry["spikes"] == n_spikes
        assert entry["seconds"] > 0 and entry["time"].endswith("+00:00")


def test_log_that_cannot_be_written_is_a_usage_error(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 2)
    log = tmp_path / "missing" / "run.jsonl"
    result = cli.run(["events", *paths, "-o", tmp_path / "out", "--log", log])
    cli.assert_usage_error(result, "--log", "cannot append to", str(log))
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Skip-existing and shards


def test_skip_existing_leaves_outputs_untouched(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 3)
    out = tmp_path / "out"
    assert cli.run([*KERNEL, *paths, "-o", out]).exit_code == 0
    outputs = sorted(out.iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in outputs}
    # One input changed since: only that one is recomputed.
    later = time.time() + 10
    os.utime(paths[2], (later, later))
    log = tmp_path / "run.jsonl"
    # without -q: the skipped inputs are a note
    args = [*KERNEL[1:], *paths, "-o", out, "--skip-existing", "--log", log]
    result = cli.run(args)
    assert result.exit_code == 0, result.stderr
    assert "2 of 3 inputs skipped" in result.stderr
    status = {name: e["status"] for name, e in by_name(log_entries(log)).items()}
    assert status == {"rec0.npz": "skipped", "rec1.npz": "skipped", "rec2.npz": "ok"}
    after = {p.name: p.stat().st_mtime_ns for p in sorted(out.iterdir())}
    assert after["rec0.npz"] == before["rec0.npz"]
    assert after["rec1.npz"] == before["rec1.npz"]
    assert after["rec2.npz"] != before["rec2.npz"]


def test_skip_existing_needs_the_figure_too(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 2)
    out = tmp_path / "out"
    assert cli.run(["events", *paths, "-o", out]).exit_code == 0
    log = tmp_path / "run.jsonl"
    args = ["events", *paths, "-o", out, "--plot", tmp_path / "r.png"]
    assert cli.run([*args, "--skip-existing", "--log", log]).exit_code == 0
    assert [e["status"] for e in log_entries(log)] == ["ok", "ok"]
    assert (tmp_path / "r-rec0.png").exists() and (tmp_path / "r-rec1.png").exists()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_partition_the_inputs(cli, files, tmp_path, count):
    paths = write_inputs(files, tmp_path / "in", 5)
    out = tmp_path / "out"
    seen: list[str] = []
    for index in range(1, count + 1):
        log = tmp_path / f"shard{index}.jsonl"
        # the inputs in another order: the slices come from the sorted list
        args = ["events", *reversed(paths), "-o", out, "--shard", f"{index}/{count}"]
        result = cli.run([*args, "--log", log])
        assert result.exit_code == 0, result.stderr
        seen += [e["input"] for e in log_entries(log)] if log.exists() else []
    assert sorted(seen) == sorted(paths)  # union is everything, no overlap
    assert cli.entries(out) == sorted(Path(p).name for p in paths)


def test_shard_slurm_reads_the_array_task(cli, files, tmp_path, monkeypatch):
    paths = write_inputs(files, tmp_path / "in", 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "3")
    result = cli.run(["events", *paths, "-o", tmp_path / "out", "--shard", "slurm"])
    assert result.exit_code == 0, result.stderr
    assert cli.entries(tmp_path / "out") == ["rec2.npz", "rec3.npz"]


@pytest.mark.parametrize(
    ("shard", "fragments"),
    [
        ("slurm", ["--shard", "SLURM_ARRAY_TASK_ID is not set"]),
        ("0/3", ["--shard", "I must be between 1 and N=3"]),
        ("half", ["--shard", "must be I/N"]),
    ],
)
def test_bad_shard(cli, files, tmp_path, monkeypatch, shard, fragments):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    paths = write_inputs(files, tmp_path / "in", 2)
    result = cli.run(["events", *paths, "-o", tmp_path / "out", "--shard", shard])
    cli.assert_usage_error(result, *fragments)


def test_empty_shard_is_a_note(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 2)
    # 2 inputs in 3 slices: the sizes are 0, 1, 1
    result = cli.run(["events", *paths, "-o", tmp_path / "out", "--shard", "1/3"])
    assert result.exit_code == 0
    assert result.stderr.strip() == "spikerates: note: shard 1/3 has no inputs"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Engines


def test_dask_without_distributed_says_how_to_install(
    cli, files, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "distributed", None)
    paths = write_inputs(files, tmp_path / "in", 2)
    result = cli.run(["events", *paths, "-o", tmp_path / "out", "--engine", "dask"])
    cli.assert_usage_error(result, "pip install 'spikerates[dask]'")


def test_scheduler_needs_the_dask_engine(cli, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 2)
    args = ["events", *paths, "-o", tmp_path / "out", "--engine", "local"]
    result = cli.run([*args, "--scheduler", "tcp://127.0.0.1:9"])
    cli.assert_usage_error(result, "--scheduler", "needs --engine dask")


def test_dask_cannot_use_standard_streams(cli, files, tmp_path):
    (path,) = write_inputs(files, tmp_path / "in", 1)
    result = cli.run(["events", path, "--engine", "dask"])
    cli.assert_usage_error(result, "standard output")


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster of two worker processes on 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [KERNEL, ["rates", "isi", "--dt", "0.01"], ["events"]]
)
def test_dask_outputs_equal_the_local_ones(cli, files, tmp_path, scheduler, command):
    paths = write_inputs(files, tmp_path / "in", 4)
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert cli.run([*command, *paths, "-o", local, "--jobs", "1"]).exit_code == 0
    result = cli.run([*command, *paths, "-o", remote, "--scheduler", scheduler])
    assert result.exit_code == 0, result.stderr
    assert (
        cli.entries(local) == cli.entries(remote) == [f"rec{i}.npz" for i in range(4)]
    )
    for name in cli.entries(local):
        assert_same_npz(local / name, remote / name)


@pytest.mark.slow
def test_dask_bad_input_and_relative_paths(
    cli, files, tmp_path, scheduler, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write_inputs(files, tmp_path / "in", 3)
    Path("in/rec1.npz").write_bytes(b"garbage")
    args = ["events", "in/rec0.npz", "in/rec1.npz", "in/rec2.npz", "-o", "out"]
    result = cli.run([*args, "--scheduler", scheduler, "--log", "run.jsonl"])
    # the message names the input as given, though the worker got its full path
    line = cli.assert_one_line_error(result, "in/rec1.npz")
    assert str(tmp_path) not in line
    assert cli.entries("out") == ["rec0.npz", "rec2.npz"]
    status = {e["input"]: e["status"] for e in log_entries("run.jsonl")}
    assert status == {"in/rec0.npz": "ok", "in/rec1.npz": "failed", "in/rec2.npz": "ok"}


@pytest.mark.slow
def test_dask_local_cluster_from_the_command_line(script, files, tmp_path):
    paths = write_inputs(files, tmp_path / "in", 3)
    log = tmp_path / "run.jsonl"
    result = script.run(
        "-q",
        *KERNEL,
        *paths,
        "-o",
        tmp_path / "out",
        "--engine",
        "dask",
        "--jobs",
        "2",
        "--log",
        log,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert [e["status"] for e in log_entries(log)] == ["ok"] * 3
    assert len(os.listdir(tmp_path / "out")) == 3


# ----------------------------------------------------------------------------
# Interrupts: Ctrl-C stops a batch at once


@pytest.fixture
def proc_fs():
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    yield
    while KEEP_OPEN:
        os.close(KEEP_OPEN.pop())


def start_blocked_batch(script, tmp_path, extra: list[str], *, group: bool):
    """Four inputs that are named pipes: a task that reads one blocks until
    it is stopped (this process holds the pipes open and never writes).
    Every output exists already."""
    folder = tmp_path / "in"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    fifos = []
    for index in range(4):
        path = folder / f"p{index}.csv"
        os.mkfifo(path)
        fifos.append(path)
        KEEP_OPEN.append(os.open(path, os.O_RDWR))
        (out / f"p{index}.npz").write_bytes(b"previous")
    log = tmp_path / "run.jsonl"
    process = subprocess.Popen(
        [
            *script.command,
            "events",
            *map(str, fifos),
            "-o",
            str(out),
            *extra,
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=group,
    )
    return process, fifos, out, log


#: Descriptors this process holds on the pipes while a test runs.
KEEP_OPEN: list[int] = []


def readers(fifo: Path) -> bool:
    """Whether another process has ``fifo`` open now (from /proc: opening
    the pipe to find out would disturb the reader)."""
    target = str(fifo)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        if target in links:
            return True
    return False


def count_readers(fifos) -> int:
    return sum(readers(fifo) for fifo in fifos)


def wait_until(condition, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def check_stopped(process, fifos, out, log, signum) -> None:
    _, err = process.communicate(timeout=30)
    err = err.decode()
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert err.splitlines()[-1].startswith(f"spikerates: interrupted by {name}; ")
    assert err.splitlines()[-1].endswith("4 of 4 inputs not processed")
    # Nobody reads the pipes any more: no task runs on, none started later.
    time.sleep(1.0)
    assert not any(readers(fifo) for fifo in fifos)
    assert sorted(os.listdir(out)) == [f"p{i}.npz" for i in range(4)]  # no temp files
    assert all((out / f"p{i}.npz").read_bytes() == b"previous" for i in range(4))
    entries = log_entries(log)
    assert sorted(Path(e["input"]).name for e in entries) == [
        f"p{i}.csv" for i in range(4)
    ]
    assert {e["status"] for e in entries} == {"cancelled"}


@pytest.mark.parametrize("group", [False, True], ids=["parent", "process group"])
def test_ctrl_c_stops_a_local_batch_at_once(script, tmp_path, group, proc_fs):
    process, fifos, out, log = start_blocked_batch(
        script, tmp_path, ["--jobs", "2"], group=group
    )
    # two tasks are blocked in their pipes, two are waiting
    wait_until(lambda: count_readers(fifos) == 2, process)
    if group:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        process.send_signal(signal.SIGINT)
    check_stopped(process, fifos, out, log, signal.SIGINT)


@pytest.mark.slow
def test_sigterm_stops_a_local_batch(script, tmp_path, proc_fs):
    process, fifos, out, log = start_blocked_batch(
        script, tmp_path, ["--jobs", "2"], group=False
    )
    wait_until(lambda: count_readers(fifos) == 2, process)
    process.send_signal(signal.SIGTERM)
    check_stopped(process, fifos, out, log, signal.SIGTERM)


@pytest.mark.slow
def test_ctrl_c_stops_a_dask_batch(script, tmp_path, proc_fs):
    process, fifos, out, log = start_blocked_batch(
        script, tmp_path, ["--engine", "dask", "--jobs", "2"], group=False
    )
    wait_until(lambda: count_readers(fifos) == 2, process, timeout=120)
    process.send_signal(signal.SIGINT)
    check_stopped(process, fifos, out, log, signal.SIGINT)
