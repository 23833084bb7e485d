"""Batch engines, shards, skip-existing and the JSON-lines log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikerates import batch
from spikerates.batch import Item, Record, Result
from spikerates.errors import ParameterError

# ----------------------------------------------------------------------------
# Tasks (module-level so worker processes can unpickle them)


def copy_events(item: Item) -> Result:
    """Read spikes, write them as events: a real input-to-output task.

    ``item.payload`` may ask to fail, to sleep first, or to kill the worker
    process running it (once, or every time).
    """
    from spikerates import io

    options = item.payload or {}
    started = options.get("started")
    if started is not None:
        Path(started, Path(item.input).name).touch()
    if options.get("sleep"):
        time.sleep(options["sleep"])
    marker = options.get("kill_once")
    if marker is not None and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    if options.get("kill_always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if options.get("raise"):
        raise TypeError("a bug in the task")
    trains = io.read_spikes(item.input)
    io.write_events(item.output, trains)
    return Result(units=trains.n_units, spikes=trains.n_spikes)


def write_spikes(path: Path, seed: int, n_units: int = 4) -> str:
    rng = np.random.default_rng(seed)
    lines = ["unit,time"]
    for unit in range(n_units):
        times = np.sort(rng.uniform(0, 2.0, rng.integers(5, 40)))
        lines += [f"{unit},{t:.6f}" for t in times]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def make_items(tmp_path: Path, n: int, out: str = "out", **payloads) -> list[Item]:
    """``n`` inputs and their outputs; ``payloads`` maps index -> payload."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / out).mkdir(exist_ok=True)
    items = []
    for index in range(n):
        source = write_spikes(tmp_path / "in" / f"s{index:02d}.csv", index)
        target = str(tmp_path / out / f"s{index:02d}.npz")
        items.append(Item(source, target, payload=payloads.get(f"p{index}")))
    return items


def npz_content(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_same_content(a: str, b: str) -> None:
    left, right = npz_content(a), npz_content(b)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)


def by_input(summary: batch.Summary) -> dict[str, Record]:
    return {Path(r.input).name: r for r in summary.records}


# ----------------------------------------------------------------------------
# The record of one task


def test_execute_turns_an_unexpected_exception_into_one_named_line(tmp_path):
    (item,) = make_items(tmp_path, 1, p0={"raise": True})
    record = batch.execute(copy_events, item)
    assert record.status == "failed"
    assert record.error == f"{item.input}: TypeError: a bug in the task"
    assert record.internal
    assert "\n" not in record.error
    assert "Traceback" in record.trace and "copy_events" in record.trace
    assert not os.path.exists(item.output)


def test_execute_reports_counts_from_the_file(tmp_path):
    (item,) = make_items(tmp_path, 1)
    record = batch.execute(copy_events, item)
    expected = np.loadtxt(item.input, delimiter=",", skiprows=1)
    assert record.status == "ok" and record.error is None
    assert record.spikes == len(expected)
    assert record.units == len(np.unique(expected[:, 0]))
    assert record.seconds > 0


def test_a_task_error_it_handled_is_a_failure():
    record = batch.execute(lambda item: Result(error="x.h5: bad"), Item("x.h5"))
    assert record.failed and record.error == "x.h5: bad"


# ----------------------------------------------------------------------------
# Local engine


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_batch_gives_every_input_its_own_verdict(tmp_path, jobs):
    items = make_items(tmp_path, 5, p2={"raise": True})
    summary = batch.run_batch(copy_events, items, jobs=jobs)
    records = by_input(summary)
    assert len(summary.records) == 5
    assert records["s02.csv"].status == "failed"
    assert records["s02.csv"].error.startswith(items[2].input + ": ")
    assert summary.count("ok") == 4 and summary.exit_status == 1
    for index, item in enumerate(items):
        assert os.path.exists(item.output) == (index != 2)


def test_local_pool_output_matches_in_process_run(tmp_path):
    serial = make_items(tmp_path, 4, out="serial")
    pooled = [Item(i.input, i.output.replace("serial", "pooled")) for i in serial]
    (tmp_path / "pooled").mkdir()
    assert batch.run_batch(copy_events, serial, jobs=1).exit_status == 0
    assert batch.run_batch(copy_events, pooled, jobs=2).exit_status == 0
    for a, b in zip(serial, pooled, strict=True):
        assert_same_content(a.output, b.output)


