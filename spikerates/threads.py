"""The number of threads computations use: the one place that decides it.

By default a process computes with as many threads as the CPUs it may run
on (its CPU affinity mask, which a container or ``taskset`` can narrow, not
the machine's CPU count). :func:`configure` sets the count for the process
and, when inputs are spread over a pool of ``jobs`` processes, for each of
them: ``max(1, threads // jobs)``, so that pools of threads never nest
inside pools of processes. The count reaches every pool of workers:

- the BLAS and OpenMP thread pools of the loaded libraries (OpenBLAS, MKL,
  BLIS), through threadpoolctl, and of libraries loaded later or by child
  processes, through the environment variables they read when they load;
- ``scipy.fft``, to which the estimators pass ``workers=fft_workers()``;
- the estimators' own threads over blocks of units (:func:`get`).

Examples
--------
>>> n = configure(threads=4, jobs=2)   # each of two processes: 2 threads
>>> with limited():                     # BLAS pools at get() threads
...     pass
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager

from spikerates.errors import ParameterError

__all__ = [
    "ENV_VARS",
    "available",
    "blas_serial",
    "configure",
    "describe",
    "fft_workers",
    "get",
    "limited",
    "map_threads",
    "pool_initializer",
    "process_pool",
    "usable",
]

#: Environment variables through which thread pools read their size when
#: their library loads (in this process or in a child).
ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# threads of this process, once configured; None: the default, available()
_threads: int | None = None
# how the count was chosen, for describe()
_origin: str = "default"
# the threads of the whole computation and the processes sharing them
_total: int | None = None
_jobs: int = 1


def available() -> int:
    """The number of CPUs this process may run on (at least 1).

    Returns
    -------
    int
        The size of the CPU affinity mask where the system has one, else the
        machine's CPU count.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every system has affinity masks
        return max(1, os.cpu_count() or 1)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, f"must be a whole number >= 1, got {value!r}")
    if value < 1:
        raise ParameterError(name, f"must be >= 1, got {value}")
    return int(value)


def get() -> int:
    """The number of threads this process computes with.

    Returns
    -------
    int
        The count set by :func:`configure`, else :func:`available`.
    """
    return available() if _threads is None else _threads


def usable(threads: int | None = None) -> int:
    """Threads worth starting now: at most ``threads``, fewer on a busy machine.

    Parameters
    ----------
    threads : int, optional
        The most to use; default :func:`get`.

    Returns
    -------
    int
        ``threads`` while the CPUs this process may run on have room for
        them, else as many as there is room for, at least 1: on a machine
        already busy a second thread only waits for a CPU, and the work
        split between threads then waits for the slowest. The room is the
        CPUs less the threads of other processes running now (the system's
        count of runnable threads less this process's own); where the
        system does not tell, the 1-minute load average less this process's
        share of it (which a long single-threaded computation raises to
        about 1).
    """
    n = get() if threads is None else _count("threads", threads)
    if n <= 1:
        return 1
    others = _running_elsewhere()
    if others is None:
        return n
    return max(1, min(n, available() - others))


def _running_elsewhere() -> int | None:
    """Threads of other processes running or waiting for a CPU now, or None.

    Linux tells it directly (:func:`_proc_running_elsewhere`); elsewhere it
    is estimated from the 1-minute load average less the calling thread
    (rounded: a load of 1.4 is this process alone).
    """
    others = _proc_running_elsewhere()
    if others is not None:
        return others
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average: trust the count
        return None
    return int(max(0.0, load - 0.5))


