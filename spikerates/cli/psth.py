"""``spikerates psth``: rates aligned to events, averaged over trials."""

from __future__ import annotations

import os
from typing import Any

import click

from spikerates.cli.common import (
    POSITIVE,
    TAU,
    analysis_input_options,
    note,
    option_errors,
    plot_option,
    read_analysis_input,
    settings,
)
from spikerates.names import KERNEL_KINDS

#: Output formats of a PSTH.
PSTH_FORMATS = ("npz", "hdf5", "h5", "nwb", "csv", "tsv")


class WindowType(click.ParamType):
    """``LOW:HIGH`` seconds relative to the event, LOW < HIGH."""

    name = "LOW:HIGH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        parts = text.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            self.fail(
                f"{value!r}: expected LOW:HIGH seconds, e.g. -0.5:1.0", param, ctx
            )
        if not low < high:
            self.fail(f"{value!r}: LOW must be below HIGH", param, ctx)
        return low, high


@click.command(
    epilog="""\b
Outputs (per group G, grid time M, unit N):
  NPZ/HDF5  t (M,), unit_ids (N,), groups (G,), mean, sem, ci_low, ci_high
            (G, M, N) in Hz, n_trials and n_dropped (G, N), event_times and
            event_groups (K,), tau (N,) for kernels; with --trials also
            trials (K, M, N), NaN where a trial was left out.
  NWB       the same arrays at the file's root; with --trials, the trials as
            a TimeSeries /processing/spikerates/trials, data (M, K, N), with
            its units in trials_units and events in trials_events.
  CSV/TSV   one row per group, unit and time: group, unit, t, mean, sem,
            ci_low, ci_high, n_trials.

\b
Examples:
  spikerates psth session.nwb --events trials --window -0.5:1.0 --dt 0.01 \\
      --group-by condition -o psth.h5 --plot psth.png
  spikerates psth sorting/phy --events stim.csv --window -0.2:0.5 \\
      --kind gauss --tau auto -o psth.npz
"""
)
@click.argument("input_path", metavar="INPUT")
@click.option(
    "--events",
    "events_spec",
    required=True,
    metavar="EVENTS|TABLE",
    help="A CSV/TSV/NPZ file of event times (a 'time' column and optional "
    "others), an NWB/HDF5 file (its /intervals/trials table), or the name of "
    "a TimeIntervals table in INPUT (e.g. trials).",
)
@click.option(
    "--window",
    type=WindowType(),
    required=True,
    help="Seconds around each event, LOW:HIGH (e.g. -0.5:1.0); a whole number "
    "of --dt bins.",
)
@click.option(
    "--dt",
    type=POSITIVE,
    default=0.01,
    show_default=True,
    help="Bin width (grid step) in seconds.",
)
@click.option(
    "--kind",
    type=click.Choice(KERNEL_KINDS, case_sensitive=False),
    default=None,
    help="Smooth with this kernel instead of counting in bins.",
)
@click.option(
    "--tau",
    type=TAU,
    default=None,
    help="Kernel time constant in seconds (gauss: 2 standard deviations), or "
    "auto: the optimal Gaussian bandwidth of each unit's superimposed trials "
    "(Shimazaki & Shinomoto 2010).",
)
@click.option(
    "--pool",
    is_flag=True,
    help="With --tau auto, one bandwidth for all units superimposed.",
)
@click.option(
    "--align-to",
    default=None,
    metavar="COLUMN",
    help="Column of the event times. Default: time, else start_time.",
)
@click.option(
    "--group-by",
    default=None,
    metavar="COLUMN",
    help="One PSTH per distinct value of this column (a condition).",
)
@click.option(
    "--ci",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the bootstrap band.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the trials.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the bootstrap.",
)
@click.option(
    "--trials",
    "keep_trials",
    is_flag=True,
    help="Also write the per-trial rates (NPZ/HDF5/NWB).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="OUT",
    help="Output file, or '-' for standard output.",
)
@click.option(
    "--to",
    "to_format",
    type=click.Choice(PSTH_FORMATS),
    default=None,
    help="Output format. Default: from the extension; csv on standard output.",
)
@plot_option("Mean rates with bands for a few units, and every unit's PSTH.")
@analysis_input_options
def psth(input_path: str, events_spec: str, **options: Any) -> None:
    """Align each unit's spikes to event times and average the rate over
    trials: mean (Hz), standard error, a bootstrap confidence band and the
    number of trials, per unit and condition.

    The grid is t[k] = LOW + (k+1) dt relative to each event. Binned: spikes
    in (t[k] - dt, t[k]] over dt. With --kind/--tau: the kernel rate of
    'rates kernel' at those times, using the spikes outside the window that
    the kernel reaches. A trial whose window leaves the recording or one of
    a unit's observation intervals is left out for that unit (a note says
    how many).
    """
    from spikerates.errors import ParameterError
    from spikerates.psth import compute_psth

    if options["kind"] is None and options["tau"] is not None:
        raise click.UsageError("--tau needs --kind (without one the PSTH is binned)")
    if options["kind"] is not None and options["tau"] is None:
        raise click.UsageError(
            f"--kind {options['kind']} needs --tau (seconds or auto)"
        )
    if options["pool"] and options["tau"] != "auto":
        raise click.UsageError("--pool goes with --tau auto")
    fmt = _output_format(options["output"], options["to_format"])
    if options["keep_trials"] and fmt in ("csv", "tsv"):
        raise click.UsageError("--trials needs an NPZ, HDF5 or NWB output")
    times, groups, n_events = _events(input_path, events_spec, options)
    trains = read_analysis_input(input_path, options)
    with option_errors():
        try:
            result = compute_psth(
                trains,
                times,
                options["window"],
                dt=options["dt"],
                kind=options["kind"],
                tau=options["tau"],
                groups=groups,
                ci=options["ci"],
                n_bootstrap=options["n_bootstrap"],
                seed=options["seed"],
                keep_trials=options["keep_trials"],
                pool_tau=options["pool"],
            )
        except ParameterError as exc:
            if exc.name == "window" and "whole number" in exc.message:
                raise click.BadParameter(exc.message, param_hint="'--window'") from None
            raise
    dropped = int(result.n_dropped.sum())
    if dropped:
        worst = int(result.n_dropped.sum(axis=0).max())
        note(
            f"{input_path}: {worst} of {n_events} trials left out for some units "
            f"({dropped} unit-trials in all): their window leaves the recording "
            "or an observation interval"
        )
    if result.tau is not None and settings().verbose:
        shown = ", ".join(
            f"{u}: {t:.4g} s"
            for u, t in zip(result.unit_ids.tolist(), result.tau, strict=True)
        )
        click.echo(f"spikerates: {input_path}: tau per unit: {shown}", err=True)
    _write(options["output"], fmt, result, input_path, events_spec)
    if options["plot_path"] is not None:
        from spikerates.plot_metrics import plot_psth

        plot_psth(result, options["plot_path"])