@pytest.mark.slow
def test_local_pool_under_spawn(tmp_path):
    items = make_items(tmp_path, 3, p1={"raise": True})
    engine = batch.LocalEngine(2, start_method="spawn")
    summary = batch.run_batch(copy_events, items, engine=engine)
    assert [by_input(summary)[f"s{i:02d}.csv"].status for i in range(3)] == [
        "ok",
        "failed",
        "ok",
    ]


def test_local_worker_killed_once_is_retried(tmp_path):
    marker = str(tmp_path / "killed")
    items = make_items(tmp_path, 4, p1={"kill_once": marker})
    summary = batch.run_batch(copy_events, items, jobs=2, retries=1)
    assert os.path.exists(marker)  # the worker did die
    assert summary.count("ok") == 4, [r.error for r in summary.records]
    assert all(os.path.exists(item.output) for item in items)


def test_local_worker_killed_every_time_is_reported(tmp_path):
    items = make_items(tmp_path, 3, p0={"kill_always": True})
    summary = batch.run_batch(copy_events, items, jobs=2, retries=1)
    records = by_input(summary)
    assert records["s00.csv"].status == "failed"
    assert records["s00.csv"].error.startswith(items[0].input + ": the worker")
    # Others sharing the broken pool are retried and end well.
    assert records["s01.csv"].status == "ok" and records["s02.csv"].status == "ok"
    assert len(summary.records) == 3


# ----------------------------------------------------------------------------
# Skipping, the log, interrupts inside this process


def test_skip_existing_leaves_outputs_untouched(tmp_path):
    items = make_items(tmp_path, 3)
    batch.run_batch(copy_events, items)
    old = {item.output: os.stat(item.output).st_mtime_ns for item in items}
    # A newer input must be recomputed, the others not.
    later = time.time() + 5
    os.utime(items[1].input, (later, later))
    calls = []

    def task(item):
        calls.append(item.input)
        return copy_events(item)

    summary = batch.run_batch(task, items, skip_existing=True)
    assert calls == [items[1].input]
    assert by_input(summary)["s00.csv"].status == "skipped"
    assert os.stat(items[0].output).st_mtime_ns == old[items[0].output]
    assert os.stat(items[2].output).st_mtime_ns == old[items[2].output]
    assert os.stat(items[1].output).st_mtime_ns != old[items[1].output]


def test_up_to_date_rules(tmp_path):
    source = tmp_path / "a.csv"
    target = tmp_path / "a.npz"
    source.write_text("x")
    assert not batch.up_to_date(source, target)  # missing
    target.write_text("y")
    os.utime(source, ns=(10**18, 10**18))
    os.utime(target, ns=(10**18, 10**18))
    assert not batch.up_to_date(source, target)  # same time is not newer
    os.utime(target, ns=(10**18 + 1, 10**18 + 1))
    assert batch.up_to_date(source, target)
    assert not batch.up_to_date(source, [target, tmp_path / "fig.png"])
    assert not batch.up_to_date("-", target)
    assert not batch.up_to_date(source, "-")
    # A folder input is as new as its newest file.
    folder = tmp_path / "phy"
    folder.mkdir()
    (folder / "spike_times.npy").write_text("z")
    os.utime(folder, ns=(1, 1))
    os.utime(folder / "spike_times.npy", ns=(10**18 + 2, 10**18 + 2))
    assert not batch.up_to_date(folder, target)


def test_log_has_one_line_per_input(tmp_path):
    items = make_items(tmp_path, 3, p1={"raise": True})
    log = tmp_path / "run.jsonl"
    log.write_text(json.dumps({"input": "earlier"}) + "\n")
    batch.run_batch(copy_events, items, log=log, jobs=2)
    batch.run_batch(copy_events, items, log=log, skip_existing=True)
    entries = batch.read_log(log)
    assert entries[0] == {"input": "earlier"}
    first, second = entries[1:4], entries[4:]
    assert sorted(e["input"] for e in first) == [i.input for i in items]
    assert {e["input"]: e["status"] for e in first}[items[1].input] == "failed"
    failed = next(e for e in first if e["status"] == "failed")
    assert failed["error"].startswith(items[1].input + ": TypeError")
    ok = next(e for e in first if e["input"] == items[0].input)
    assert ok["output"] == items[0].output
    assert ok["spikes"] == len(np.loadtxt(items[0].input, delimiter=",", skiprows=1))
    assert ok["units"] == 4 and ok["seconds"] > 0
    assert {
        "input",
        "output",
        "status",
        "seconds",
        "units",
        "spikes",
        "error",
        "time",
    } <= set(ok)
    assert {e["input"]: e["status"] for e in second} == {
        items[0].input: "skipped",
        items[1].input: "failed",
        items[2].input: "skipped",
    }


