"""Running a command over one or many inputs, and reporting errors.

A user-facing failure (:class:`~spikerates.errors.SpikeratesError`, or an
``OSError`` such as a missing file) becomes one line on standard error,
``spikerates: error: <file>: <dataset>: <what>``, and exit status 1. Any
other exception is a bug in spikerates: one line ``spikerates: internal
error: <Type>: <what>`` (and the traceback with ``-v``), exit status 1.
With several inputs each one runs on its own (optionally in a process
pool): a failing input reports its line and the others still run.

Only the standard library and ``click`` are imported at module level.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from spikerates.batch import Interrupted
from spikerates.errors import SpikeratesError

#: Exceptions that mean bad data, a bad parameter or an I/O problem.
USER_ERRORS = (SpikeratesError, OSError)

PROG = "spikerates"


# ----------------------------------------------------------------------------
# Settings shared by all commands


@dataclass
class Settings:
    """Global flags: ``-v`` (tracebacks, summaries) and ``-q`` (no notes)."""

    verbose: bool = False
    quiet: bool = False


#: Decorator passing the :class:`Settings` of the run to a command.
pass_settings = click.make_pass_decorator(Settings, ensure=True)


def settings(ctx: click.Context | None = None) -> Settings:
    """The :class:`Settings` of the running command."""
    ctx = ctx or click.get_current_context(silent=True)
    found = ctx.find_object(Settings) if ctx is not None else None
    return found if found is not None else Settings()


# ----------------------------------------------------------------------------
# Signals and standard streams


#: Signals that stop a run with exit status 128 + their number.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While running, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted`.

    After the first signal the others are ignored, so that cleaning up is
    not itself interrupted. A signal ignored when spikerates started (e.g.
    SIGHUP under ``nohup``) stays ignored. The previous handlers come back
    on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def stop(signum: int, frame: Any) -> None:
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        raise Interrupted(signum)

    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) == signal.SIG_IGN:
            continue
        previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def silence_stdout() -> None:
    """Point standard output at the null device (after a broken pipe), so
    that flushing it at exit raises nothing."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def is_broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is a write to a closed pipe (``| head``)."""
    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ESHUTDOWN)


#: Set when spikerates started with standard output closed (``>&-``).
stdout_closed = False


def ensure_streams() -> None:
    """Give closed standard streams (``>&-``: Python makes them None) the
    null device, remembering that standard output was closed so that
    ``-o -`` is refused with a message."""
    global stdout_closed
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        stdout_closed = True
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


# ----------------------------------------------------------------------------
# Messages


def printable(text: str) -> str:
    """``text`` with control and other invisible characters escaped
    (``\\x1b``, ``\\u202e``...), so names read from a file cannot drive the
    terminal."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def echo_line(line: str) -> None:
    """Write one line on standard error, escaped with :func:`printable`."""
    click.echo(printable(line), err=True)


def display_name(path: str | os.PathLike | None) -> str | None:
    """How a path appears in messages (``-`` is shown as ``<stdin>``)."""
    if path is None:
        return None
    path = os.fspath(path)
    return "<stdin>" if path == "-" else path


def describe_error(exc: BaseException, source: str | None = None) -> str:
    """One line ``<file>: <dataset>: <what>`` for a user error.

    Parameters
    ----------
    exc : BaseException
        The error raised while handling ``source``.
    source : str, optional
        The input being processed, named when the error does not name a file.
    """
    from spikerates.errors import SpikeDataError

    where = display_name(source)
    if isinstance(exc, SpikeDataError):
        text = str(exc)
        if exc.path is None and where is not None:
            text = f"{where}: {text}"
    elif isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        # "Permission denied" -> "permission denied", like the other messages
        what = what[:1].lower() + what[1:]
        filename = display_name(exc.filename) if exc.filename else where
        text = f"{filename}: {what}" if filename else what
    else:
        what = str(exc) or type(exc).__name__
        text = f"{where}: {what}" if where is not None else what
    return " ".join(text.split())


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's mistake (bad data, parameter, file),
    as opposed to a bug in spikerates."""
    return isinstance(exc, USER_ERRORS)


