"""Everything the command modules share: options, settings, reading, models.

Command modules import from here only, never from each other. Only
``click`` and the standard library are imported at module level; numpy and
the library modules are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from spikerates.cli.options import (
    FINITE,
    INPUT_SIGNAL,
    NON_NEGATIVE,
    POSITIVE,
    RANGE,
    TAU,
    UNIT_LIST,
    RangeType,
    exact_and_epochs_options,
    inputs_argument,
    neuron_options,
    output_options,
    plot_option,
    source_options,
    spike_input_options,
    stack_options,
)
from spikerates.cli.runner import (
    Job,
    Report,
    Settings,
    check_outputs_are_not_inputs,
    echo_line,
    output_format,
    pass_settings,
    plan_jobs,
    run_jobs,
    settings,
    stderr_is_terminal,
)
from spikerates.names import READ_FORMATS, VALUE_MODES

__all__ = [
    "DEFAULT_DT",
    "FINITE",
    "TABLE_FORMATS",
    "analysis_input_options",
    "note",
    "read_analysis_input",
    "table_output_options",
    "INPUT_SIGNAL",
    "NON_NEGATIVE",
    "POSITIVE",
    "RANGE",
    "TAU",
    "UNIT_LIST",
    "Job",
    "RangeType",
    "ReadOptions",
    "Report",
    "Settings",
    "check_output_size",
    "check_outputs_are_not_inputs",
    "echo_line",
    "exact_and_epochs_options",
    "events_output_bytes",
    "check_window",
    "staged_outputs",
    "inputs_argument",
    "make_neuron",
    "make_population",
    "model_attrs",
    "neuron_options",
    "option_errors",
    "output_format",
    "output_options",
    "pass_settings",
    "plan_jobs",
    "plot_option",
    "progress_bar",
    "read_source",
    "run_jobs",
    "settings",
    "spike_input_options",
    "window_note",
]

#: Bin width in seconds used to put events on a grid when --dt is not given.
DEFAULT_DT = 0.001

#: Population options that ``--neurons FILE`` replaces.
POPULATION_OPTIONS = ("n_neurons", "max_rates", "intercepts", "encoders")


# ----------------------------------------------------------------------------
# Library errors about options


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@contextlib.contextmanager
def option_errors(ctx: click.Context | None = None) -> Iterator[None]:
    """Turn a library ``ParameterError`` naming one of the command's options
    into a usage error of that option (exit 2); others pass through."""
    from spikerates.errors import ParameterError

    try:
        yield
    except ParameterError as exc:
        ctx = ctx or click.get_current_context()
        flag = _option_flag(exc.name)
        flags = {opt for param in ctx.command.params for opt in param.opts}
        if flag in flags:
            raise click.BadParameter(
                exc.message, ctx=ctx, param_hint=f"'{flag}'"
            ) from None
        raise


def explicit(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


# ----------------------------------------------------------------------------
# Outputs: checked before any work, committed together after all of it


def resolve_output(target: str) -> str:
    """Where ``target`` really is: a symbolic link's destination (so the link
    stays and its file is replaced), ``-`` as it is."""
    if target == "-" or not os.path.islink(target):
        return target
    return os.path.realpath(target)


def _stage(target: str) -> str:
    """Create an empty hidden file beside ``target`` to write it into."""
    from spikerates.errors import SpikeDataError
    from spikerates.io.atomic import temp_path

    if os.path.isdir(target):
        raise SpikeDataError("is a folder; give an output file name", path=target)
    if os.path.exists(target) and not os.stat(target).st_mode & 0o222:
        raise SpikeDataError(
            "is read-only and is not replaced; remove it or write elsewhere",
            path=target,
        )
    return temp_path(target)


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def staged_outputs(*targets: str | None) -> Iterator[list[str | None]]:
    """Write a run's outputs (data, figure) so that they appear together.

    Yields, for each target, the path to write it to: a hidden file beside
    the target (``-`` and None are passed through). Only when the block
    succeeds are they renamed onto their targets, one after the other; on
    any error or signal they are all removed and the targets are untouched.
    A symbolic link keeps pointing where it did: its destination is
    replaced. A read-only target, a missing folder or a folder without
    write permission is refused before any work.
    """
    from spikerates.errors import SpikeDataError

    staged: list[tuple[str, str]] = []
    paths: list[str | None] = []
    try:
        for target in targets:
            if target is None or target == "-":
                paths.append(target)
                continue
            real = resolve_output(target)
            path = _stage(real)
            staged.append((path, real))
            paths.append(path)
        try:
            yield paths
        except SpikeDataError as exc:
            # An error about a staged file is about the output it stands for.
            real_of = dict(staged)
            if exc.path in real_of:
                exc.path = real_of[exc.path]
                exc.args = (exc._format(),)
            raise
        for path, real in staged:
            _commit(path, real)
    finally:
        for path, _ in staged:
            _discard(path)


def _commit(path: str, target: str) -> None:
    from spikerates.errors import SpikeDataError

    try:
        os.replace(path, target)
    except OSError as exc:
        raise SpikeDataError(
            f"cannot write: {exc.strerror or exc}", path=target
        ) from None


def check_output_size(
    n_bytes: float, limit: int | None, *, what: str = "the output", remedies: str = ""
) -> None:
    """Refuse an output of ``n_bytes`` above ``limit`` (``--max-output-size``).

    Raises
    ------
    ResourceLimitError
        Naming the size, the limit and the remedies.
    """
    from spikerates.errors import ResourceLimitError, format_bytes

    if limit is None or n_bytes <= limit:
        return
    hint = f"; {remedies}" if remedies else ""
    raise ResourceLimitError(
        f"{what} would take {format_bytes(n_bytes)}, above the limit of "
        f"{format_bytes(limit)} (raise it with --max-output-size){hint}"
    )


def events_output_bytes(trains: Any, fmt: str) -> int:
    """About how many bytes spike times take written in ``fmt``: 8 per
    spike in binary formats, about 24 per spike as ``unit,time`` text."""
    per_spike = 24 if fmt in ("csv", "tsv") else 8
    return per_spike * int(trains.n_spikes) + 16 * int(trains.n_units)


# ----------------------------------------------------------------------------
# Progress


def progress_bar(total: int, *, enabled: bool | None = None, unit: str = "step"):
    """A tqdm bar on standard error, or None when it would not be drawn
    (``-q``, or standard error is not a terminal)."""
    if enabled is None:
        enabled = stderr_is_terminal() and not settings().quiet
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, unit=unit, file=click.get_text_stream("stderr"), leave=False
    )


# ----------------------------------------------------------------------------
# Reading spikes


@dataclass(frozen=True)
class ReadOptions:
    """How to read and select spikes (picklable, for worker processes)."""

    from_format: str | None = None
    dataset: str | None = None
    values: str = "auto"
    dt: float | None = None
    units: tuple[str, ...] | None = None
    labels: tuple[str, ...] = ()
    t_start: float | None = None
    t_stop: float | None = None
    id_column: str | None = None
    segment: int | None = None
    allow_external_data: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ReadOptions:
        """Collect the reading options of a command's keyword arguments."""
        return cls(
            from_format=options["from_format"],
            dataset=options["dataset"],
            values=options["values"],
            dt=options["dt"],
            units=options["units"],
            labels=tuple(options["labels"]),
            t_start=options["t_start"],
            t_stop=options["t_stop"],
            id_column=options.get("id_column"),
            segment=options.get("segment"),
            allow_external_data=options.get("allow_external_data", False),
        )


