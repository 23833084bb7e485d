"""Tests of spikerates.threads: one owner of the thread count.

Oracle: threadpoolctl's report of the thread pools' sizes, read inside the
process (or the pool worker) concerned.
"""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from spikerates import threads
from spikerates.errors import ParameterError


@pytest.fixture(autouse=True)
def restore_state(monkeypatch):
    """Each test starts unconfigured and leaves pools and environment as found."""
    for var in threads.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_threads", None)
    monkeypatch.setattr(threads, "_total", None)
    monkeypatch.setattr(threads, "_jobs", 1)
    monkeypatch.setattr(threads, "_origin", "default")
    np.ones(2) @ np.ones(2)  # BLAS is loaded before its pools are recorded
    original = threadpool_limits(limits=None)
    yield
    original.restore_original_limits()


def blas_sizes() -> list[int]:
    np.ones(2) @ np.ones(2)  # BLAS is loaded
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def report_in_worker(_=None) -> dict:
    """What a pool worker sees: its own count, its BLAS pools, its environment."""
    return {
        "get": threads.get(),
        "blas": blas_sizes(),
        "env": {var: os.environ.get(var) for var in threads.ENV_VARS},
        "pid": os.getpid(),
    }


def test_default_is_the_cpu_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    assert threads.available() == 3
    assert threads.get() == 3
    assert threads.configure() == 3
    assert "3 CPUs available" in threads.describe()


def test_without_affinity_masks_the_cpu_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert threads.available() == 7


@pytest.mark.parametrize(
    "n_threads, jobs, expected", [(1, 1, 1), (2, 1, 2), (2, 2, 1), (5, 2, 2), (1, 4, 1)]
)
def test_configure_shares_threads_between_jobs(n_threads, jobs, expected):
    assert threads.configure(n_threads, jobs) == expected
    assert threads.get() == expected
    assert threads.fft_workers() == expected
    assert set(blas_sizes()) == {expected}
    assert {os.environ[var] for var in threads.ENV_VARS} == {str(expected)}


def test_describe_names_the_choice():
    threads.configure(4, 2)
    line = threads.describe()
    assert line.startswith("threads: 4 (requested")
    assert "2 processes: 2 each" in line
    threads.configure(1)
    assert threads.describe().startswith("threads: 1 (requested")


def test_limited_restores_the_pools():
    threads.configure(2)
    with threads.limited(1) as n:
        assert n == 1
        assert set(blas_sizes()) == {1}
    assert set(blas_sizes()) == {2}
    with threads.limited() as n:
        assert n == 2


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"threads": 0}, "threads"),
        ({"threads": -2}, "threads"),
        ({"threads": 1.5}, "threads"),
        ({"threads": True}, "threads"),
        ({"threads": "2"}, "threads"),
        ({"threads": 2, "jobs": 0}, "jobs"),
        ({"jobs": None}, "jobs"),
    ],
)
def test_bad_counts_raise_naming_them(kwargs, name):
    with pytest.raises(ParameterError, match=f"^{name}: "):
        threads.configure(**kwargs)


def test_numpy_integers_are_accepted():
    assert threads.configure(np.int64(2), np.int32(2)) == 1


@pytest.mark.parametrize("total, jobs, per_worker", [(2, 2, 1), (4, 2, 2), (3, 2, 1)])
def test_pool_workers_do_not_oversubscribe(total, jobs, per_worker):
    threads.configure(total, jobs)
    with threads.process_pool(jobs) as pool:
        # enough tasks that every worker starts and reports
        reports = list(pool.map(report_in_worker, range(4 * jobs), chunksize=1))
    assert len({r["pid"] for r in reports}) <= jobs
    for report in reports:
        assert report["get"] == per_worker
        assert report["blas"] and set(report["blas"]) == {per_worker}
        assert set(report["env"].values()) == {str(per_worker)}
    # the parent keeps its own share
    assert threads.get() == per_worker


