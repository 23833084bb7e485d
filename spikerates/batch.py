"""Running one task per input over many inputs, here or on a Dask cluster.

A batch is a list of :class:`Item` (an input, its output, anything the task
needs) and a task, a picklable callable ``task(item) -> Result | None`` that
opens the input itself, writes the output and returns a small
:class:`Result`. :func:`run_batch` runs the task on every item with one of
two engines and hands back one :class:`Record` per input:

``local``
    A process pool on this machine (or this process for ``jobs=1``).
``dask``
    One Dask task per input on a running ``distributed`` scheduler, or on a
    :class:`distributed.LocalCluster` started for the batch.

Every input gets its own verdict: an exception in a task (expected or not)
becomes a failed record whose error line names the input, and the others
still run. An interrupt (``SIGINT``, ``SIGTERM``, ``SIGHUP``) cancels every
task that has not started, stops the running ones on this machine and
re-raises; their outputs are never committed half-written.

:func:`shard` picks the I-th of N slices of the inputs (SLURM job arrays),
:func:`up_to_date` tells which outputs a resumed batch may skip, and
:class:`JsonLog` appends one JSON line per input to a log file.

Only the standard library is imported at module level; ``distributed`` is
an optional dependency imported by the ``dask`` engine.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from spikerates.errors import ParameterError

#: The engines :func:`run_batch` knows.
ENGINES = ("local", "dask")

#: How to get the optional dependency of the ``dask`` engine.
DASK_INSTALL = "pip install 'spikerates[dask]'"

#: Seconds running workers get to clean up after an interrupt before they
#: are killed.
TERMINATE_GRACE = 1.5

Status = Literal["ok", "failed", "skipped", "cancelled"]

T = TypeVar("T")


# ----------------------------------------------------------------------------
# What goes in and what comes out


@dataclass(frozen=True)
class Item:
    """One input of a batch.

    Parameters
    ----------
    input : str
        The input path, as the user gave it (named in messages and the log).
    output : str, optional
        The output path the task writes.
    extra_outputs : tuple of str
        Other files the task writes (e.g. a figure); with ``skip_existing``
        an item is skipped only when all its outputs are up to date.
    payload : object
        Anything else the task needs (picklable).
    """

    input: str
    output: str | None = None
    extra_outputs: tuple[str, ...] = ()
    payload: Any = None

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every file the item writes."""
        head = () if self.output is None else (self.output,)
        return head + tuple(self.extra_outputs)


@dataclass(frozen=True)
class Result:
    """What a task reports about the input it processed.

    Parameters
    ----------
    units : int, optional
        Number of units in the input.
    spikes : int, optional
        Number of spikes read.
    error : str, optional
        A failure the task handled itself: one line naming the input.
    trace : str, optional
        The traceback of that failure (shown on request).
    internal : bool
        The error is a bug in the program rather than a problem of the input.
    notes : tuple of str
        Messages for the user (e.g. spikes left out of the window).
    info : tuple of str
        Summary lines shown on request.
    """

    units: int | None = None
    spikes: int | None = None
    error: str | None = None
    trace: str | None = None
    internal: bool = False
    notes: tuple[str, ...] = ()
    info: tuple[str, ...] = ()