def _proc_running_elsewhere(proc: str = "/proc") -> int | None:
    """Runnable threads of other processes from Linux's ``/proc``, or None.

    ``procs_running`` in ``/proc/stat`` counts every runnable thread of the
    system, this process's included; those of this process are the tasks
    in state R under ``/proc/self/task`` (at least the calling one).
    """
    try:
        with open(f"{proc}/stat", "rb") as stat:
            running = next(
                int(line.split()[1])
                for line in stat
                if line.startswith(b"procs_running ")
            )
        tasks = os.listdir(f"{proc}/self/task")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    own = 0
    for task in tasks:
        try:
            with open(f"{proc}/self/task/{task}/stat", "rb") as f:
                # the state follows the command name, which is in
                # parentheses and may hold any character
                fields = f.read().rpartition(b")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        own += bool(fields) and fields[0] == b"R"
    return max(0, running - max(own, 1))


def fft_workers() -> int:
    """The ``workers`` argument for ``scipy.fft`` calls: :func:`get`."""
    return get()


#: Environment variable holding the thread count asked for (``--threads``).
THREADS_ENV = "SPIKERATES_THREADS"


def configure(threads: int | None = None, jobs: int = 1) -> int:
    """Set the thread count of this process, or of each process of a pool.

    Parameters
    ----------
    threads : int, optional
        Threads for the whole computation, >= 1; default the environment
        variable :data:`THREADS_ENV` when set (so the processes of a pool
        share the count asked for on the command line), else
        :func:`available`.
    jobs : int, optional
        Number of processes the inputs are spread over, >= 1. Each computes
        with ``max(1, threads // jobs)`` threads.

    Returns
    -------
    int
        The threads per process, now applied to this process: the BLAS and
        OpenMP pools already loaded are limited to it, and the environment
        variables :data:`ENV_VARS` are set to it for libraries loaded later
        and for child processes.

    Raises
    ------
    ParameterError
        Naming ``threads`` or ``jobs`` when it is not a whole number >= 1.
    """
    global _origin, _total, _jobs
    jobs = _count("jobs", jobs)
    if threads is None and os.environ.get(THREADS_ENV):
        text = os.environ[THREADS_ENV]
        try:
            total = _count(THREADS_ENV, int(text))
        except ValueError:
            raise ParameterError(
                THREADS_ENV, f"must be a whole number >= 1, got {text!r}"
            ) from None
        _origin = "requested"
    elif threads is None:
        total, _origin = available(), "CPU affinity mask"
    else:
        total, _origin = _count("threads", threads), "requested"
    per_process = max(1, total // jobs)
    _total, _jobs = total, jobs
    _apply(per_process)
    return per_process


def _apply(n: int) -> None:
    global _threads
    _threads = n
    for var in ENV_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits  # deferred: inspects libraries

    threadpool_limits(limits=n)


def describe() -> str:
    """One line saying how many threads compute and why, for ``-v``."""
    n = get()
    origin = _origin if _threads is not None else "CPU affinity mask"
    if _jobs > 1:
        return (
            f"threads: {_total} ({origin}; {available()} CPUs available) "
            f"shared by {_jobs} processes: {n} each"
        )
    return f"threads: {n} ({origin}; {available()} CPUs available)"


@contextmanager
def limited(threads: int | None = None) -> Iterator[int]:
    """Limit the BLAS and OpenMP thread pools for the duration of a block.

    Parameters
    ----------
    threads : int, optional
        The limit, >= 1; default :func:`get`. Libraries loaded since
        :func:`configure` are limited too.

    Yields
    ------
    int
        The limit.
    """
    n = get() if threads is None else _count("threads", threads)
    from threadpoolctl import threadpool_limits  # deferred: inspects libraries

    with threadpool_limits(limits=n):
        yield n


def pool_initializer(threads: int) -> None:
    """Set up a worker process of a pool to compute with ``threads`` threads.

    For ``ProcessPoolExecutor(initializer=pool_initializer,
    initargs=(per_worker,))``, where ``per_worker`` is what
    :func:`configure` returned in the parent.
    """
    configure(threads)


def process_pool(jobs: int, threads: int | None = None, mp_context=None):
    """A process pool of ``jobs`` workers sharing ``threads`` threads.

    Parameters
    ----------
    jobs : int
        Number of worker processes, >= 1.
    threads : int, optional
        Threads for the whole pool; default the total given to
        :func:`configure` (or, before any, :func:`available`). Each worker
        computes with ``max(1, threads // jobs)`` of them.
    mp_context : multiprocessing context, optional
        How workers start (default: the platform's).

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
        To be used as a context manager.
    """
    from concurrent.futures import ProcessPoolExecutor

    jobs = _count("jobs", jobs)
    if threads is None:
        total = available() if _total is None else _total
    else:
        total = _count("threads", threads)
    per_worker = max(1, total // jobs)
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=mp_context,
        initializer=pool_initializer,
        initargs=(per_worker,),
    )


# threadpoolctl's view of the loaded libraries, built once (it inspects
# every loaded library, which costs milliseconds); limiting through it
# costs microseconds
_controller = None
# the estimators' own thread pools, one per number of threads
_executors: dict = {}


def _threadpool_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def blas_serial() -> Iterator[None]:
    """Run the BLAS calls of a block on one thread each.

    The estimators split their work over their own threads (:func:`map_threads`)
    instead: BLAS threads wait for work by spinning, which on a busy machine
    (or under a pool of threads) costs far more than it gains.
    """
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        yield


def map_threads(function, items: list, threads: int | None = None) -> list:
    """``[function(item) for item in items]`` on up to ``threads`` threads.

    Parameters
    ----------
    function : callable
        Called once per item; it should spend its time in code that lets go
        of the GIL (NumPy, BLAS, FFT).
    items : list
        The work, in independent pieces.
    threads : int, optional
        Default :func:`get`. With 1 (or one item) everything runs in the
        calling thread.

    Returns
    -------
    list
        The results in the order of ``items``; an exception in any call is
        raised once all calls are done.
    """
    n = get() if threads is None else _count("threads", threads)
    n = min(n, len(items))
    if n <= 1:
        return [function(item) for item in items]
    executor = _executors.get(n)
    if executor is None:
        from concurrent.futures import ThreadPoolExecutor

        # one pool per size: its n workers take the items in turn
        executor = _executors[n] = ThreadPoolExecutor(
            max_workers=n, thread_name_prefix="spikerates"
        )
    from concurrent.futures import wait

    futures = [executor.submit(function, item) for item in items]
    wait(futures)
    return [future.result() for future in futures]