def describe_internal_error(exc: BaseException, source: str | None = None) -> str:
    """One line ``[<file>: ]<Type>: <what>`` for an unexpected exception."""
    what = " ".join(str(exc).split())
    text = type(exc).__name__ + (f": {what}" if what else "")
    where = display_name(source)
    return f"{where}: {text}" if where is not None else text


def error_line(text: str, *, internal: bool = False, verbose: bool = False) -> str:
    """The stderr line of an error (an internal one asks for ``-v``)."""
    if not internal:
        return f"{PROG}: error: {text}"
    hint = "" if verbose else " (rerun with -v for the traceback)"
    return f"{PROG}: internal error: {text}{hint}"


def report_exception(exc: BaseException, config: Settings) -> None:
    """Print the one line for ``exc`` (and the traceback with ``-v``)."""
    internal = not is_user_error(exc)
    if config.verbose:
        traceback.print_exception(exc, file=sys.stderr)
    text = describe_internal_error(exc) if internal else describe_error(exc)
    echo_line(error_line(text, internal=internal, verbose=config.verbose))


def stderr_is_terminal() -> bool:
    """Whether progress bars may be drawn (standard error is a terminal)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------
# One unit of work


@dataclass
class Report:
    """What one input's run has to say: notes, and a summary for ``-v``.

    Passed to the task; collected in worker processes and printed by the
    parent so that messages never interleave mid-line.
    """

    source: str
    progress: bool = False
    notes: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    #: Units and spikes of the input, for the batch log.
    units: int | None = None
    spikes: int | None = None

    def count(self, data: Any) -> None:
        """Record the units (and, for spike times, the spikes) of ``data``.

        ``data`` is a SpikeTrains or a DenseSpikes; the spikes of a dense
        matrix are not counted (that would read all of it).
        """
        self.units = int(data.n_units)
        if hasattr(data, "spike_times"):
            self.spikes = int(data.n_spikes)

    def note(self, text: str) -> None:
        """Record a note about this input (shown unless ``-q``)."""
        self.notes.append(f"{display_name(self.source)}: {text}")

    def summary(self, text: str) -> None:
        """Record a summary line (shown with ``-v``)."""
        self.info.append(f"{display_name(self.source)}: {text}")


@dataclass
class Job:
    """One input, the output it goes to and the output format."""

    source: str
    target: str
    out_format: str
    plot_path: str | None = None
    error: str | None = None
    #: The output goes into ``-o DIR``, created if missing.
    in_directory: bool = False


@dataclass
class Outcome:
    """The result of one job as seen by the parent process."""

    job: Job
    notes: list[str]
    info: list[str]
    error: str | None = None
    trace: str | None = None
    #: The error is a bug in spikerates, not the user's mistake.
    internal: bool = False
    units: int | None = None
    spikes: int | None = None


#: A task does the work for one job; it raises on failure.
Task = Callable[[Job, Report], None]


def run_job(task: Task, job: Job, progress: bool = False) -> Outcome:
    """Run ``task`` on ``job``, turning any failure into an :class:`Outcome`."""
    report = Report(job.source, progress=progress)
    if job.error is not None:
        return Outcome(job, [], [], error=job.error)
    try:
        if job.in_directory:
            os.makedirs(os.path.dirname(job.target), exist_ok=True)
        task(job, report)
    except Exception as exc:
        if is_broken_pipe(exc):
            raise
        internal = not is_user_error(exc)
        describe = describe_internal_error if internal else describe_error
        return Outcome(
            job,
            report.notes,
            report.info,
            error=describe(exc, job.source),
            trace=traceback.format_exc(),
            internal=internal,
            units=report.units,
            spikes=report.spikes,
        )
    return Outcome(
        job, report.notes, report.info, units=report.units, spikes=report.spikes
    )


# ----------------------------------------------------------------------------
# Planning outputs


def input_stem(source: str) -> str:
    """The name an input's output gets in ``-o DIR``."""
    if source == "-":
        return "stdin"
    path = Path(source.rstrip("/\\") or source)
    return path.stem if path.suffix else path.name