def test_log_lines_from_concurrent_writers_do_not_tear(tmp_path):
    path = tmp_path / "shared.jsonl"
    logs = [batch.JsonLog(path) for _ in range(4)]
    big = "x" * 70000  # larger than a pipe buffer, written in one go

    def writer(log, k):
        for i in range(25):
            log.write({"input": f"{k}-{i}", "error": big})

    threads = [
        threading.Thread(target=writer, args=(log, k)) for k, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    entries = batch.read_log(path)
    assert len(entries) == 100
    assert all(e["error"] == big for e in entries)


def test_log_that_cannot_be_opened_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match=r"--log: cannot append to .*nope"):
        batch.run_batch(copy_events, [], log=tmp_path / "nope" / "x.jsonl")


def test_interrupt_records_the_rest_as_cancelled(tmp_path):
    items = make_items(tmp_path, 4)
    seen = []

    def on_record(record):
        seen.append(record)
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(copy_events, items, on_record=on_record)
    assert [r.status for r in seen] == ["ok", "cancelled", "cancelled", "cancelled"]
    assert [os.path.exists(i.output) for i in items] == [True, False, False, False]


# ----------------------------------------------------------------------------
# Engines and their parameters


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "spark"}, r"--engine: must be one of local, dask, got 'spark'"),
        ({"jobs": 0}, r"--jobs: must be an integer >= 1, got 0"),
        ({"scheduler": "tcp://x:1"}, r"--scheduler: needs --engine dask"),
        ({"retries": -1}, r"retries: must be an integer >= 0"),
    ],
)
def test_bad_engine_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        batch.run_batch(copy_events, [], **kwargs)


def test_dask_engine_without_distributed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ParameterError) as info:
        batch.make_engine("dask")
    assert "pip install 'spikerates[dask]'" in str(info.value)
    assert str(info.value).startswith("--engine: ")


def test_unreachable_scheduler_is_a_parameter_error(tmp_path):
    pytest.importorskip("distributed")
    engine = batch.DaskEngine("tcp://127.0.0.1:9", connect_timeout=0.5)
    with pytest.raises(ParameterError, match=r"--scheduler: cannot connect .*127\.0"):
        batch.run_batch(copy_events, make_items(tmp_path, 1), engine=engine)


# ----------------------------------------------------------------------------
# Shards


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("1/1", (0, 1)), ("3/4", (2, 4)), (" 4/4 ", (3, 4))],
)
def test_parse_shard(spec, expected):
    assert batch.parse_shard(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("0/4", r"I must be between 1 and N=4"),
        ("5/4", r"I must be between 1 and N=4"),
        ("1/0", r"N must be >= 1"),
        ("a/b", r"must be I/N \(e\.g\. 2/10\) or 'slurm'"),
        ("3", r"must be I/N"),
    ],
)
def test_bad_shard(spec, match):
    with pytest.raises(ParameterError, match=r"^--shard: " + match):
        batch.parse_shard(spec)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "5"}, (0, 5)),
        (
            {
                "SLURM_ARRAY_TASK_ID": "7",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "10",
            },
            (6, 10),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "7",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "9",
                "SLURM_ARRAY_TASK_STEP": "2",
                "SLURM_ARRAY_TASK_COUNT": "5",
            },
            (3, 5),
        ),
    ],
)
def test_slurm_shard(environ, expected):
    assert batch.parse_shard("slurm", environ) == expected


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({}, r"SLURM_ARRAY_TASK_ID is not set"),
        ({"SLURM_ARRAY_TASK_ID": "3"}, r"array size is unknown"),
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "not an integer"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "9",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "3",
            },
            r"task 9 is not one of the 4 tasks",
        ),
    ],
)
def test_bad_slurm_environment(environ, match):
    with pytest.raises(ParameterError, match=match):
        batch.parse_shard("slurm", environ)


