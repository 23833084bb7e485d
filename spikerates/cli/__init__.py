"""The ``spikerates`` command line.

Thin: each command parses its options, calls the library and writes the
result. numpy, h5py, scipy, matplotlib and the library modules are imported
inside the command bodies so that ``spikerates --help`` is instant.

Errors: click's own (usage, exit 2) are left to click; spikerates' error
types and ``OSError`` become one line on standard error; anything else is a
bug and is reported as one ``internal error`` line. Both exit 1, and ``-v``
adds the traceback.
"""

from __future__ import annotations

import signal
from typing import Any

import click

from spikerates import __version__
from spikerates.cli.events import events
from spikerates.cli.info import info
from spikerates.cli.metrics import metrics
from spikerates.cli.psth import psth
from spikerates.cli.rates import rates
from spikerates.cli.rates_count import count
from spikerates.cli.runner import (
    Settings,
    ensure_streams,
    is_broken_pipe,
    report_exception,
    settings,
    signals_interrupt,
    silence_stdout,
)
from spikerates.cli.simulate import simulate
from spikerates.cli.tuning import tuning

CONTEXT_SETTINGS = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 100,
}


class SpikeratesGroup(click.Group):
    """The top-level group: reports any exception of a command in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        with signals_interrupt():
            try:
                return super().invoke(ctx)
            except (click.exceptions.ClickException, click.exceptions.Exit):
                raise
            except (click.exceptions.Abort, SystemExit):
                raise
            except KeyboardInterrupt as exc:
                # Writers have removed their temporary files on the way out.
                signum = getattr(exc, "signum", signal.SIGINT)
                name = signal.Signals(signum).name
                click.echo(f"spikerates: interrupted by {name}", err=True)
                ctx.exit(128 + signum)
            except Exception as exc:
                if is_broken_pipe(exc):
                    # The reader is gone (``| head``): stop quietly.
                    silence_stdout()
                    ctx.exit(128 + signal.SIGPIPE)
                report_exception(exc, settings(ctx))
                ctx.exit(1)


@click.group(
    cls=SpikeratesGroup,
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=True,
    no_args_is_help=False,
)
@click.version_option(__version__, "--version", prog_name="spikerates")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print a summary of each output, and a traceback with any error.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Silence notes (e.g. spikes left out of the window) and progress bars.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    envvar="SPIKERATES_THREADS",
    show_default="the CPUs this process may run on",
    help="Threads for the whole run, shared between the processes of --jobs.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool, threads: int | None) -> None:
    """Spike trains in, firing rates out.

    Read spikes (HDF5/NWB, NPZ, CSV/TSV, Phy folders; '-' is standard input),
    convert them to events, estimate firing rates with kernel or ISI
    estimators, and evaluate or simulate LIF-family neuron models. Results go
    to standard output unless -o is given.

    \b
    Examples:
      spikerates events recording.nwb --to csv
      spikerates rates kernel recording.nwb -o rates.h5 --plot rates.png
      spikerates simulate --n-neurons 50 -o - | spikerates rates isi - --from csv
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q cannot be combined")
    ctx.obj = Settings(verbose=verbose, quiet=quiet)
    if threads is not None:
        import os

        from spikerates import threads as thread_count

        # Through the environment, so every worker process shares the count.
        os.environ[thread_count.THREADS_ENV] = str(threads)
        thread_count.configure(threads)
        if verbose:
            click.echo(f"spikerates: {thread_count.describe()}", err=True)
    if ctx.invoked_subcommand is None:
        # No command: the usage, and the exit status of a usage error.
        click.echo(ctx.get_help())
        ctx.exit(2)


cli.add_command(events)
rates.add_command(count)
cli.add_command(rates)
cli.add_command(tuning)
cli.add_command(simulate)
cli.add_command(info)
cli.add_command(metrics)
cli.add_command(psth)


def main() -> None:
    """Entry point of the ``spikerates`` console script.

    Exit status: 0 on success, 1 for an error, 2 for a usage error,
    128 + N when stopped by signal N (130 for Ctrl-C), 141 when the reader
    of standard output went away.
    """
    ensure_streams()
    try:
        cli.main(prog_name="spikerates")
    except SystemExit as stop:
        _exit_past_libhdf5(stop)
        raise


def _exit_past_libhdf5(stop: SystemExit) -> None:
    """End the process at once when libhdf5 failed to close a file it was
    writing (a disk that filled up during the run): its own cleanup at exit
    would crash. The error has been reported and the output removed."""
    import os
    import sys

    hdf5 = sys.modules.get("spikerates.io.hdf5")
    if hdf5 is None or not getattr(hdf5, "close_failed", False):
        return
    code = stop.code if isinstance(stop.code, int) else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code or 1)


__all__ = ["cli", "main"]