def expand_inputs(inputs: Iterable[str]) -> list[tuple[str, str | None]]:
    """Expand glob patterns the shell left alone.

    Returns
    -------
    list of (path, error)
        ``error`` is set for a pattern that matches nothing.
    """
    expanded: list[tuple[str, str | None]] = []
    for item in inputs:
        if item != "-" and not os.path.exists(item) and glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                expanded.append((item, f"{item}: no file matches this pattern"))
            expanded.extend((match, None) for match in matches)
        else:
            expanded.append((item, None))
    return expanded


def _looks_like_directory(output: str) -> bool:
    return os.path.isdir(output) or output.endswith(("/", os.sep))


def output_format(target: str, to_format: str | None) -> str:
    """The format of the output file ``target`` (``-`` = standard output)."""
    if target == "-" and stdout_closed:
        from spikerates.errors import ParameterError

        raise ParameterError(
            "output", "standard output is closed; write to a file with -o FILE"
        )
    if target == "-":
        fmt = to_format or "csv"
        if fmt not in ("csv", "tsv") and _stdout_is_terminal():
            raise click.UsageError(
                f"refusing to write {fmt} (binary) to a terminal; "
                "redirect standard output or use -o FILE"
            )
        return fmt
    from spikerates import io

    try:
        return io.detect_format(target, to_format, for_writing=True)
    except SpikeratesError as exc:
        message = describe_error(exc)
        if "--to" not in message:
            message += " (use --to FORMAT)"
        raise click.BadParameter(message, param_hint="'-o' / '--output'") from None


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def plan_jobs(
    inputs: Iterable[str],
    output: str,
    to_format: str | None,
    plot_path: str | None = None,
) -> list[Job]:
    """Decide where each input's output goes.

    One input goes to ``output`` (a file, ``-``, or an existing directory or
    one ending with ``/``). Several inputs need ``-o DIR``; each writes
    ``DIR/<input stem>.<ext>`` with ``<ext>`` from ``--to`` (default npz).
    """
    expanded = expand_inputs(inputs)
    sources = [path for path, _ in expanded]
    batch = len(expanded) > 1
    if batch and "-" in sources:
        raise click.UsageError("'-' (standard input) cannot be one of several inputs")
    if "-" in sources and _stdin_is_terminal():
        raise click.UsageError(
            "'-' reads standard input, which is a terminal; pipe spikes in or "
            "name a file"
        )
    to_dir = output != "-" and (batch or _looks_like_directory(output))
    if batch and output == "-":
        raise click.UsageError(
            f"{len(expanded)} inputs need an output directory: -o DIR"
        )
    if to_dir:
        from spikerates import io, names

        known_suffix = names.format_for_extension(Path(output).suffix) is not None
        if (os.path.exists(output) and not os.path.isdir(output)) or (
            known_suffix and not os.path.isdir(output)
        ):
            raise click.BadParameter(
                f"{len(expanded)} inputs need a directory, got file {output!r}",
                param_hint="'-o' / '--output'",
            )
        fmt = to_format or "npz"
        ext = io.extension_for(fmt)
        stems = [input_stem(s) for s in sources]
        duplicates = sorted({s for s in stems if stems.count(s) > 1})
        if duplicates:
            raise click.UsageError(
                "several inputs would write the same output "
                f"{os.path.join(output, duplicates[0] + ext)!r}"
            )
        jobs = [
            Job(
                src, os.path.join(output, stem + ext), fmt, error=err, in_directory=True
            )
            for (src, err), stem in zip(expanded, stems, strict=True)
        ]
    else:
        fmt = output_format(output, to_format)
        (src, err) = expanded[0]
        jobs = [Job(src, output, fmt, error=err)]
    if plot_path is not None:
        for job in jobs:
            job.plot_path = (
                _suffixed(plot_path, input_stem(job.source)) if batch else plot_path
            )
    for job in jobs:
        check_outputs_are_not_inputs(
            {"the output": job.target, "--plot": job.plot_path},
            {"its input": job.source},
        )
    return jobs