def _output_format(output: str, to_format: str | None) -> str:
    if to_format is not None:
        return "hdf5" if to_format == "h5" else to_format
    if output == "-":
        return "csv"
    ext = os.path.splitext(output)[1].lower()
    known = {
        ".npz": "npz",
        ".h5": "hdf5",
        ".hdf5": "hdf5",
        ".nwb": "nwb",
        ".csv": "csv",
        ".tsv": "tsv",
    }
    if ext not in known:
        raise click.BadParameter(
            f"{output!r}: cannot tell the format from the extension; use .npz, .h5, "
            ".nwb, .csv or .tsv, or give --to",
            param_hint="'-o'",
        )
    return known[ext]


def _events(input_path: str, spec: str, options: dict[str, Any]):
    """Event times and group labels from EVENTS (a file or a table in INPUT)."""
    import numpy as np

    from spikerates.errors import SpikeDataError
    from spikerates.io.unit_tables import read_events_table

    if os.path.exists(spec):
        source = spec
        columns = read_events_table(spec)
    else:
        source = input_path
        if input_path == "-" or not os.path.isfile(input_path):
            raise SpikeDataError(
                f"no events file {spec!r}, and the input is not an HDF5/NWB file "
                "that could hold a table of that name",
                path=input_path,
            )
        with open(input_path, "rb") as fh:
            if not fh.read(8).startswith(b"\x89HDF"):
                raise SpikeDataError(
                    f"no events file {spec!r}, and the input is not an HDF5/NWB "
                    "file that could hold a table of that name",
                    path=input_path,
                )
        columns = read_events_table(input_path, table=spec)
    align = options["align_to"]
    if align is None:
        align = next((c for c in ("time", "start_time") if c in columns), None)
    if align is None or align not in columns:
        listed = ", ".join(columns) or "none"
        wanted = f"column {align!r}" if align else "a 'time' or 'start_time' column"
        raise SpikeDataError(f"has no {wanted} (columns: {listed})", path=source)
    try:
        times = np.asarray(columns[align], dtype=np.float64)
    except ValueError:
        raise SpikeDataError(
            "event times must be numbers", path=source, dataset=align
        ) from None
    if not np.all(np.isfinite(times)):
        raise SpikeDataError(
            "event times must be finite numbers", path=source, dataset=align
        )
    groups = None
    if options["group_by"] is not None:
        if options["group_by"] not in columns:
            listed = ", ".join(columns)
            column = options["group_by"]
            raise SpikeDataError(
                f"has no column {column!r} to group by (columns: {listed})",
                path=source,
            )
        groups = columns[options["group_by"]]
    return times, groups, times.size