@settings(max_examples=100, deadline=None)
@given(
    names=st.lists(st.text("abc/._-0123456789", min_size=1, max_size=8), unique=True),
    count=st.integers(1, 12),
    seed=st.randoms(),
)
def test_shards_partition_the_inputs(names, count, seed):
    shuffled = list(names)
    seed.shuffle(shuffled)
    slices = [batch.shard(shuffled, f"{i}/{count}") for i in range(1, count + 1)]
    flat = [name for part in slices for name in part]
    assert sorted(flat) == sorted(names)  # union is everything, no overlap
    assert flat == sorted(names)  # contiguous slices of the sorted list
    sizes = [len(part) for part in slices]
    assert max(sizes) - min(sizes) <= 1
    # The order the inputs came in does not matter.
    assert slices == [batch.shard(names, f"{i}/{count}") for i in range(1, count + 1)]


def test_shard_by_key_and_slurm():
    jobs = [{"source": name} for name in ["c", "a", "d", "b"]]
    environ = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    part = batch.shard(jobs, "slurm", key=lambda j: j["source"], environ=environ)
    assert [j["source"] for j in part] == ["c", "d"]


# ----------------------------------------------------------------------------
# Interrupting a batch running in another process

RUNNER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from spikerates import batch
    from test_batch import copy_events
    from spikerates.batch import Item

    items = [Item(src, out, payload={{"sleep": 0.5, "started": {started!r}}})
             for src, out in {pairs!r}]
    print("running", flush=True)
    batch.run_batch(copy_events, items, engine={engine!r}, jobs=2, log={log!r})
    """
)


def start_batch(tmp_path, engine: str, n: int = 6):
    items = make_items(tmp_path, n)
    started = tmp_path / "started"
    started.mkdir()
    # Every output exists already: an interrupted batch must not replace one.
    for item in items:
        Path(item.output).write_bytes(b"previous")
    script = RUNNER.format(
        tests=str(Path(__file__).parent),
        started=str(started),
        pairs=[(i.input, i.output) for i in items],
        engine=engine,
        log=str(tmp_path / "log.jsonl"),
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "running"
    return process, items, started


def wait_for_start(started: Path, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(started.iterdir()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_signal_stops_a_local_batch_and_keeps_previous_outputs(tmp_path, signum):
    process, items, started = start_batch(tmp_path, "local")
    wait_for_start(started, process)
    # The first two tasks are sleeping, four are waiting.
    time.sleep(0.2)
    process.send_signal(signum)
    process.communicate(timeout=30)
    assert process.returncode != 0
    check_interrupted(tmp_path, items, started)


def check_interrupted(tmp_path, items, started) -> None:
    time.sleep(1.5)  # anything that would still run has had time to finish
    began = {p.name for p in started.iterdir()}
    entries = batch.read_log(tmp_path / "log.jsonl")
    assert len(entries) == len(items)
    status = {Path(e["input"]).name: e["status"] for e in entries}
    for item in items:
        name = Path(item.input).name
        content = Path(item.output).read_bytes()
        if name not in began:
            # Never started: cancelled, and the previous output is intact.
            assert status[name] == "cancelled"
            assert content == b"previous"
        elif content != b"previous":
            # A task that got to commit wrote a whole output.
            assert content[:4] == b"PK\x03\x04"
            assert npz_content(item.output)
    assert len(began) < len(items)
    leftovers = [p.name for p in Path(items[0].output).parent.iterdir()]
    assert all(".tmp" not in name for name in leftovers), leftovers


# ----------------------------------------------------------------------------
# Dask: a LocalCluster of two worker processes on 127.0.0.1


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    import logging

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # no fixed port to collide on
        silence_logs=logging.CRITICAL,
    )
    try:
        yield cluster
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def dask_engine(cluster) -> batch.DaskEngine:
    return batch.DaskEngine(cluster.scheduler_address)


@pytest.mark.slow
def test_dask_outputs_match_the_local_engine(tmp_path, dask_cluster):
    local = make_items(tmp_path, 5, out="local")
    remote = [Item(i.input, i.output.replace("local", "dask")) for i in local]
    (tmp_path / "dask").mkdir()
    assert batch.run_batch(copy_events, local, jobs=1).exit_status == 0
    summary = batch.run_batch(copy_events, remote, engine=dask_engine(dask_cluster))
    assert summary.count("ok") == 5
    for a, b in zip(local, remote, strict=True):
        assert_same_content(a.output, b.output)
    assert {r.input: r.spikes for r in summary.records} == {
        i.input: len(np.loadtxt(i.input, delimiter=",", skiprows=1)) for i in local
    }


@pytest.mark.slow
def test_dask_bad_input_among_good_ones(tmp_path, dask_cluster):
    items = make_items(tmp_path, 4, p1={"raise": True})
    Path(items[3].input).write_text("unit,time\n0,not-a-number\n")
    summary = batch.run_batch(copy_events, items, engine=dask_engine(dask_cluster))
    records = by_input(summary)
    assert summary.exit_status == 1 and len(summary.records) == 4
    assert records["s01.csv"].error.startswith(items[1].input + ": TypeError")
    assert items[3].input in records["s03.csv"].error
    assert [os.path.exists(i.output) for i in items] == [True, False, True, False]


@pytest.mark.slow
def test_dask_worker_killed_mid_task_is_retried(tmp_path, dask_cluster):
    marker = str(tmp_path / "killed")
    items = make_items(tmp_path, 4, p1={"kill_once": marker})
    summary = batch.run_batch(copy_events, items, engine=dask_engine(dask_cluster))
    assert os.path.exists(marker)  # a worker did die running s01
    assert summary.count("ok") == 4, [r.error for r in summary.records]
    assert all(os.path.exists(i.output) for i in items)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="passes alone and with the batch tests; after collecting every test "
    "module the killing task has been seen to come back ok (cause not found)",
)
def test_dask_task_that_kills_every_worker_is_reported(tmp_path, dask_cluster):
    items = make_items(tmp_path, 3, p1={"kill_always": True})
    summary = batch.run_batch(copy_events, items, engine=dask_engine(dask_cluster))
    records = by_input(summary)
    assert len(summary.records) == 3
    assert records["s01.csv"].status == "failed"
    assert records["s01.csv"].error.startswith(items[1].input + ": the Dask worker")
    assert records["s00.csv"].status == records["s02.csv"].status == "ok"
    assert [os.path.exists(i.output) for i in items] == [True, False, True]


@pytest.mark.slow
def test_dask_skip_existing_recomputes_nothing(tmp_path, dask_cluster):
    items = make_items(tmp_path, 3)
    engine = dask_engine(dask_cluster)
    batch.run_batch(copy_events, items, engine=engine)
    old = [os.stat(i.output).st_mtime_ns for i in items]
    again = [Item(i.input, i.output, payload={"raise": True}) for i in items]
    summary = batch.run_batch(copy_events, again, engine=engine, skip_existing=True)
    assert [r.status for r in summary.records] == ["skipped"] * 3
    assert [os.stat(i.output).st_mtime_ns for i in items] == old


def touch_output(item: Item) -> Result:
    """A task with nothing to import: writes its input's name."""
    Path(item.output).write_text(item.input)
    return Result(units=1, spikes=len(item.input))


def test_dask_local_cluster_smoke(tmp_path):
    """The engine's own LocalCluster on 127.0.0.1 starts, runs and shuts down."""
    pytest.importorskip("distributed")
    items = [Item(f"in{i}", str(tmp_path / f"out{i}")) for i in range(3)]
    summary = batch.run_batch(touch_output, items, engine="dask", jobs=1)
    assert sorted(r.input for r in summary.records) == ["in0", "in1", "in2"]
    assert summary.count("ok") == 3
    assert [Path(i.output).read_text() for i in items] == ["in0", "in1", "in2"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_dask_batch_and_keeps_previous_outputs(tmp_path, signum):
    process, items, started = start_batch(tmp_path, "dask")
    wait_for_start(started, process)
    time.sleep(0.2)
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert process.returncode != 0
    check_interrupted(tmp_path, items, started)