def test_spawned_workers_are_limited_too():
    import multiprocessing

    threads.configure(2, 2)
    context = multiprocessing.get_context("spawn")
    with threads.process_pool(2, mp_context=context) as pool:
        reports = list(pool.map(report_in_worker, range(4), chunksize=1))
    assert {r["get"] for r in reports} == {1}
    assert all(set(r["blas"]) == {1} for r in reports)


def test_pool_default_uses_the_configured_total():
    threads.configure(2, 2)
    with threads.process_pool(2) as pool:
        assert {r["get"] for r in pool.map(report_in_worker, range(4))} == {1}
    with threads.process_pool(1, threads=2) as pool:
        assert pool.submit(report_in_worker).result()["get"] == 2


@pytest.mark.parametrize(
    "others, cpus, asked, expected",
    [
        (0, 2, 2, 2),
        (1, 2, 2, 1),
        (12, 2, 2, 1),
        (2, 8, 4, 4),
        (5, 8, 4, 3),
        (0, 4, 1, 1),
    ],
)
def test_usable_threads_leave_a_busy_machine_alone(
    monkeypatch, others, cpus, asked, expected
):
    monkeypatch.setattr(threads, "_proc_running_elsewhere", lambda: others)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert threads.usable(asked) == expected


@pytest.mark.parametrize(
    "load, cpus, asked, expected",
    [
        (0.1, 2, 2, 2),
        # this process's own long computation: a load of about 1
        (1.1, 2, 2, 2),
        (1.6, 2, 2, 1),
        (12.0, 2, 2, 1),
        (2.2, 8, 4, 4),
        (6.5, 8, 4, 2),
    ],
)
def test_usable_threads_from_the_load_average_discount_this_process(
    monkeypatch, load, cpus, asked, expected
):
    monkeypatch.setattr(threads, "_proc_running_elsewhere", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert threads.usable(asked) == expected


def test_usable_without_a_load_average_trusts_the_count(monkeypatch):
    def no_load():
        raise OSError("no load average")

    monkeypatch.setattr(threads, "_proc_running_elsewhere", lambda: None)
    monkeypatch.setattr(os, "getloadavg", no_load)
    assert threads.usable(3) == 3


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")
def test_running_elsewhere_counts_a_busy_process_and_not_this_one():
    import subprocess
    import sys
    import time

    spinner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.time()\nwhile time.time() - t < 20: pass",
        ]
    )
    try:
        time.sleep(0.3)
        seen = max(threads._proc_running_elsewhere() for _ in range(20))
        assert seen >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_running_elsewhere_discounts_this_process_own_threads(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 2 3\nprocs_running 4\nprocs_blocked 0\n")
    states = {"10": "R", "11": "S", "12": "R"}
    for task, state in states.items():
        (tmp_path / "self" / "task" / task).mkdir(parents=True)
        # a command name may hold spaces and parentheses
        (tmp_path / "self" / "task" / task / "stat").write_text(
            f"{task} (spike (R) x) {state} 1 {task} 0 0\n"
        )
    assert threads._proc_running_elsewhere(str(tmp_path)) == 2
    (tmp_path / "stat").write_text("procs_running 1\n")
    assert threads._proc_running_elsewhere(str(tmp_path)) == 0
    (tmp_path / "stat").write_text("no counts here\n")
    assert threads._proc_running_elsewhere(str(tmp_path)) is None


def test_map_threads_keeps_the_order_and_waits_for_every_call():
    import threading
    import time

    names = set()

    def work(i):
        names.add(threading.current_thread().name)
        time.sleep(0.002 * (i % 3))
        return i * i

    assert threads.map_threads(work, list(range(12)), 2) == [i * i for i in range(12)]
    assert len(names) <= 2
    assert threads.map_threads(work, [5], 2) == [25]
    assert threads.map_threads(work, [1, 2], 1) == [1, 4]

    done = []

    def fails_once(i):
        if i == 0:
            raise ValueError("piece 0")
        time.sleep(0.01)
        done.append(i)

    with pytest.raises(ValueError, match="piece 0"):
        threads.map_threads(fails_once, [0, 1, 2, 3], 2)
    assert sorted(done) == [1, 2, 3]