def _write(output: str, fmt: str, result: Any, input_path: str, events: str) -> None:
    import numpy as np

    from spikerates import io

    attrs = {
        **result.attrs,
        "units": "Hz",
        "source": input_path,
        "events": events,
    }
    if fmt in ("npz", "hdf5", "nwb"):
        arrays = {
            "t": result.t,
            "unit_ids": result.unit_ids,
            "groups": result.groups,
            "mean": result.mean,
            "sem": result.sem,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "n_trials": result.n_trials,
            "n_dropped": result.n_dropped,
            "event_times": result.event_times,
            "event_groups": result.event_groups,
        }
        if result.tau is not None:
            arrays["tau"] = result.tau
        if fmt == "nwb" and result.trials is not None:
            _write_nwb_trials(output, result, arrays, attrs)
            return
        if result.trials is not None:
            arrays["trials"] = result.trials
        io.write_arrays(output, arrays, fmt, attrs=attrs)
        return
    from spikerates.io.unit_tables import write_unit_table
    from spikerates.metrics import UnitTable

    n_groups, n_steps, n_units = result.mean.shape
    g, k, u = np.meshgrid(
        np.arange(n_groups), np.arange(n_steps), np.arange(n_units), indexing="ij"
    )
    g, k, u = g.ravel(), k.ravel(), u.ravel()
    table = UnitTable(
        {
            "group": result.groups[g],
            "unit": result.unit_ids[u],
            "t": result.t[k],
            "mean": result.mean[g, k, u],
            "sem": result.sem[g, k, u],
            "ci_low": result.ci_low[g, k, u],
            "ci_high": result.ci_high[g, k, u],
            "n_trials": result.n_trials[g, u],
        },
        attrs,
    )
    write_unit_table(output, table, fmt)


def _write_nwb_trials(output: str, result: Any, arrays: dict, attrs: dict) -> None:
    """NWB with the per-trial rates as a TimeSeries, the rest at the root."""
    from spikerates.io import nwb
    from spikerates.io.atomic import atomic_output

    with atomic_output(output, as_path=True) as tmp:
        nwb.write_trial_rates(
            tmp,
            result.t,
            result.trials,
            result.unit_ids,
            event_times=result.event_times,
            event_groups=result.event_groups,
            extra=arrays,
            attrs=attrs,
        )