def check_window(options: dict[str, Any]) -> None:
    """--t-stop must come after --t-start (a usage error otherwise)."""
    t_start, t_stop = options["t_start"], options["t_stop"]
    if t_start is not None and t_stop is not None and t_stop <= t_start:
        raise click.BadParameter(
            f"must be greater than --t-start ({t_start:g} s)", param_hint="'--t-stop'"
        )


def read_source(
    path: str, read: ReadOptions, *, lazy: bool = False, report: Report | None = None
):
    """Read spikes and apply ``--label`` and ``--units``.

    With ``report``, say (with ``-v``) which table and id column the units
    came from, and note which spike table was chosen when the file held
    several.

    Returns
    -------
    SpikeTrains or DenseSpikes
        Dense input read with ``lazy=True`` must be closed by the caller.
    """
    from spikerates import io
    from spikerates.spiketrains import DenseSpikes

    data = io.read_spikes(
        path,
        read.from_format,
        dataset=read.dataset,
        values=read.values,
        dt=read.dt,
        lazy=lazy,
        id_column=read.id_column,
        segment=read.segment,
        allow_external_data=read.allow_external_data,
    )
    info = getattr(data, "info", None) or {}
    if report is not None and info:
        described = [
            f"{key} {info[key]}"
            for key in ("format", "layout", "table")
            if info.get(key)
        ]
        if info.get("id_column"):
            described.append(f"unit ids from column {info['id_column']}")
        if described:
            report.summary("read " + ", ".join(described))
        if info.get("choice"):
            report.note(str(info["choice"]))
    try:
        if read.labels:
            data = _select_labels(data, read.labels, path)
        if read.units is not None:
            data = data.select_units(list(read.units))
    except BaseException:
        if isinstance(data, DenseSpikes):
            data.close()
        raise
    return data