def check_outputs_are_not_inputs(
    outputs: dict[str, str | None], inputs: dict[str, str | None]
) -> None:
    """A usage error when an output is an input, or two outputs are one file.

    Parameters
    ----------
    outputs, inputs : dict of what to path
        E.g. ``{"-o": "out.h5", "--plot": "fig.png"}`` and
        ``{"its input": "in.csv", "--neurons": "neurons.csv"}``; ``-`` and
        None are skipped.
    """
    taken = [(name, path) for name, path in inputs.items() if path not in (None, "-")]
    for flag, path in outputs.items():
        if path is None or path == "-":
            continue
        for name, other in taken:
            if _same_file(path, other):
                raise click.UsageError(f"{flag} {path!r} would overwrite {name}")
        taken.append((f"the output of {flag}", path))


def _same_file(a: str, b: str) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _suffixed(path: str, stem: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{stem}{p.suffix}"))


# ----------------------------------------------------------------------------
# Running: the batch engines of :mod:`spikerates.batch`

#: Where the batch options of the running command are kept (``ctx.meta``).
BATCH_META = "spikerates.batch"


@dataclass
class BatchOptions:
    """``--engine``, ``--scheduler``, ``--shard``, ``--skip-existing``, ``--log``.

    Filled by the options' callbacks (see
    :func:`spikerates.cli.options.batch_options`) and read by
    :func:`run_jobs`; ``--jobs`` reaches :func:`run_jobs` as its argument.
    """

    engine: str | None = None
    scheduler: str | None = None
    shard: str | None = None
    skip_existing: bool = False
    log: str | None = None


def batch_options(ctx: click.Context | None = None) -> BatchOptions:
    """The :class:`BatchOptions` of the running command (created if missing)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return BatchOptions()
    return ctx.meta.setdefault(BATCH_META, BatchOptions())


def run_jobs(task: Task, jobs: list[Job], n_jobs: int = 1) -> None:
    """Run ``task`` over ``jobs`` and report; exit 1 if any failed.

    Each job gets its own verdict: its notes, and on failure one line
    naming its input. The batch options of the command choose the engine
    (``n_jobs`` local worker processes, or Dask), the shard of the inputs,
    whether up-to-date outputs are skipped, and a JSON-lines log. A single
    local job draws its own progress bar (when standard error is a
    terminal); several jobs share one bar over the inputs. An interrupt
    stops the batch at once with exit status 128 + the signal's number.
    """
    from spikerates import batch
    from spikerates.errors import ParameterError

    config = settings()
    options = batch_options()
    engine = options.engine or ("dask" if options.scheduler else "local")
    if options.shard is not None:
        jobs = batch.shard(jobs, options.shard, key=lambda job: job.source)
        if not jobs:
            if not config.quiet:
                click.echo(
                    f"{PROG}: note: shard {options.shard} has no inputs", err=True
                )
            return
    if engine == "dask":
        _check_dask_jobs(jobs)
    single = len(jobs) == 1 and engine == "local"
    progress = single and stderr_is_terminal() and not config.quiet
    items = [_item(job, absolute=engine == "dask") for job in jobs]
    bar = None if single else _progress_bar(len(items), config)
    counts = {"failed": 0, "cancelled": 0, "skipped": 0}

    def show(record: batch.Record) -> None:
        if record.status in counts:
            counts[record.status] += 1
        if record.status != "cancelled":
            _report_record(record, config, bar)

    try:
        batch.run_batch(
            functools.partial(run_batch_job, task, progress),
            items,
            engine=engine,
            jobs=n_jobs,
            scheduler=options.scheduler,
            skip_existing=options.skip_existing,
            log=options.log,
            on_record=show,
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.close()
        signum = getattr(exc, "signum", signal.SIGINT)
        left = counts["cancelled"]
        what = ""
        if left and len(items) > 1:
            what = f"; {left} of {len(items)} inputs not processed"
        name = signal.Signals(signum).name
        click.echo(f"{PROG}: interrupted by {name}{what}", err=True)
        raise SystemExit(128 + signum) from None
    finally:
        if bar is not None:
            bar.close()
    if counts["skipped"] and not config.quiet:
        click.echo(
            f"{PROG}: note: {counts['skipped']} of {len(items)} inputs skipped: "
            "their outputs are newer (--skip-existing)",
            err=True,
        )
    if counts["failed"]:
        raise SystemExit(1)


def run_batch_job(task: Task, progress: bool, item: Any) -> Any:
    """Run ``task`` on the job of a batch item (in a worker process).

    Returns a :class:`spikerates.batch.Result` carrying the job's verdict.
    """
    from spikerates.batch import Result

    job = item.payload
    outcome = run_job(task, job, progress)
    # Messages name the paths as the user gave them, not as the worker got
    # them (absolute, for Dask).
    given = {job.source: item.input, job.target: item.output}
    given = {k: v for k, v in given.items() if k and v and k != v}

    def as_given(text: str | None) -> str | None:
        if text is None:
            return None
        for path, name in given.items():
            text = text.replace(path, name)
        return text

    return Result(
        units=outcome.units,
        spikes=outcome.spikes,
        error=as_given(outcome.error),
        trace=outcome.trace,
        internal=outcome.internal,
        notes=tuple(as_given(note) for note in outcome.notes),
        info=tuple(as_given(line) for line in outcome.info),
    )


def _item(job: Job, *, absolute: bool) -> Any:
    """The batch item of ``job``; Dask workers get absolute paths."""
    import dataclasses

    from spikerates.batch import Item

    payload = job
    if absolute:

        def full(path: str | None) -> str | None:
            return None if path in (None, "-") else os.path.abspath(path)

        payload = dataclasses.replace(
            job,
            source=full(job.source),
            target=full(job.target),
            plot_path=full(job.plot_path),
        )
    extra = (job.plot_path,) if job.plot_path is not None else ()
    return Item(job.source, job.target, extra_outputs=extra, payload=payload)


def _check_dask_jobs(jobs: list[Job]) -> None:
    for job in jobs:
        if job.source == "-" or job.target == "-":
            raise click.UsageError(
                "Dask workers cannot read standard input or write standard "
                "output; use --engine local, or files"
            )


def _progress_bar(total: int, config: Settings):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="file",
        file=sys.stderr,
        disable=config.quiet or not stderr_is_terminal(),
        leave=False,
    )


def _report_record(record: Any, config: Settings, bar) -> None:
    lines: list[str] = []
    if record.status == "skipped" and config.verbose:
        name = display_name(record.input)
        lines.append(f"{PROG}: {name}: skipped, its output is up to date")
    if not config.quiet:
        lines += [f"{PROG}: note: {note}" for note in record.notes]
    if config.verbose:
        lines += [f"{PROG}: {line}" for line in record.info]
    if record.error is not None:
        if config.verbose and record.trace:
            lines.append(record.trace.rstrip("\n"))
        lines.append(
            error_line(record.error, internal=record.internal, verbose=config.verbose)
        )
    for line in lines:
        if bar is not None and not bar.disable:
            bar.write(printable(line), file=sys.stderr)
        else:
            echo_line(line)
    if bar is not None:
        bar.update(1)