@dataclass(frozen=True)
class Record:
    """The verdict on one input, as the client sees it.

    ``status`` is ``"ok"``, ``"failed"`` (``error`` names the input),
    ``"skipped"`` (the output was up to date) or ``"cancelled"`` (the batch
    was interrupted before the task ran). ``seconds`` is the task's
    wall-clock time on its worker; ``internal`` marks an error that is a bug
    (an exception the task did not expect).
    """

    input: str
    output: str | None
    status: Status
    seconds: float = 0.0
    units: int | None = None
    spikes: int | None = None
    error: str | None = None
    trace: str | None = None
    internal: bool = False
    notes: tuple[str, ...] = ()
    info: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether the input failed."""
        return self.status == "failed"

    def log_entry(self) -> dict[str, Any]:
        """The fields written to a JSON-lines log."""
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "units": self.units,
            "spikes": self.spikes,
            "error": self.error,
        }

    @classmethod
    def of(cls, item: Item, status: Status, **fields: Any) -> Record:
        """A record for ``item`` with ``status``."""
        return cls(item.input, item.output, status, **fields)


@dataclass
class Summary:
    """All records of a batch, in the order they finished."""

    records: list[Record] = field(default_factory=list)

    def count(self, status: Status) -> int:
        """How many inputs ended with ``status``."""
        return sum(record.status == status for record in self.records)

    @property
    def exit_status(self) -> int:
        """0 when no input failed, otherwise 1."""
        return 1 if any(record.failed for record in self.records) else 0


#: The work for one item; it opens the input itself and returns a Result.
Task = Callable[[Item], "Result | None"]


def display_name(path: str) -> str:
    """How an input appears in messages (``-`` is ``<stdin>``)."""
    return "<stdin>" if path == "-" else path


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unexpected_error(item: Item, exc: BaseException) -> str:
    """The one line for an exception a task did not expect, naming the input."""
    what = _one_line(str(exc))
    text = type(exc).__name__ + (f": {what}" if what else "")
    return f"{display_name(item.input)}: {text}"


def execute(task: Task, item: Item) -> Record:
    """Run ``task`` on ``item`` and return its :class:`Record`.

    Any exception becomes a failed record naming the input (the traceback
    is kept in :attr:`Record.trace`); interrupts propagate, and so does a
    :class:`BrokenPipeError` (standard output is gone: there is nobody to
    write for).
    """
    start = time.perf_counter()
    try:
        result = task(item)
    except BrokenPipeError:
        raise
    except Exception as exc:
        return Record.of(
            item,
            "failed",
            seconds=time.perf_counter() - start,
            error=unexpected_error(item, exc),
            trace=traceback.format_exc(),
            internal=True,
        )
    seconds = time.perf_counter() - start
    if result is None:
        result = Result()
    elif not isinstance(result, Result):
        return Record.of(
            item,
            "failed",
            seconds=seconds,
            error=f"{display_name(item.input)}: the task returned "
            f"{type(result).__name__}, not a Result",
            internal=True,
        )
    return Record.of(
        item,
        "failed" if result.error is not None else "ok",
        seconds=seconds,
        units=result.units,
        spikes=result.spikes,
        error=result.error,
        trace=result.trace,
        internal=result.internal and result.error is not None,
        notes=tuple(result.notes),
        info=tuple(result.info),
    )


# ----------------------------------------------------------------------------
# Interrupts


class Interrupted(KeyboardInterrupt):
    """The batch was stopped by a signal (``SIGTERM``, ``SIGHUP``).

    A :class:`KeyboardInterrupt`, so code that stops on Ctrl-C stops on it
    too; :attr:`signum` gives the exit status ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn ``SIGTERM``/``SIGHUP`` into :class:`Interrupted` while running.

    Only where they would otherwise kill the process outright (the default
    action), so a handler the caller installed keeps working.
    """
    names = ("SIGTERM", "SIGHUP")
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in names:
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
                previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _remove_partial_outputs(items: Iterable[Item]) -> None:
    """Remove temporary files a killed task left beside its outputs.

    Outputs are written to ``.<name>.<random>.tmp<suffix>`` beside the
    target and renamed onto it when complete (:mod:`spikerates.io.atomic`);
    a task killed before that leaves the temporary file and never the
    target.
    """
    for item in items:
        for target in item.outputs:
            if target == "-":
                continue
            directory, base = os.path.split(target)
            stem, suffix = os.path.splitext(base)
            pattern = os.path.join(
                glob.escape(directory or "."),
                f".{glob.escape(stem)}.*.tmp{glob.escape(suffix)}",
            )
            for path in glob.glob(pattern):
                with contextlib.suppress(OSError):
                    os.unlink(path)


# ----------------------------------------------------------------------------
# Engines


class Engine:
    """Runs a task over items and yields one :class:`Record` per item.

    :meth:`run` is a generator: records come as tasks finish. Closing it
    early (or an exception while it waits) cancels the tasks not started
    and stops the running ones.
    """

    name = "engine"

    def run(self, task: Task, items: Sequence[Item]) -> Iterator[Record]:
        raise NotImplementedError


#: Set in a local worker process while it runs a task.
_in_task = False


class _Terminated(BaseException):
    """Raised in a local worker by ``SIGTERM`` to unwind the running task."""


def _on_worker_terminate(signum: int, frame: Any) -> None:
    if _in_task:
        raise _Terminated
    os._exit(128 + signum)


def _init_local_worker(pool_size: int = 1) -> None:
    # The client decides what an interrupt means: Ctrl-C on a terminal
    # reaches every process of the group, and a worker that turned it into
    # an exception would go on with the next task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_worker_terminate)
    # Each worker computes with its share of the CPUs, so that thread pools
    # do not nest inside the process pool.
    with contextlib.suppress(Exception):
        from spikerates import threads

        threads.configure(jobs=pool_size)


def _run_in_local_worker(task: Task, item: Item) -> Record:
    global _in_task
    _in_task = True
    try:
        return execute(task, item)
    except _Terminated:
        # The task's cleanup (temporary files) has run while unwinding.
        os._exit(128 + signal.SIGTERM)
    finally:
        _in_task = False


class LocalEngine(Engine):
    """Tasks in a pool of ``jobs`` worker processes on this machine.

    With ``jobs=1`` the tasks run one after the other in this process. At
    most ``jobs`` tasks are handed to the pool at a time, so after an
    interrupt no queued task can start. A worker that dies (killed, out of
    memory) fails the tasks it shared the pool with; each is tried again
    ``retries`` times in a fresh pool, then reported.

    Parameters
    ----------
    jobs : int
        Number of worker processes, >= 1.
    retries : int
        How many times an input is tried again after its worker died.
    start_method : str, optional
        ``multiprocessing`` start method (``"spawn"``, ``"forkserver"``,
        ``"fork"``); the platform's default if not given.
    """

    name = "local"

    def __init__(
        self, jobs: int = 1, *, retries: int = 1, start_method: str | None = None
    ) -> None:
        self.jobs = _check_jobs(jobs)
        self.retries = _check_retries(retries)
        self.start_method = start_method

    def run(self, task: Task, items: Sequence[Item]) -> Iterator[Record]:
        if self.jobs == 1 or len(items) <= 1:
            for item in items:
                yield execute(task, item)
            return
        yield from self._run_pool(task, items)

    def _new_pool(self, n_items: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context(self.start_method)
        size = max(1, min(self.jobs, n_items))
        return ProcessPoolExecutor(
            max_workers=size,
            mp_context=context,
            initializer=_init_local_worker,
            initargs=(size,),
        )

    def _run_pool(self, task: Task, items: Sequence[Item]) -> Iterator[Record]:
        from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        waiting: deque[tuple[Item, int]] = deque((item, 0) for item in items)
        # Inputs that were running when a worker died among several: each
        # runs alone next, so that a death can be blamed on its input.
        alone: deque[tuple[Item, int]] = deque()
        running: dict[Any, tuple[Item, int]] = {}
        pool = self._new_pool(len(items))
        try:
            while waiting or alone or running:
                queue, limit = (alone, 1) if alone else (waiting, self.jobs)
                while queue and len(running) < limit:
                    item, attempt = queue[0]
                    try:
                        future = pool.submit(_run_in_local_worker, task, item)
                    except BrokenProcessPool:
                        break
                    queue.popleft()
                    running[future] = (item, attempt)
                if not running:
                    # The pool broke before taking anything: start afresh.
                    pool.shutdown(wait=False)
                    pool = self._new_pool(len(waiting) + len(alone))
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                if any(_broke(future) for future in done):
                    # Every task of a broken pool fails; collect them all.
                    done, _ = wait(list(running), return_when=ALL_COMPLETED)
                lost: list[tuple[Item, int]] = []
                for future in done:
                    item, attempt = running.pop(future)
                    if _broke(future):
                        lost.append((item, attempt))
                    else:
                        yield _pool_record(future, item)
                if not lost:
                    continue
                pool.shutdown(wait=False)
                pool = self._new_pool(max(1, len(waiting) + len(alone) + len(lost)))
                if len(lost) > 1:
                    alone.extend(lost)
                    continue
                ((item, attempt),) = lost
                if attempt < self.retries:
                    alone.appendleft((item, attempt + 1))
                else:
                    yield Record.of(
                        item,
                        "failed",
                        error=f"{display_name(item.input)}: the worker process "
                        f"running it died ({attempt + 1} attempts)",
                    )
        except BaseException:
            for future in running:
                future.cancel()
            _terminate_pool(pool)
            _remove_partial_outputs(item for item, _ in running.values())
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _broke(future) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(future.exception(), BrokenProcessPool)


def _pool_record(future, item: Item) -> Record:
    exc = future.exception()
    if exc is None:
        return future.result()
    # e.g. a task or a result that cannot be pickled
    return Record.of(
        item,
        "failed",
        error=unexpected_error(item, exc),
        trace="".join(traceback.format_exception(exc)),
        internal=True,
    )


def _terminate_pool(pool) -> None:
    """Cancel everything queued in ``pool`` and stop its workers now."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(Exception):
            if process.is_alive():
                process.kill()
                process.join(1.0)


