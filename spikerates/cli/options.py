"""Option groups and parameter types shared by the commands.

Only ``click`` and :mod:`spikerates.names` (which imports nothing) are
imported here, so that ``spikerates --help`` stays instant.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import click

from spikerates.names import INPUT_KINDS, READ_FORMATS, VALUE_MODES, WRITE_FORMATS

FC = Callable[..., Any]


# ----------------------------------------------------------------------------
# Parameter types


class FiniteFloat(click.FloatRange):
    """A finite number (NaN and infinities are refused), optionally bounded."""

    name = "float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class RangeType(click.ParamType):
    """``LOW:HIGH`` (uniform draws from ``[LOW, HIGH)``) or one value.

    Parameters
    ----------
    low, high : float, optional
        Bounds every value must respect.
    low_open, high_open : bool
        Whether the bounds themselves are excluded. An excluded ``high`` is
        still accepted as the HIGH of a range, whose draws never reach it
        (as nengo's ``Uniform(-1, 1)``); a single value must be below it.
    what : str
        What the values are, for messages (``intercepts``).
    """

    name = "LOW:HIGH"

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        what: str = "values",
    ) -> None:
        self.low = low
        self.high = high
        self.low_open = low_open
        self.high_open = high_open
        self.what = what

    def convert(self, value, param, ctx):
        if isinstance(value, tuple | float | int):
            return value
        text = str(value).strip()
        parts = text.split(":")
        if len(parts) > 2:
            self.fail(f"expected LOW:HIGH or one number, got {text!r}", param, ctx)
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            self.fail(f"expected LOW:HIGH or one number, got {text!r}", param, ctx)
        for number in numbers:
            if not math.isfinite(number):
                self.fail(f"{number} is not a finite number", param, ctx)
        if len(numbers) == 1:
            self._check_bounds(numbers[0], text, param, ctx)
            return numbers[0]
        low, high = numbers
        if low > high:
            self.fail(f"LOW must not exceed HIGH, got {text!r}", param, ctx)
        self._check_bounds(low, text, param, ctx)
        # Draws from [LOW, HIGH) never reach HIGH: an excluded bound is fine.
        self._check_bounds(high, text, param, ctx, draws_below=low < high)
        return (low, high)

    def _check_bounds(
        self, number: float, text: str, param, ctx, draws_below: bool = False
    ) -> None:
        if self.low is not None:
            bad = number <= self.low if self.low_open else number < self.low
            if bad:
                sign = "above" if self.low_open else "at least"
                self.fail(
                    f"{self.what} must be {sign} {self.low:g}, got {text}",
                    param,
                    ctx,
                )
        if self.high is not None:
            if self.high_open and not draws_below:
                bad = number >= self.high
            else:
                bad = number > self.high
            if bad:
                sign = "below" if self.high_open else "at most"
                self.fail(
                    f"{self.what} must be {sign} {self.high:g}, got {text}",
                    param,
                    ctx,
                )


class SizeType(click.ParamType):
    """A number of bytes: ``4GiB``, ``500MB``, ``2e9``, or ``none`` (no limit).

    KiB/MiB/GiB/TiB (and K/M/G/T) are powers of 1024, kB/MB/GB/TB powers
    of 1000. Converts to an int, or None for ``none``.
    """

    name = "SIZE"
    _UNITS = {
        "": 1,
        "b": 1,
        "k": 1 << 10,
        "kib": 1 << 10,
        "kb": 10**3,
        "m": 1 << 20,
        "mib": 1 << 20,
        "mb": 10**6,
        "g": 1 << 30,
        "gib": 1 << 30,
        "gb": 10**9,
        "t": 1 << 40,
        "tib": 1 << 40,
        "tb": 10**12,
    }

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "none":
            return None
        number = text.rstrip("kmgtib")
        unit = text[len(number) :]
        try:
            size = float(number) * self._UNITS[unit]
        except (KeyError, ValueError):
            self.fail(
                f"expected a size such as 4GiB, 500MB or 1e9 (bytes), or none; "
                f"got {value!r}",
                param,
                ctx,
            )
        if not math.isfinite(size) or size < 0:
            self.fail(f"expected a size of 0 bytes or more, got {value!r}", param, ctx)
        return int(size)


class UnitListType(click.ParamType):
    """A comma-separated list of unit ids, kept as strings."""

    name = "ID,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        ids = tuple(part.strip() for part in str(value).split(","))
        if not ids or any(not part for part in ids):
            self.fail(f"expected a comma-separated list of ids, got {value!r}")
        return ids


class InputSignalType(click.ParamType):
    """``KIND:ARGS`` (constant, ramp, sine, white) or a file with columns t, x.

    Converts to ``("spec", text)`` or ``("file", path)``; the spec's numbers
    are checked by the library when the signal is made.
    """

    name = "KIND:ARGS|FILE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value)
        kind = text.split(":", 1)[0]
        if kind in INPUT_KINDS and not os.path.exists(text):
            return ("spec", text)
        if os.path.exists(text):
            return ("file", text)
        self.fail(
            f"{text!r} is neither an existing file nor a signal "
            f"({', '.join(k + ':...' for k in INPUT_KINDS)})",
            param,
            ctx,
        )


class TauType(click.ParamType):
    """A kernel time constant in seconds (> 0), or ``auto``."""

    name = "SECONDS|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        try:
            tau = float(text)
        except ValueError:
            self.fail(f"{value!r}: expected seconds > 0 or auto", param, ctx)
        if not (0 < tau < math.inf):
            self.fail(f"{value!r}: must be a number of seconds > 0", param, ctx)
        return tau


RANGE = RangeType()
SIZE = SizeType()
TAU = TauType()
UNIT_LIST = UnitListType()
INPUT_SIGNAL = InputSignalType()
#: A finite number.
FINITE = FiniteFloat()
#: A finite number > 0 (seconds, rates...).
POSITIVE = FiniteFloat(min=0.0, min_open=True)
#: A finite number >= 0.
NON_NEGATIVE = FiniteFloat(min=0.0)


# ----------------------------------------------------------------------------
# Option groups (decorators)


def stack_options(options: list[FC]) -> FC:
    """One decorator applying ``options`` in the order they are listed."""

    def decorator(f: FC) -> FC:
        for option in reversed(options):
            f = option(f)
        return f

    return decorator


def inputs_argument(f: FC) -> FC:
    """``INPUT...``: paths, ``-`` for standard input, or glob patterns."""
    return click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)(f)


#: Default of ``--max-output-size``.
MAX_OUTPUT_SIZE = "4GiB"


def output_options(default_to_help: str, *, batch: bool = True) -> FC:
    """``-o/--output``, ``--to`` and ``--max-output-size``; ``batch`` allows
    ``-o DIR``."""
    where = "Output file, or '-' for standard output"
    if batch:
        where = (
            "Output file, '-' for standard output, or a directory (required "
            "with several inputs) receiving <input stem>.<ext>"
        )
    where += (
        ". Outputs (and the --plot figure) appear only once everything has "
        "succeeded. On standard output CSV/TSV go straight to a pipe; HDF5 "
        "and NPZ are assembled in a temporary file first (at most "
        "--max-output-size) and printed at the end."
    )
    return stack_options(
        [
            click.option(
                "-o",
                "--output",
                default="-",
                show_default=True,
                metavar="OUT",
                help=where,
            ),
            click.option(
                "--to",
                "to_format",
                type=click.Choice(WRITE_FORMATS),
                default=None,
                show_default=True,
                help="Output format. Default: from the output's extension; "
                f"{default_to_help}",
            ),
            click.option(
                "--max-output-size",
                "max_output_bytes",
                type=SIZE,
                default=MAX_OUTPUT_SIZE,
                show_default=True,
                help="Refuse, before writing anything, an output larger than "
                "this (e.g. 500MB, 20GiB, none).",
            ),
        ]
    )


def _store_batch_option(ctx: click.Context, param: click.Parameter, value: Any):
    from spikerates.cli.runner import batch_options as current

    if param.name == "shard" and value is not None:
        from spikerates.batch import parse_shard
        from spikerates.errors import ParameterError

        try:
            parse_shard(value)
        except ParameterError as exc:
            raise click.BadParameter(exc.message) from None
    setattr(current(ctx), param.name, value)
    return value


def batch_options() -> list[FC]:
    """How several inputs are run: ``--jobs``, ``--engine``, ``--scheduler``,
    ``--shard``, ``--skip-existing``, ``--log``.

    ``--jobs`` is passed to the command; the others are kept for
    :func:`spikerates.cli.runner.run_jobs`
    (:func:`spikerates.cli.runner.batch_options`).
    """
    from spikerates.batch import ENGINES

    hidden = {"expose_value": False, "callback": _store_batch_option}
    return [
        click.option(
            "--jobs",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Process this many inputs at once (worker processes on this "
            "machine, also those of a local Dask cluster).",
        ),
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default=None,
            help="Where the inputs are processed: 'local', a pool of --jobs "
            "processes; 'dask', one Dask task per input, on --scheduler or a "
            "local Dask cluster of --jobs processes. [default: local; dask "
            "with --scheduler]",
            **hidden,
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            default=None,
            help="A running Dask scheduler (tcp://host:8786) or its scheduler "
            "file (.json); inputs and outputs must be at the same paths on "
            "its workers.",
            **hidden,
        ),
        click.option(
            "--shard",
            metavar="I/N|slurm",
            default=None,
            help="Process only the I-th of N slices of the sorted inputs; "
            "'slurm' takes I and N from a SLURM job array's environment.",
            **hidden,
        ),
        click.option(
            "--skip-existing",
            is_flag=True,
            default=False,
            help="Skip inputs whose outputs exist and are newer than the input "
            "(resume a batch).",
            **hidden,
        ),
        click.option(
            "--log",
            metavar="FILE.jsonl",
            type=click.Path(dir_okay=False),
            default=None,
            help="Append one JSON line per input (input, output, status, "
            "seconds, units, spikes, error).",
            **hidden,
        ),
    ]


def source_options() -> list[FC]:
    """``--id-column``, ``--segment`` and ``--allow-external-data``: how the
    units of a file are named and found, for every command reading spikes."""
    return [
        click.option(
            "--id-column",
            default=None,
            metavar="COL",
            help="Column of the units table naming the units. Default: "
            "unit_name or _name when present and unique, else the row id.",
        ),
        click.option(
            "--segment",
            type=click.IntRange(min=0),
            default=None,
            metavar="N",
            help="Segment of a multi-segment SpikeInterface sorting.",
        ),
        click.option(
            "--allow-external-data",
            is_flag=True,
            help="Follow HDF5 external links, external storage and virtual "
            "datasets, which read other files than INPUT (refused by default).",
        ),
    ]


def spike_input_options(*, chunking: bool) -> FC:
    """Options shared by the commands that read spikes."""
    options = [
        click.option(
            "--from",
            "from_format",
            type=click.Choice(READ_FORMATS),
            default=None,
            show_default=True,
            help="Input format. Default: from the extension, or on a pipe from "
            "the content (HDF5 or zip signature, else text).",
        ),
        click.option(
            "--dt",
            type=POSITIVE,
            default=None,
            show_default=True,
            help="Bin width in seconds when events are put on a grid "
            "[default: 0.001]; with dense input it must agree with the file's t.",
        ),
        click.option(
            "--t-start",
            type=FINITE,
            default=None,
            show_default=True,
            help="Start of the window in seconds (the first grid time is "
            "t-start + dt). Default: 0, or just below the earliest spike.",
        ),
        click.option(
            "--t-stop",
            type=FINITE,
            default=None,
            show_default=True,
            help="End of the window in seconds (the last grid time). Default: "
            "the first grid time at or after the last spike.",
        ),
        click.option(
            "--units",
            type=UNIT_LIST,
            default=None,
            show_default=True,
            help="Keep only these unit ids (outputs keep the source's unit order).",
        ),
        click.option(
            "--label",
            "labels",
            multiple=True,
            show_default=True,
            help="Keep only units with this label (Phy's cluster_group, e.g. "
            "good); repeat for several.",
        ),
        click.option(
            "--dataset",
            default=None,
            show_default=True,
            metavar="PATH",
            help="HDF5 path of the spikes when the file holds several.",
        ),
        *source_options()[:2],
        click.option(
            "--values",
            type=click.Choice(VALUE_MODES),
            default="auto",
            show_default=True,
            help="Dense input values: spike counts per bin, or amplitude 1/dt "
            "per spike; auto tells them apart.",
        ),
        source_options()[2],
        *batch_options(),
        plot_option("With several inputs, FIG's name gets '-<input stem>' appended."),
    ]
    if chunking:
        options += [
            click.option(
                "--chunk-duration",
                type=POSITIVE,
                default=60.0,
                show_default=True,
                help="Seconds of data read, estimated and written at a time "
                "(bounds memory).",
            ),
            click.option(
                "--dtype",
                type=click.Choice(("float64", "float32")),
                default="float64",
                show_default=True,
                help="Type of the written rates (computation is float64).",
            ),
        ]
    return stack_options(options)


def exact_and_epochs_options(default_exact: str) -> FC:
    """``--exact/--binned`` and ``--epochs FILE`` of the rate estimators."""
    return stack_options(
        [
            click.option(
                "--exact/--binned",
                "exact",
                default=None,
                help="Spike times: use them as they are (--exact), or bin them "
                f"on the grid first (--binned, the reference's semantics). "
                f"Default: {default_exact}. Dense input is always binned.",
            ),
            click.option(
                "--epochs",
                "epochs_file",
                default=None,
                metavar="FILE",
                help="Intervals where the units count as observed: a CSV/TSV "
                "with columns start,stop (seconds) or an NWB file's "
                "TimeIntervals table; rates are NaN outside them.",
            ),
        ]
    )


def neuron_options(models: tuple[str, ...], default_model: str) -> FC:
    """Model, its parameters, and the population (seeded or from a file).

    ``--sigma`` is offered only when one of ``models`` is softlif.
    """
    options = [
        click.option(
            "--model",
            type=click.Choice(models),
            default=default_model,
            show_default=True,
            help="Neuron model.",
        ),
        click.option(
            "--tau-rc",
            type=POSITIVE,
            default=0.02,
            show_default=True,
            help="Membrane time constant in seconds.",
        ),
        click.option(
            "--tau-ref",
            type=NON_NEGATIVE,
            default=0.002,
            show_default=True,
            help="Refractory period in seconds.",
        ),
        click.option(
            "--amplitude",
            type=POSITIVE,
            default=1.0,
            show_default=True,
            help="Scale of the output (rates, and spikes of amplitude/dt).",
        ),
    ]
    if "softlif" in models:
        options.append(
            click.option(
                "--sigma",
                type=POSITIVE,
                default=1.0,
                show_default=True,
                help="SoftLIF smoothing around the threshold.",
            )
        )
    return stack_options(
        options
        + [
            click.option(
                "--min-voltage",
                type=FiniteFloat(max=0.0),
                default=0.0,
                show_default=True,
                help="Lower bound of the membrane voltage (spiking models).",
            ),
            click.option(
                "--n-neurons",
                type=click.IntRange(min=1),
                default=10,
                show_default=True,
                help="Number of neurons of the seeded population.",
            ),
            click.option(
                "--max-rates",
                type=RangeType(low=0.0, low_open=True, what="max rates"),
                default="200:400",
                show_default=True,
                help="Firing rate in Hz at x = encoder: LOW:HIGH (uniform draws "
                "from [LOW, HIGH)) or one value; below 1/tau-ref.",
            ),
            click.option(
                "--intercepts",
                type=RangeType(high=1.0, high_open=True, what="intercepts"),
                default="-1:0.9",
                show_default=True,
                help="x at which firing starts: LOW:HIGH (uniform draws from "
                "[LOW, HIGH), so -1:1 is fine) or one value below 1.",
            ),
            click.option(
                "--encoders",
                type=click.Choice(("random", "positive")),
                default="random",
                show_default=True,
                help="Encoders: random = +1 or -1 with equal probability.",
            ),
            click.option(
                "--seed",
                type=int,
                default=None,
                show_default=True,
                help="Seed of the population draws (and of random inputs and "
                "initial voltages). Default: fresh entropy.",
            ),
            click.option(
                "--neurons",
                "neurons_file",
                default=None,
                metavar="FILE",
                help="Per-neuron table (CSV, NPZ or HDF5) with columns gain,bias "
                "or max_rate,intercept, and optionally encoder; replaces the "
                "seeded population.",
            ),
        ]
    )


FIGURE_EXTENSIONS = (".png", ".svg", ".pdf")


def _check_figure(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is not None and os.path.splitext(value)[1].lower() not in (
        FIGURE_EXTENSIONS
    ):
        raise click.BadParameter(
            f"{value!r}: a figure file must end in .png, .svg or .pdf",
            ctx=ctx,
            param=param,
        )
    return value


def plot_option(what: str) -> FC:
    """``--plot FIG``: also save a figure, its format from the extension."""
    return click.option(
        "--plot",
        "plot_path",
        default=None,
        metavar="FIG",
        callback=_check_figure,
        help=f"Also save a figure (PNG, SVG or PDF by extension). {what}",
    )


POPULATION_OPTIONS = ("n_neurons", "max_rates", "intercepts", "encoders")


def explicit(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