def _select_labels(data, labels: tuple[str, ...], path: str):
    from spikerates.errors import SpikeDataError

    present = getattr(data, "labels", None)
    if present is None:
        raise SpikeDataError(
            "--label needs unit labels (a Phy folder with cluster_group.tsv or "
            "cluster_KSLabel.tsv); this input has none",
            path=path,
        )
    selected = data.select_labels(list(labels))
    if selected.n_units == 0:
        known = ", ".join(sorted({str(label) for label in present})) or "none"
        raise SpikeDataError(
            f"no unit has label {' or '.join(labels)} (labels: {known})",
            path=path,
            dataset="labels",
        )
    return selected


def window_note(report: Report, n_outside: int, t_start: float, t_stop: float):
    """Note how many spikes a window left out."""
    if n_outside:
        report.note(
            f"{n_outside} spikes outside the window "
            f"({t_start:g}, {t_stop:g}] s were left out"
        )


# ----------------------------------------------------------------------------
# Neuron models and populations (tuning, simulate)


def make_neuron(options: dict[str, Any]):
    """The neuron type named by ``--model`` with its parameters."""
    from spikerates.neurons import make_neuron_type

    with option_errors():
        return make_neuron_type(
            options["model"],
            tau_rc=options["tau_rc"],
            tau_ref=options["tau_ref"],
            amplitude=options["amplitude"],
            sigma=options.get("sigma", 1.0),
            min_voltage=options["min_voltage"],
        )


def make_population(ctx: click.Context, neuron_type, options: dict[str, Any]):
    """The population: from ``--neurons FILE`` or drawn from ``--seed``.

    A population option that cannot hold (e.g. a max rate above 1/tau-ref)
    is a usage error; a bad table file is a data error naming the file.
    """
    from spikerates import io, simulate
    from spikerates.errors import SpikeDataError

    path = options["neurons_file"]
    if path is not None:
        given = [name for name in POPULATION_OPTIONS if explicit(ctx, name)]
        if given:
            raise click.UsageError(
                f"--neurons FILE cannot be combined with {_option_flag(given[0])}"
            )
        table = io.read_table(path)
        try:
            return simulate.population_from_table(neuron_type, table)
        except SpikeDataError as exc:
            if exc.path is None:
                raise SpikeDataError(
                    exc.message, path=path, dataset=exc.dataset
                ) from exc
            raise
    with option_errors(ctx):
        return simulate.make_population(
            neuron_type,
            options["n_neurons"],
            max_rates=options["max_rates"],
            intercepts=options["intercepts"],
            encoders=options["encoders"],
            seed=options["seed"],
        )