class DaskEngine(Engine):
    """One Dask task per input.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or a scheduler
        file (JSON, as written by ``dask scheduler --scheduler-file``).
        Without it a :class:`distributed.LocalCluster` of ``jobs`` worker
        processes on 127.0.0.1 runs the batch and is shut down afterwards.
    jobs : int
        Worker processes of the local cluster (ignored with ``scheduler``).
    retries : int
        Dask's retries of a task that raised outside the task's own error
        handling (e.g. it could not be unpickled on a worker). A task lost
        with its worker is run again by the scheduler, up to its
        ``distributed.scheduler.allowed-failures`` times (default 3), and
        then reported as failed.
    connect_timeout : float
        Seconds to wait for the scheduler.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        jobs: int = 1,
        retries: int = 1,
        connect_timeout: float = 10.0,
    ) -> None:
        require_distributed()
        self.scheduler = scheduler
        self.jobs = _check_jobs(jobs)
        self.retries = _check_retries(retries)
        self.connect_timeout = connect_timeout

    @contextlib.contextmanager
    def _client(self) -> Iterator[tuple[Any, Any]]:
        import logging

        import distributed

        if self.scheduler is not None:
            kwargs: dict[str, Any] = {"timeout": f"{self.connect_timeout}s"}
            if self.scheduler.endswith(".json") and os.path.isfile(self.scheduler):
                kwargs["scheduler_file"] = self.scheduler
            else:
                kwargs["address"] = self.scheduler
            try:
                client = distributed.Client(**kwargs)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ParameterError(
                    "--scheduler",
                    f"cannot connect to the Dask scheduler {self.scheduler!r}: "
                    f"{_one_line(str(exc)) or type(exc).__name__}",
                ) from None
            with client:
                yield client, None
            return
        cluster = distributed.LocalCluster(
            n_workers=self.jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # no fixed port to collide on
            silence_logs=logging.CRITICAL,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client, cluster
        finally:
            cluster.close(timeout=10)

    def run(self, task: Task, items: Sequence[Item]) -> Iterator[Record]:
        import uuid

        import distributed

        if not items:
            return
        with self._client() as (client, cluster):
            batch = uuid.uuid4().hex[:8]
            futures = {}
            for index, item in enumerate(items):
                future = client.submit(
                    execute,
                    task,
                    item,
                    key=f"spikerates-{batch}-{index}",
                    retries=self.retries,
                    pure=False,
                )
                futures[future] = item
            try:
                for future in distributed.as_completed(list(futures)):
                    item = futures.pop(future)
                    yield _dask_record(future, item)
            except BaseException:
                # Stopping on purpose: the connections Dask loses on the way
                # down are not news (its loggers would print tracebacks).
                import logging

                for name in ("distributed", "tornado", "asyncio"):
                    logging.getLogger(name).setLevel(logging.CRITICAL + 1)
                # Pending tasks never start; running ones on the local
                # cluster are stopped with its workers.
                with contextlib.suppress(Exception):
                    client.cancel(list(futures), force=True)
                if cluster is not None:
                    _kill_local_workers(cluster)
                    _remove_partial_outputs(futures.values())
                raise


def _dask_record(future, item: Item) -> Record:
    if future.status == "finished":
        try:
            record = future.result()
        except Exception as exc:
            return Record.of(
                item, "failed", error=unexpected_error(item, exc), internal=True
            )
        if isinstance(record, Record):
            return record
        return Record.of(item, "failed", error=f"{display_name(item.input)}: no result")
    if future.status == "cancelled":
        return Record.of(
            item,
            "failed",
            error=f"{display_name(item.input)}: the Dask task was cancelled "
            "(scheduler or client lost)",
        )
    exc = future.exception()
    name = display_name(item.input)
    if type(exc).__name__ == "KilledWorker":
        attempts = getattr(exc, "allowed_failures", None)
        times = f" {attempts + 1} times" if isinstance(attempts, int) else ""
        error = f"{name}: the Dask worker running it died{times}"
        internal = False
    else:
        error = unexpected_error(item, exc)
        internal = True
    trace = "".join(traceback.format_exception(exc)) if exc is not None else None
    return Record.of(item, "failed", error=error, trace=trace, internal=internal)


def _kill_local_workers(cluster) -> None:
    """Stop the worker processes of a LocalCluster at once."""
    for nanny in list(getattr(cluster, "workers", {}).values()):
        # A nanny closing gracefully does not start a new worker.
        with contextlib.suppress(Exception):
            nanny.close_gracefully(reason="spikerates-interrupted")
        process = getattr(getattr(nanny, "process", None), "process", None)
        pid = getattr(process, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def require_distributed() -> None:
    """Raise :class:`ParameterError` when ``distributed`` is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ParameterError(
            "--engine",
            f"dask needs the optional packages dask and distributed: {DASK_INSTALL}",
        ) from None