def model_attrs(options: dict[str, Any]) -> dict[str, Any]:
    """Attributes describing the model, saved with NPZ/HDF5 outputs."""
    from spikerates.neurons import LIF, SoftLIFRate, make_neuron_type

    kind = type(make_neuron_type(options["model"]))
    attrs: dict[str, Any] = {
        "model": options["model"],
        "tau_rc": options["tau_rc"],
        "tau_ref": options["tau_ref"],
        "amplitude": options["amplitude"],
    }
    if issubclass(kind, SoftLIFRate):
        attrs["sigma"] = options["sigma"]
    if issubclass(kind, LIF):
        attrs["min_voltage"] = options["min_voltage"]
    if options["neurons_file"] is not None:
        attrs["neurons_file"] = options["neurons_file"]
    elif options["seed"] is not None:
        attrs["seed"] = options["seed"]
    return attrs


# ----------------------------------------------------------------------------
# Analysis commands (info, metrics, psth): spike times in, small tables out

#: Formats of per-unit tables (``--to`` of info and metrics).
TABLE_FORMATS = ("tsv", "csv", "json", "npz", "hdf5", "h5")


def table_output_options(default_to_help: str) -> Any:
    """``-o/--output`` (one file for all inputs) and ``--to`` of a table."""
    return stack_options(
        [
            click.option(
                "-o",
                "--output",
                default="-",
                show_default=True,
                metavar="OUT",
                help="Output file, or '-' for standard output.",
            ),
            click.option(
                "--to",
                "to_format",
                type=click.Choice(TABLE_FORMATS),
                default=None,
                help=f"Table format. Default: from the output's extension; "
                f"{default_to_help} on standard output.",
            ),
        ]
    )


def analysis_input_options(f: Any) -> Any:
    """Reading options of the analysis commands (no grid: they read spike
    times only). With ``--allow-external-data`` the whole command follows
    HDF5 external data (the spikes and any table it reads)."""
    import functools

    @functools.wraps(f)
    def command(*args: Any, **options: Any) -> Any:
        from spikerates.io.safety import allow_external_data

        with allow_external_data(bool(options.get("allow_external_data"))):
            return f(*args, **options)

    return stack_options(
        [
            click.option(
                "--from",
                "from_format",
                type=click.Choice(READ_FORMATS),
                default=None,
                help="Input format. Default: from the extension, or on a pipe "
                "from the content.",
            ),
            click.option(
                "--dataset",
                default=None,
                metavar="PATH",
                help="HDF5 path of the spikes when the file holds several.",
            ),
            click.option(
                "--units",
                type=UNIT_LIST,
                default=None,
                help="Keep only these unit ids.",
            ),
            click.option(
                "--label",
                "labels",
                multiple=True,
                help="Keep only units with this label (e.g. good); repeat for several.",
            ),
            click.option(
                "--t-start",
                type=float,
                default=None,
                help="Start of the recording window in seconds (default: the "
                "file's, else the first spike).",
            ),
            click.option(
                "--t-stop",
                type=float,
                default=None,
                help="End of the recording window in seconds (default: the "
                "file's, else the last spike).",
            ),
            click.option(
                "--values",
                type=click.Choice(VALUE_MODES),
                default="auto",
                show_default=True,
                help="Dense input values: spike counts per bin, or amplitude "
                "1/dt per spike.",
            ),
            *source_options(),
        ]
    )(command)


def read_analysis_input(path: str, options: dict[str, Any]):
    """Spike times of one input with ``--label``/``--units`` applied and the
    recording window set from ``--t-start``/``--t-stop``.

    Dense input is turned into spike times by row blocks (never held whole).
    """
    import dataclasses

    from spikerates.spiketrains import DenseSpikes, dense_to_events

    check_window(options)
    # No grid here (psth's --dt is its own bin width, not a reading option).
    read = ReadOptions.from_options({**options, "dt": None})
    data = read_source(path, read, lazy=True)
    if isinstance(data, DenseSpikes):
        dense = data
        try:
            data = dense_to_events(dense)
        finally:
            dense.close()
    changes = {
        name: options[name]
        for name in ("t_start", "t_stop")
        if options[name] is not None
    }
    return dataclasses.replace(data, **changes) if changes else data


def note(message: str) -> None:
    """A note on standard error, unless ``-q``."""
    if not settings().quiet:
        click.echo(f"spikerates: note: {message}", err=True)