def _check_jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError("--jobs", f"must be an integer >= 1, got {jobs!r}")
    return jobs


def _check_retries(retries: int) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ParameterError("retries", f"must be an integer >= 0, got {retries!r}")
    return retries


def make_engine(
    engine: str = "local",
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    retries: int = 1,
) -> Engine:
    """The engine named ``engine`` (one of :data:`ENGINES`).

    Raises
    ------
    ParameterError
        An unknown engine, ``scheduler`` without the dask engine, a bad
        ``jobs``, or the dask engine without ``distributed`` installed.
    """
    if engine == "local":
        if scheduler is not None:
            raise ParameterError("--scheduler", "needs --engine dask")
        return LocalEngine(jobs, retries=retries)
    if engine == "dask":
        return DaskEngine(scheduler, jobs=jobs, retries=retries)
    raise ParameterError(
        "--engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}"
    )


# ----------------------------------------------------------------------------
# Running a batch


def run_batch(
    task: Task,
    items: Sequence[Item],
    *,
    engine: str | Engine = "local",
    jobs: int = 1,
    scheduler: str | None = None,
    retries: int = 1,
    skip_existing: bool = False,
    log: str | os.PathLike | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> Summary:
    """Run ``task`` on every item and collect one :class:`Record` per input.

    Parameters
    ----------
    task : callable
        ``task(item) -> Result | None``, picklable (a module-level function
        or a :func:`functools.partial` of one). It opens ``item.input``
        itself and writes ``item.output``.
    items : sequence of Item
        The inputs.
    engine : {"local", "dask"} or Engine
        Where the tasks run (see :func:`make_engine`).
    jobs : int
        Worker processes (local pool, or the dask engine's local cluster).
    scheduler : str, optional
        A running Dask scheduler's address or scheduler file.
    retries : int
        Attempts after a worker died (see the engines).
    skip_existing : bool
        Skip an item whose outputs all exist and are newer than its input
        (:func:`up_to_date`).
    log : path, optional
        A JSON-lines file to append one line per input to.
    on_record : callable, optional
        Called in this process with each record as it arrives (skipped ones
        first, cancelled ones last).

    Returns
    -------
    Summary
        The records, in the order the inputs finished.

    Raises
    ------
    KeyboardInterrupt
        On ``SIGINT`` (or :class:`Interrupted` on ``SIGTERM``/``SIGHUP``),
        after cancelling the pending tasks, stopping local workers and
        recording every input not processed as ``"cancelled"``.
    ParameterError
        A bad engine, ``jobs``, scheduler or log path.
    """
    if not isinstance(engine, Engine):
        engine = make_engine(engine, jobs=jobs, scheduler=scheduler, retries=retries)
    summary = Summary()
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(JsonLog(log)) if log is not None else None

        def emit(record: Record) -> None:
            summary.records.append(record)
            if journal is not None:
                journal.write(record)
            if on_record is not None:
                on_record(record)

        todo: list[Item] = []
        for item in items:
            if skip_existing and up_to_date(item.input, item.outputs):
                emit(Record.of(item, "skipped"))
            else:
                todo.append(item)
        finished: set[int] = set()
        by_key = {_item_key(item): index for index, item in enumerate(todo)}
        stack.enter_context(_signals_interrupt())
        records = engine.run(task, todo)
        try:
            for record in records:
                finished.add(by_key.get((record.input, record.output), -1))
                emit(record)
        except BaseException:
            records.close()
            for index, item in enumerate(todo):
                if index not in finished:
                    emit(Record.of(item, "cancelled"))
            raise
    return summary


def _item_key(item: Item) -> tuple[str, str | None]:
    return (item.input, item.output)


# ----------------------------------------------------------------------------
# Shards, skipping, the log


def parse_shard(spec: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The 0-based slice index and the slice count of a ``--shard`` value.

    Parameters
    ----------
    spec : str
        ``"I/N"`` (the I-th of N slices, 1 <= I <= N) or ``"slurm"``: the
        task of a SLURM job array (``SLURM_ARRAY_TASK_ID`` and
        ``SLURM_ARRAY_TASK_COUNT``, or ``SLURM_ARRAY_TASK_MIN``/``_MAX`` and
        ``_STEP``).
    environ : mapping, optional
        The environment (default :data:`os.environ`).

    Raises
    ------
    ParameterError
        A malformed value, or ``slurm`` outside a job array.
    """
    text = str(spec).strip()
    if text.lower() == "slurm":
        return _slurm_shard(os.environ if environ is None else environ)
    head, sep, tail = text.partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(head), int(tail)
    except ValueError:
        raise ParameterError(
            "--shard", f"must be I/N (e.g. 2/10) or 'slurm', got {spec!r}"
        ) from None
    if count < 1:
        raise ParameterError("--shard", f"N must be >= 1, got {spec!r}")
    if not 1 <= index <= count:
        raise ParameterError(
            "--shard",
            f"I must be between 1 and N={count} (the I-th of N slices), got {spec!r}",
        )
    return index - 1, count


def _slurm_shard(environ: Mapping[str, str]) -> tuple[int, int]:
    def number(name: str) -> int | None:
        value = environ.get(name)
        if value is None or value.strip() == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise ParameterError(
                "--shard", f"slurm: {name}={value!r} is not an integer"
            ) from None

    task_id = number("SLURM_ARRAY_TASK_ID")
    if task_id is None:
        raise ParameterError(
            "--shard",
            "slurm: SLURM_ARRAY_TASK_ID is not set; run inside a SLURM job "
            "array (sbatch --array=...) or give I/N",
        )
    first = number("SLURM_ARRAY_TASK_MIN")
    last = number("SLURM_ARRAY_TASK_MAX")
    step = number("SLURM_ARRAY_TASK_STEP") or 1
    count = number("SLURM_ARRAY_TASK_COUNT")
    if first is None:
        first = 0 if count is not None and task_id < count else None
    if first is None or (count is None and last is None):
        raise ParameterError(
            "--shard",
            "slurm: the array size is unknown; SLURM_ARRAY_TASK_COUNT or "
            "SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_MAX must be set",
        )
    if step < 1:
        raise ParameterError("--shard", f"slurm: SLURM_ARRAY_TASK_STEP={step} < 1")
    if count is None:
        count = (last - first) // step + 1
    offset = task_id - first
    if count < 1 or offset < 0 or offset % step or offset // step >= count:
        raise ParameterError(
            "--shard",
            f"slurm: task {task_id} is not one of the {count} tasks of the array "
            f"starting at {first} with step {step}",
        )
    return offset // step, count


def shard(
    inputs: Iterable[T],
    spec: str | tuple[int, int] | None,
    *,
    key: Callable[[T], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[T]:
    """The inputs of one shard: a contiguous slice of the sorted inputs.

    The N slices of ``sorted(inputs)`` differ in length by at most one; on
    any machine, the same inputs give the same slices, so N runs with
    ``1/N`` ... ``N/N`` process every input exactly once.

    Parameters
    ----------
    inputs : iterable
        Input paths (or objects named by ``key``).
    spec : str or (index, count) or None
        A ``--shard`` value (see :func:`parse_shard`), a 0-based
        ``(index, count)``, or None for all inputs (sorted).
    key : callable, optional
        The path of an input object (default: the input itself).
    environ : mapping, optional
        The environment for ``"slurm"``.
    """
    key = key or (lambda value: value)  # type: ignore[assignment,return-value]
    ordered = sorted(inputs, key=key)
    if spec is None:
        return ordered
    if isinstance(spec, tuple):
        index, count = spec
        if not (isinstance(count, int) and count >= 1 and 0 <= index < count):
            raise ParameterError("--shard", f"bad shard {spec!r}")
    else:
        index, count = parse_shard(spec, environ)
    n = len(ordered)
    return ordered[index * n // count : (index + 1) * n // count]


def _newest_mtime_ns(path: str) -> int:
    info = os.stat(path)
    newest = info.st_mtime_ns
    if os.path.isdir(path):
        # A folder input (Phy): its files count, not only the folder entry.
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return newest


def up_to_date(
    input: str | os.PathLike, output: str | os.PathLike | Sequence[str | os.PathLike]
) -> bool:
    """Whether the outputs exist and are newer than the input.

    Parameters
    ----------
    input : path
        A file or a folder (whose files are compared too). ``-`` is never
        up to date.
    output : path or sequence of paths
        Every output of the input; ``-`` is never up to date.
    """
    outputs = [output] if isinstance(output, (str, os.PathLike)) else list(output or [])
    source = os.fspath(input)
    if not outputs or source == "-":
        return False
    try:
        newest_input = _newest_mtime_ns(source)
    except OSError:
        return False
    for out in outputs:
        target = os.fspath(out)
        if target == "-":
            return False
        try:
            info = os.stat(target)
        except OSError:
            return False
        if not os.path.isfile(target) or info.st_mtime_ns <= newest_input:
            return False
    return True


class JsonLog:
    """A JSON-lines file that records get appended to, one line each.

    Each line is written with a single ``write`` on a descriptor opened with
    ``O_APPEND`` under an exclusive ``flock``, so several batches (e.g. the
    tasks of a job array) may share one log without tearing lines.

    Parameters
    ----------
    path : path
        The log file, created if missing.

    Raises
    ------
    ParameterError
        When the file cannot be opened for appending.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd: int | None = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise ParameterError(
                "--log",
                f"cannot append to {self.path}: {(exc.strerror or str(exc)).lower()}",
            ) from None

    def write(self, record: Record | Mapping[str, Any]) -> None:
        """Append one line for ``record`` (with the time it was written)."""
        if self._fd is None:
            raise ValueError("the log is closed")
        entry = record.log_entry() if isinstance(record, Record) else dict(record)
        entry["time"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode(
            "utf-8", errors="surrogateescape"
        )
        with _locked(self._fd):
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not on POSIX: O_APPEND alone
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a JSON-lines log, oldest first."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


__all__ = [
    "DASK_INSTALL",
    "ENGINES",
    "DaskEngine",
    "Engine",
    "Interrupted",
    "Item",
    "JsonLog",
    "LocalEngine",
    "Record",
    "Result",
    "Summary",
    "execute",
    "make_engine",
    "parse_shard",
    "read_log",
    "require_distributed",
    "run_batch",
    "shard",
    "up_to_date",
]
